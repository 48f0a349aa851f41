"""`newsletter import-subscribers FILE.csv` as a user runs it, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/import_subscribers.py [--rows 10000] \
        [--database postgresql+psycopg://postgres@127.0.0.1:5432/test]

For each backend (a new SQLite file, and a new schema on the PostgreSQL server at
`--database`, the default above; `--database none` for SQLite only) it writes
`--rows` readers as benchmarks/send.py does (one or two topics each, for two in three
one or two typed interests), runs `newsletter init`, then the import twice, each as
its own process from start to exit: into the empty store (every row new), then the
same file again (every row an existing reader whose topics and interests are
replaced). It also times `newsletter --help`, the process start every command pays.
It prints one JSON line: seconds and rows/second of each run, per backend.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from send import write_readers
from support import ROOT, database, free_port, newsletter, write_config

from newsletter.config import load_settings

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def run(url: str | None, rows: int, folder: Path) -> dict[str, object]:
    figures: dict[str, object] = {}
    with database(url, folder) as store:
        config = write_config(folder, store, free_port())
        readers = folder / "readers.csv"
        write_readers(readers, rows, [t.slug for t in load_settings(config).topics])
        newsletter(config, "init")
        figures["start_seconds"] = round(newsletter(config, "--help")[0], 2)
        for label in ("new", "existing"):
            seconds, _, output = newsletter(config, "import-subscribers", str(readers))
            if "0 rows skipped" not in " ".join(output.split()):
                raise SystemExit(f"unexpected import output:\n{output}")
            figures[f"{label}_seconds"] = round(seconds, 2)
            figures[f"{label}_rows_per_second"] = round(rows / seconds)
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
