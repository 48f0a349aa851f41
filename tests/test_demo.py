"""`newsletter demo` runs the whole flow offline, and can run twice."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from newsletter.config import Settings, load_settings
from tests.conftest import ROOT, CliResult


def test_the_demo_sends_each_reader_a_digest_and_can_run_twice(
    run_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    output = tmp_path / "demo"
    config = str(ROOT / "config.yaml")
    for _ in range(2):
        result = run_cli("--config", config, "demo", "--output", str(output))
        assert result.exit_code == 0, result.stderr
    emls = sorted((output / "mail").glob("*.eml"))
    htmls = sorted((output / "mail").glob("*.html"))
    assert len(emls) == 3 and len(htmls) == 3
    recipients = set()
    for eml in emls:
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        recipients.add(message["To"].addresses[0].addr_spec)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert recipients == {"ada@example.org", "grace@example.org", "alan@example.org"}
    assert "got" in result.stdout and str(output / "mail") in result.stdout
    assert (output / "demo.db").exists()


def test_the_demo_runs_in_an_empty_folder_without_a_config_file(tmp_path: Path) -> None:
    # As after `pip install`: no config.yaml, no repository around, only the package.
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env |= {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "demo-output" / "mail").glob("*.eml"))) == 3
    assert "Error" not in done.stderr


def test_without_a_config_file_the_defaults_are_the_shipped_topics() -> None:
    shipped = load_settings(ROOT / "config.yaml", environ={})
    assert Settings().topics == shipped.topics
    assert {"llms", "rag", "computer-vision", "healthcare"} <= {t.slug for t in shipped.topics}
