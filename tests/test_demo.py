"""`newsletter demo` runs the whole flow offline, and can run twice."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from pathlib import Path

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
