"""``callboard calibrate``: trace files in, a scenario out; parse and delegate.

Wired into ``engine/cli/main.py`` with :func:`add_calibrate_parser`; the fitting lives
in :mod:`sims.calibrate`, the writing in :mod:`sims.calibration_toml`.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from actors.runtime.errors import InvalidSetting


def cmd_calibrate(args: argparse.Namespace) -> int:
    from sims.calibrate import calibrate
    from sims.calibration_toml import scenario_toml
    from sims.scenario import structure

    out = Path(args.scenario_out) if args.scenario_out else None
    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        raise InvalidSetting("--out", str(out), "a file in an existing folder")
    calibration = calibrate(args.traces, sparse=args.sparse)
    name = args.name or (out.stem if out is not None else "calibrated")
    text = scenario_toml(calibration, name)
    # What is written must load: checked here so a bad file is never left behind.
    structure(tomllib.loads(text), str(out or "the calibrated scenario"))
    if out is None:
        sys.stdout.write(text)
        return 0
    out.write_text(text, encoding="utf-8")
    fitted = sum(a.fit is not None for a in calibration.accounts)
    print(
        f"wrote {out}: {len(calibration.observed.requests)} requests "
        f"({calibration.observed.source} spans), {fitted} of {len(calibration.accounts)} "
        f"accounts fitted, {calibration.workload.conversations} conversations"
    )
    return 0


def add_calibrate_parser(commands: Any) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="fit accounts and workload from OpenTelemetry traces into a scenario",
    )
    calibrate.add_argument(
        "traces",
        nargs="+",
        metavar="TRACES",
        help="OTLP JSON trace files (callboard's, or any app's GenAI spans)",
    )
    calibrate.add_argument(
        "--out",
        dest="scenario_out",
        metavar="SCENARIO.toml",
        help="the scenario file to write (default: print it)",
    )
    calibrate.add_argument("--name", help="the scenario's name (default: the file's stem)")
    calibrate.add_argument(
        "--sparse",
        choices=("error", "default"),
        default="error",
        help="an account with too few answered attempts to fit: an error, or its "
        "profile's figures with a comment saying so",
    )
    calibrate.set_defaults(handler=cmd_calibrate)
