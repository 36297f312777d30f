"""The layers import only downwards: import-linter's contracts, and what a serve process loads."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_the_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is a test dependency: pip install -e '.[test]'"
    result = subprocess.run(
        [lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_serving_loads_nothing_of_the_simulator_or_the_reports():
    code = (
        "import sys, engine.serve.server, engine.cli.live; "
        "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sims', 'reports') or m == 'actors.backends.virtual')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []


@pytest.mark.slow
def test_only_the_command_line_imports_the_embedding_api():
    # ``engine`` (engine/__init__.py) sits above every layer but the CLI: a module
    # below it that imported it would import upwards.
    offenders = []
    for package in ("actors", "engine", "sims", "reports"):
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if relative.parts[:2] == ("engine", "cli") or relative == Path("engine/__init__.py"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == "engine" and node.level == 0:
                    offenders.append(f"{relative}:{node.lineno}")
                if isinstance(node, ast.Import) and any(a.name == "engine" for a in node.names):
                    offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []


def test_only_trio_hooks_touches_trio_internals():
    hooks = Path("actors/runtime/trio_hooks.py")
    touching = [
        str(path.relative_to(ROOT))
        for package in ("actors", "engine", "sims", "reports")
        for path in (ROOT / package).rglob("*.py")
        if path.relative_to(ROOT) != hooks and re.search(r"\btrio\._|\b_core\b", path.read_text())
    ]
    assert touching == []
