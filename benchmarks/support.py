"""What the benchmarks share: a Postfix sink, a fresh store, the shipped config, and
`newsletter` run as a user runs it (its own process, timed from start to exit)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parent.parent
GNU_TIME = "/usr/bin/time"  # Debian package `time`
sys.path.insert(0, str(ROOT))

from newsletter.config import load_settings  # noqa: E402
from newsletter.runtime import Runtime  # noqa: E402
from newsletter.sources.records import PaperRecord  # noqa: E402
from newsletter.store import db  # noqa: E402
from newsletter.store.papers import upsert_papers  # noqa: E402

# Typed interests as readers write them: a few words naming what they follow.
INTERESTS = [
    "point cloud registration",
    "retrieval-augmented generation",
    "continual learning",
    "episodic memory",
    "long-term memory for LLM agents",
    "diffusion models for video",
    "medical imaging",
    "reinforcement learning from human feedback",
    "code generation",
    "speech recognition",
    "graph neural networks",
    "multimodal reasoning",
    "robot manipulation",
    "efficient transformers",
    "model compression and quantization",
    "evaluation of language models",
    "protein structure prediction",
    "3D reconstruction from images",
    "mixture of experts",
    "AI safety and alignment",
]
SUBJECTS = [
    "large language models",
    "image segmentation",
    "episodic memory",
    "retrieval",
    "video diffusion",
    "alignment",
    "point cloud registration",
    "speech recognition",
    "robot manipulation",
    "quantization",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_sink(port: int) -> Iterator[None]:
    """Postfix's smtp-sink: accepts everything, keeps nothing (-u: drop root)."""
    sink = subprocess.Popen(
        ["smtp-sink", "-u", "nobody", "-c", f"127.0.0.1:{port}", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield
    finally:
        sink.terminate()
        sink.wait()


@contextmanager
def database(url: str | None, folder: Path) -> Iterator[str]:
    """A new SQLite file, or a new schema on the PostgreSQL server at `url`."""
    if url is None:
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def write_config(folder: Path, url: str, port: int) -> Path:
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    raw["database"] = {"url": url}
    raw["smtp"] = {**raw["smtp"], "host": "127.0.0.1", "port": port}
    raw["secret_key"] = "benchmark-secret-key-0123456789"
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def add_papers(config: Path, count: int, now: datetime) -> None:
    """Papers listed over the last six days, with counts as the daily papers API has."""
    records = [
        PaperRecord(
            f"arxiv:2611.{i:05d}",
            f"Scaling {SUBJECTS[i % len(SUBJECTS)]} with {SUBJECTS[(i * 7) % len(SUBJECTS)]}",
            "hf",
            abstract=" ".join(
                f"We study {SUBJECTS[(i + j) % len(SUBJECTS)]} and report results."
                for j in range(12)
            ),
            authors=("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"),
            upvotes=i % 300,
            comments=i % 17,
            url=f"https://huggingface.co/papers/2611.{i:05d}",
            pdf_url=f"https://arxiv.org/pdf/2611.{i:05d}",
            listed_at=now - timedelta(days=6) + timedelta(seconds=i * 200),
        )
        for i in range(count)
    ]
    context = Runtime(load_settings(config))
    try:
        with db.transaction(context.sessions) as session:
            upsert_papers(session, records)
    finally:
        context.close()


def newsletter(config: Path, *args: str) -> tuple[float, int, str]:
    """Run `newsletter --config CONFIG ARGS…` from start to exit, as a user does:
    (seconds, peak resident memory of that process in KiB, its output).

    The code is this checkout's (PYTHONPATH). The peak is measured by GNU time: Linux
    carries a process's peak over exec, so a process started from this one would report
    this one's memory where it used less.
    """
    if not Path(GNU_TIME).exists():
        raise SystemExit(f"{GNU_TIME} is missing: apt-get install time")
    command = [str(Path(sys.executable).with_name("newsletter")), "--config", str(config)]
    log, peak_file = config.parent / "run.log", config.parent / "peak.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.run(
            [GNU_TIME, "-f", "%M", "-o", str(peak_file), *command, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    seconds = time.perf_counter() - start
    text = log.read_text(errors="replace")
    if process.returncode:
        raise SystemExit(f"`newsletter {' '.join(args)}` failed ({process.returncode}):\n{text}")
    return seconds, int(peak_file.read_text().split()[-1]), text
