"""The simulator carries no HTTP stack: what it imports is memory every run pays for."""

from __future__ import annotations

import json
import subprocess
import sys

#: Packages of the live side, the reports and the fits (httpx alone, with the command line
#: helpers it brings when they are installed, is about 8 MiB of a process).
LIVE_ONLY = ("httpx", "starlette", "hypercorn", "matplotlib", "scipy", "rich", "pygments")


def test_a_simulation_imports_no_http_stack_nor_report_libraries() -> None:
    probe = (
        "import json, sys; import sims.runner; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "trio" in loaded and "numpy" in loaded  # (the probe imported the simulator)
    assert not loaded & set(LIVE_ONLY), sorted(loaded & set(LIVE_ONLY))
