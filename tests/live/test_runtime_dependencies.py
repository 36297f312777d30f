"""The importable packages need no httpx: it is a test and bench dependency only."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

IMPORT_ALL_WITHOUT_HTTPX = """
import importlib, pkgutil, sys
sys.modules["httpx"] = None  # any import of httpx now raises ImportError
count = 0
for name in ("engine", "actors", "sims", "reports"):
    package = importlib.import_module(name)
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        importlib.import_module(info.name)
        count += 1
print(count)
"""


def test_every_module_imports_without_httpx_and_it_is_no_runtime_dependency():
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL_WITHOUT_HTTPX],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 50
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("httpx") for d in project["dependencies"])
    assert "certifi" in " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    assert any(d.startswith("httpx") for d in extras["test"] + extras["bench"])
