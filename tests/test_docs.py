"""The docs stay true: every command in README.md and docs/*.md runs, every figure is current.

This runs ``docs/check.py`` (a few minutes: it runs the docs' simulations, sizing and
experiments, and their live walkthroughs over loopback, Redis included). It fails when a
doc command fails, when a command's shown output is no longer what it prints, or when a
measured figure or a config default quoted in the docs is stale.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_doc_command_runs_and_every_figure_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "check.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, f"docs check failed:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
