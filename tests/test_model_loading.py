"""The embedding model is loaded only when there is text to embed, once per process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.subscribers import add_subscriber
from tests.conftest import ROOT
from tests.delivery_helpers import add_papers, add_readers
from tests.process_helpers import current_window_instant, write_config

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None,
    reason="semantic extra not installed",
)

PROBE = """
import sys
from newsletter.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("model loaded" if "sentence_transformers" in sys.modules else "no model loaded")
"""


def dry_run(config: Path) -> str:
    found = subprocess.run(
        [sys.executable, "-c", PROBE, "--config", str(config), "send-now", "--dry-run"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return found.stderr + found.stdout  # the probe's own line last


def test_the_model_loads_only_when_a_paper_or_interest_has_no_stored_vector(
    context: Runtime, tmp_path: Path
) -> None:
    add_papers(context, 4, current_window_instant(context))
    add_readers(context, 2, interests=["memory in language agents"])
    with db.transaction(context.sessions) as session:  # one word: compared with topic names
        add_subscriber(session, "one-word@example.org", status="active", interests=["memory"])
    config = write_config(
        tmp_path / "config.yaml", context.settings.database.url, matching={"semantic": "auto"}
    )
    first = dry_run(config)
    assert "3 messages would be sent" in " ".join(first.split()), first
    assert "model loaded" in first.splitlines()[-1]  # new papers and interests: embedded
    second = dry_run(config)
    assert "3 messages would be sent" in " ".join(second.split()), second
    assert second.splitlines()[-1] == "no model loaded"  # all stored: the model stays out
