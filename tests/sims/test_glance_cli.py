"""What `callboard simulate` and `callboard size` print, read at a glance (issue 26): the
answer first, every line within the terminal, headers from the run's own settings."""

from __future__ import annotations

import re

import pytest

from engine.cli.main import main
from reports.summary import TERMINAL_WIDTH

# No description, and a seed of its own: the header must still say what ran.
MY_LAUNCH = """
name = "my-launch"
seed = 7
duration = 3600

[workload]
interviews = 12
arrival = "uniform"
window = 60
turns = 3
plan = ["follow_up", "follow_up", "follow_up"]
think_time = 5

[[accounts]]
profile = "openai-paid"
name = "acct"
count = 1
limits = [{ name = "rpd", unit = "requests", limit = 30, per = 86400, mode = "window" }]
errors = {}
latency = { service = 1.0 }

[retry]
deadline = 60

[cache]
enabled = false
"""


@pytest.fixture
def my_launch(tmp_path):
    path = tmp_path / "my-launch.toml"
    path.write_text(MY_LAUNCH)
    return str(path)


def _fits(out: str) -> None:
    too_wide = [line for line in out.splitlines() if len(line) > TERMINAL_WIDTH]
    assert not too_wide


@pytest.mark.slow
def test_the_default_run_opens_with_its_answers_and_times_the_whole_run(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # short report paths: the lines judged are the command's own
    assert main(["simulate", "--quiet", "--interviews", "20", "--out", "run"]) == 0
    out = capsys.readouterr().out
    _fits(out)
    first, second, blank = out.splitlines()[:3]
    assert re.match(
        r"As claimed \(20 interviews over 60\.0 min\): 2 accounts (meet|miss) the SLOs", first
    )
    assert re.match(r"All at once \(20 interviews over 1\.0 min\): 2 accounts (meet|miss)", second)
    assert blank == ""
    closing = next(line for line in out.splitlines() if line.startswith("wall time "))
    assert re.fullmatch(
        r"wall time ([\d.]+ s|\d+ min \d+ s): simulating [\d.]+ \+ [\d.]+ min took [\d.]+ s, "
        r"sizing \(\d+ simulations\) [\d.]+ s",
        closing,
    )


@pytest.mark.slow
def test_a_run_is_headed_by_its_settings_after_overrides(tmp_path, capsys):
    args = ["simulate", "interview-day", "--interviews", "40", "--set", "accounts.0.count=1"]
    assert main([*args, "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    _fits(out)
    assert out.startswith(
        "interview-day (seed 1): 40 interviews starting over 1.0 min, on 1 account "
        "(1 x huggingface).\n"
    )
    assert "changed here: accounts.0.count=1, --interviews" in out


@pytest.mark.slow
def test_a_scenario_without_a_description_still_gets_a_header(my_launch, tmp_path, capsys):
    assert main(["simulate", my_launch, "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "my-launch (seed 7): 12 interviews starting over 1.0 min, on 1 account (1 x acct).\n"
        "The scenario has no description.\n"
    )


@pytest.mark.slow
def test_size_opens_with_one_sentence_per_level_and_fits_the_terminal(my_launch, tmp_path, capsys):
    args = ["size", my_launch, "--interviews", "6,12", "--accounts", "acct=1..8"]
    assert (
        main([*args, "--replications", "2", "--holdout", "2", "--quiet", "--out", str(tmp_path)])
        == 0
    )
    out = capsys.readouterr().out
    _fits(out)
    lines = out.split("\n\n")[0].replace("\n", " ")
    assert lines.startswith("6 interviews: 1 x acct is the smallest fleet shown to meet ")
    assert (
        "on at least 95.0% of days; it met them on 2 of 2 fresh days the search never saw." in lines
    )
    assert "12 interviews: 2 x acct is the smallest fleet" in lines
