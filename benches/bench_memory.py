"""Peak memory of 10,000 concurrent interviews: callboard's reference run beside SimPy's.

Each model runs in a fresh subprocess (so one cannot inherit the other's heap)
and reports its peak resident set size; the script prints both, their ratio, and
callboard's peak against the 1 GiB budget. With ``--interviews`` any size can be
tried; all interviews start within the first minute, so they are all live at once.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys
sys.path.insert(0, "benches")
interviews = int(sys.argv[2])
if sys.argv[1] == "callboard":
    from bench_reference import callboard_reference as run
else:
    from bench_reference import simpy_reference as run
wall, latencies = run(interviews, seed=1)
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_mib": peak_mib, "requests": len(latencies)}))
"""

BUDGET_MIB = 1024


def peak(model: str, interviews: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, model, str(interviews)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interviews", type=int, default=10_000)
    args = parser.parse_args()
    ours = peak("callboard", args.interviews)
    theirs = peak("simpy", args.interviews)
    print(
        f"reference model, {args.interviews} interviews "
        f"({int(ours['requests'])} requests), peak resident memory of a fresh process"
    )
    print(f"  callboard {ours['peak_mib']:7.0f} MiB")
    print(f"  SimPy     {theirs['peak_mib']:7.0f} MiB")
    print(f"  callboard / SimPy: {ours['peak_mib'] / theirs['peak_mib']:.2f}x")
    verdict = "within" if ours["peak_mib"] < BUDGET_MIB else "OVER"
    print(f"  callboard / 1 GiB budget: {ours['peak_mib'] / BUDGET_MIB:.2f} ({verdict})")


if __name__ == "__main__":
    main()
