"""What a user runs, timed: `newsletter send-now` on the shipped config, against Postfix.

    .venv/bin/python benchmarks/send.py --subscribers 10000
    .venv/bin/python benchmarks/send.py --subscribers 50000 \
        --database postgresql+psycopg://postgres@127.0.0.1:5432/test

It starts Postfix's `smtp-sink` on a free loopback port (Debian package `postfix`),
builds a store with `--papers` papers listed this week and `--subscribers` readers
(topics and typed interests, imported with `newsletter import-subscribers`), then runs,
each as its own process from start to exit, exactly as a user would:

1. `newsletter send-now --dry-run` once, which embeds the new papers and interests
   (the one-off cost after an ingest; the semantic extra is used when installed);
2. `newsletter send-now --dry-run` again: plan and render, no SMTP;
3. `newsletter send-now [--workers N]`: the real edition, to the sink;
4. `smtp-source -d -s CONNECTIONS -m SENT -l MEDIAN_SIZE` to the same sink: the
   reference, with persistent connections (its strongest setting), in the same run.

Every setting is the shipped `config.yaml`'s but the database, the SMTP address and
the secret key; `--dkim` also signs every message with a new 2048-bit RSA key (as a
site that sets `dkim:` does; needs the `openssl` tool). It prints one JSON line: each
phase, messages/second, the ratio to smtp-source, and the peak resident memory of the
send-now process.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from support import INTERESTS, add_papers, database, free_port, newsletter, smtp_sink, write_config

from newsletter.config import load_settings


def write_readers(path: Path, count: int, topics: list[str]) -> None:
    """Readers with one or two topics, and for two in three, one or two typed interests."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "topics", "interests"])
        for i in range(count):
            picked = sorted({topics[i % len(topics)], topics[(i // 7) % len(topics)]})
            typed = [] if i % 3 == 0 else [INTERESTS[i % len(INTERESTS)]]
            if i % 5 == 1:
                typed.append(INTERESTS[(i // 5) % len(INTERESTS)])
            writer.writerow([f"reader{i:06d}@example.org", ";".join(picked), ";".join(typed)])


def enable_dkim(config: Path) -> None:
    """Sign with a fresh 2048-bit RSA key, as a site with a `dkim:` section does."""
    key = config.parent / "dkim-private.pem"
    subprocess.run(
        [
            *("openssl", "genpkey", "-algorithm", "RSA"),
            *("-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)),
        ],
        check=True,
        capture_output=True,
    )
    raw = yaml.safe_load(config.read_text())
    raw["dkim"] = {"domain": "example.org", "selector": "news", "private_key_path": str(key)}
    config.write_text(yaml.safe_dump(raw))


def smtp_source(port: int, connections: int, count: int, size: int) -> float:
    start = time.perf_counter()
    command = ["smtp-source", "-d", "-s", str(connections), "-m", str(count), "-l", str(size)]
    subprocess.run(
        [*command, "-c", f"127.0.0.1:{port}"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--papers", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=1, help="send-now --workers N")
    parser.add_argument("--database", help="a PostgreSQL URL (default: a new SQLite file)")
    parser.add_argument("--dkim", action="store_true", help="sign every message (DKIM)")
    args = parser.parse_args()
    for tool in ("smtp-sink", "smtp-source"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install postfix")

    folder = Path(tempfile.mkdtemp(prefix="send-bench-"))
    port = free_port()
    figures: dict[str, object] = {"subscribers": args.subscribers, "papers": args.papers}
    with smtp_sink(port), database(args.database, folder) as url:
        config = write_config(folder, url, port)
        if args.dkim:
            enable_dkim(config)
        settings = load_settings(config)
        figures["backend"] = url.split(":", 1)[0]
        figures["connections"] = settings.smtp.connections
        figures["semantic"] = settings.matching.semantic
        figures["dkim"] = settings.dkim is not None
        newsletter(config, "init")
        add_papers(config, args.papers, datetime.now(UTC))
        readers = folder / "readers.csv"
        write_readers(readers, args.subscribers, [t.slug for t in settings.topics])
        seconds, _, _ = newsletter(config, "import-subscribers", str(readers))
        figures["import_subscribers_seconds"] = round(seconds, 2)
        figures["import_rows_per_second"] = round(args.subscribers / seconds)

        embed_seconds, _, _ = newsletter(config, "send-now", "--dry-run")
        figures["first_dry_run_seconds_with_embedding"] = round(embed_seconds, 2)
        dry_seconds, _, dry = newsletter(config, "send-now", "--dry-run")
        figures["dry_run_seconds"] = round(dry_seconds, 2)
        size = re.search(r"median size ([\d.]+) KB", " ".join(dry.split()))
        median = int(float(size.group(1)) * 1024) if size else 0
        figures["median_message_bytes"] = median

        send_args = ["send-now"] + (["--workers", str(args.workers)] if args.workers > 1 else [])
        seconds, peak_kib, output = newsletter(config, *send_args)
        sent_match = re.search(r"sent (\d+), failed (\d+)", " ".join(output.split()))
        sent = int(sent_match.group(1)) if sent_match else 0
        figures["workers"] = args.workers
        figures["send_now_seconds"] = round(seconds, 2)
        figures["sent"] = sent
        figures["send_now_messages_per_second"] = round(sent / seconds, 1)
        figures["send_now_peak_rss_mib"] = round(peak_kib / 1024)

        reference = smtp_source(port, settings.smtp.connections, sent, median)
        figures["smtp_source_d_seconds"] = round(reference, 2)
        figures["smtp_source_d_messages_per_second"] = round(sent / reference, 1)
        figures["ratio_to_smtp_source_d"] = round(reference / seconds, 3)
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
