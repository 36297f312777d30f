"""Progress on stderr: one line per finished step off a terminal, a bar on one, none if quiet."""

from __future__ import annotations

import io
import json
import re

import pytest

from engine.cli.main import main
from engine.cli.progress import Bar, Lines, Silent, open_progress
from tests.sims.test_experiment import EXPERIMENT, SCENARIO
from tests.sims.test_sizing import KNOWN

STEP = re.compile(
    r"^(?P<command>[a-z ]+): (?P<text>.+) \[(?P<sims>\d+) simulations, \d+:\d\d elapsed\]$"
)


@pytest.mark.slow
def test_size_prints_a_line_per_fleet_tried_and_per_level(tmp_path, capsys):
    known = tmp_path / "known.toml"
    known.write_text(KNOWN)
    argv = [
        "size", str(known), "--interviews", "40,80", "--slo", "success>=100%",
        "--accounts", "acct=1..16", "--replications", "2", "--workers", "2",
        "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().err.splitlines()
    steps = [STEP.match(line) for line in lines]
    assert lines and all(steps), lines  # nothing else on stderr: no worker's log lines
    assert {m["command"] for m in steps} == {"size"}
    data = json.loads((tmp_path / "out" / "capacity.json").read_text())
    tried = [
        (level["interviews"], p["accounts"]) for level in data["levels"] for p in level["curve"]
    ]
    points = [m["text"] for m in steps if " interviews on " in m["text"]]
    # Each fleet tried is probed on one seed; the answer then runs its second seed too,
    # which shows it meets them (no spread on this scenario: every seed answers all).
    probes = [
        f"{n} interviews on {a} x acct: SLOs met on {int(a >= -(-5 * n // 30))} of 1 seed"
        for n, a in tried
    ]
    answers = [
        f"{n} interviews on {a} x acct: SLOs met on 2 of 2 seeds: shown to meet them"
        for n, a in ((40, 7), (80, 14))
    ]
    assert sorted(points) == sorted(probes + answers)
    decided = [m["text"] for m in steps if " interviews on " not in m["text"]]
    fleets = {level["interviews"]: len(level["curve"]) for level in data["levels"]}
    assert sorted(decided) == [
        f"40 interviews: smallest fleet meeting the SLOs is 7 x acct ({fleets[40]} fleets "
        "tried); met them on 10 of 10 fresh seeds",
        f"80 interviews: smallest fleet meeting the SLOs is 14 x acct ({fleets[80]} fleets "
        "tried); met them on 10 of 10 fresh seeds",
    ]
    counts = [int(m["sims"]) for m in steps]
    assert counts == sorted(counts) and counts[-1] == len(tried) + 2 + 2 * 10


@pytest.mark.slow
def test_experiment_prints_a_line_per_run(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(SCENARIO)
    path = tmp_path / "tiny-experiment.toml"
    path.write_text(EXPERIMENT)
    argv = ["experiment", str(path), "--seeds", "2", "--workers", "2", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    steps = [STEP.match(line) for line in capsys.readouterr().err.splitlines()]
    assert len(steps) == 3 * 2 and all(steps)
    assert [m["command"] for m in steps] == ["experiment tiny"] * 6
    assert [m["text"].split(":")[0] for m in steps] == [
        f"{variant}, seed {seed}" for variant in ("off", "same", "budget") for seed in (3, 4)
    ]
    assert "success rate 100.0%" in steps[0]["text"] and [int(m["sims"]) for m in steps] == [
        1, 2, 3, 4, 5, 6,
    ]  # fmt: skip


@pytest.mark.slow
def test_quiet_prints_nothing(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(SCENARIO)
    path = tmp_path / "tiny-experiment.toml"
    path.write_text(EXPERIMENT)
    argv = ["experiment", str(path), "--seeds", "2", "--quiet", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_and_anything_else_lines():
    assert isinstance(open_progress("size", 10, quiet=True, stream=_Terminal()), Silent)
    assert isinstance(open_progress("size", 10, quiet=False, stream=io.StringIO()), Lines)
    terminal = _Terminal()
    bar = open_progress("size", 10, quiet=False, stream=terminal)
    assert isinstance(bar, Bar)
    bar.simulation()
    bar.step("a step")  # the bar shows steps by moving, not as lines
    bar.close()
    drawn = terminal.getvalue()
    assert "/10 [" in drawn and "sim" in drawn and "a step" not in drawn
