"""Run every benchmark at a smoke size, so that none rots between measurements.

    .venv/bin/python benches/smoke.py

``.ci/run`` runs this after the tests: each benchmark runs for seconds against its peer
and prints its figures; nothing about speed is asserted (the machine is shared), but a
benchmark that no longer runs (a changed signature, a missing peer) fails CI. A new file
in benches/ must be listed here: the run fails when one is missing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCHES = Path(__file__).resolve().parent

#: Each benchmark with the arguments that make it a smoke run.
SMOKE: dict[str, str] = {
    "bench_actor.py": "--messages 2000 --repeat 1",
    "bench_clock.py": "--tasks 100 --sleeps 10 --repeat 1",
    "bench_decompress.py": "--smoke",
    "bench_fleet_size.py": "--accounts 5,20 --per-account 2 --live 5,50 --requests 1000 --repeat 1",
    "bench_memory.py": "--interviews 200",
    "bench_overhead.py": "--n 40 --repeat 1 --warmup 10 --inproc-n 200 --inproc-warmup 20 "
    "--budget 20",
    "bench_redis.py": "--n 20 --rounds 1",
    "bench_reference.py": "--interviews 30 --repeat 1",
    "load_router.py": "--seconds 2 --repeats 1 --mocks 1",
}


def main() -> int:
    present = {p.name for p in BENCHES.glob("*.py") if p.name != Path(__file__).name}
    unlisted = sorted(present - SMOKE.keys())
    if unlisted:
        print(f"benches/smoke.py: no smoke size for {', '.join(unlisted)}", file=sys.stderr)
        return 1
    failed = []
    for name, args in SMOKE.items():
        print(f"== {name} {args}", flush=True)
        began = time.monotonic()
        done = subprocess.run([sys.executable, str(BENCHES / name), *args.split()], check=False)
        print(f"== {name}: exit {done.returncode} in {time.monotonic() - began:.1f} s", flush=True)
        if done.returncode:
            failed.append(name)
    if failed:
        print(f"benches/smoke.py: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
