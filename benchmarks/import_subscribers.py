"""`newsletter import-subscribers FILE.csv` as a user runs it, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/import_subscribers.py [--rows 10000] \
        [--database postgresql+psycopg://postgres@127.0.0.1:5432/test]

For each backend (a new SQLite file, and a new schema on the PostgreSQL server at
`--database`, the default above; `--database none` for SQLite only) it writes
`--rows` readers as benchmarks/send.py does (one or two topics each, for two in three
one or two typed interests), runs `newsletter init`, then the import twice, each as
its own process from start to exit: into the empty store (every row new), then the
same file again (every row an existing reader whose topics and interests are
replaced). It also times `newsletter --help`, the process start every command pays, and the
import of the new rows called inside the benchmark's own process (`import_csv`).
It prints one JSON line: seconds (wall clock, and CPU time of the process: the machine
may be shared) and rows/second of each run, per backend.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from send import write_readers
from support import ROOT, database, free_port, newsletter, write_config

from newsletter.config import load_settings
from newsletter.readers.subscriptions import import_csv
from newsletter.runtime import Runtime
from newsletter.store import db

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def timed(config: Path, *args: str) -> tuple[float, float, str]:
    """`newsletter --config CONFIG ARGS…` from start to exit: wall and CPU seconds
    (user + system) of that process, and its output."""
    command = [str(Path(sys.executable).with_name("newsletter")), "--config", str(config)]
    log = config.parent / "import.log"
    start = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen([*command, *args], stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    text = log.read_text(errors="replace")
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"`newsletter {' '.join(args)}` failed:\n{text}")
    return wall, usage.ru_utime + usage.ru_stime, text


def run(url: str | None, rows: int, folder: Path) -> dict[str, object]:
    figures: dict[str, object] = {}
    with database(url, folder) as store:
        config = write_config(folder, store, free_port())
        readers = folder / "readers.csv"
        write_readers(readers, rows, [t.slug for t in load_settings(config).topics])
        newsletter(config, "init")
        wall, cpu, _ = timed(config, "--help")
        figures["start"] = {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2)}
        for label in ("new", "existing"):
            wall, cpu, output = timed(config, "import-subscribers", str(readers))
            if "0 rows skipped" not in " ".join(output.split()):
                raise SystemExit(f"unexpected import output:\n{output}")
            figures[label] = {
                "seconds": round(wall, 2),
                "rows_per_second": round(rows / wall),
                "cpu_seconds": round(cpu, 2),
                "rows_per_cpu_second": round(rows / cpu),
            }
    inside = folder / "in-process"
    inside.mkdir(exist_ok=True)
    with database(url, inside) as store:  # the same import inside this process
        context = Runtime(load_settings(write_config(inside, store, free_port())))
        db.upgrade(context.engine)
        wall, cpu = time.perf_counter(), time.process_time()
        import_csv(context, readers)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        context.close()
        figures["new_in_process"] = {
            "seconds": round(wall, 2),
            "rows_per_second": round(rows / wall),
            "cpu_seconds": round(cpu, 2),
            "rows_per_cpu_second": round(rows / cpu),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--database", default=POSTGRES, help="a PostgreSQL URL, or none")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = str(ROOT)  # this checkout's code, not an installed copy
    figures: dict[str, object] = {"rows": args.rows}
    folder = Path(tempfile.mkdtemp(prefix="import-bench-"))
    try:
        figures["sqlite"] = run(None, args.rows, folder)
        if args.database.lower() != "none":
            figures["postgresql"] = run(args.database, args.rows, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
