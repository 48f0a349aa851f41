"""The package builds cleanly and carries what `newsletter demo` needs outside a clone."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_the_wheel_builds_without_warnings_and_ships_the_demo_data(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    assert "deprecat" not in (build.stdout + build.stderr).lower()
    (wheel,) = tmp_path.glob("trending_papers-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"newsletter/data/topics.yaml", "newsletter/data/demo-daily-papers.json"} <= names
