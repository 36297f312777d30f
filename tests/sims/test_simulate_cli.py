"""`callboard simulate` as a user runs it: files written, byte-identical per seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.main import main
from sims.scenario import builtin_names

SMALL = ["chaos-quarantine", "--interviews", "30", "--quiet"]


def run_cli(args: list[str], hash_seed: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "simulate", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.mark.slow
def test_same_seed_gives_byte_identical_results_in_new_processes(tmp_path):
    outputs = []
    for hash_seed, name in (("0", "a"), ("4242", "b"), ("0", "c")):
        seed = "2" if name == "c" else "1"
        done = run_cli([*SMALL, "--seed", seed, "--out", str(tmp_path / name)], hash_seed)
        assert done.returncode == 0, done.stderr
        outputs.append((tmp_path / name / "results.json").read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]  # another seed, another run
    results = json.loads(outputs[0])
    assert results["meta"]["seed"] == 1 and results["summary"]["requests"] == 30 * 17
    # Nothing that varies between runs goes in: no wall time, no paths, no dates.
    text = outputs[0].decode()
    assert "wall" not in text and str(tmp_path) not in text


@pytest.mark.slow
def test_json_line_and_report_files(tmp_path, capsys):
    code = main(["simulate", *SMALL, "--out", str(tmp_path), "--json"])
    assert code == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(line)
    for key in ("wall_s", "requests", "p50", "p95", "p99", "success_rate", "cache_hit_rate"):
        assert key in summary
    assert summary["requests"] == 30 * 17 and summary["wall_s"] > 0
    for name in ("results.json", "report.md", "report.html"):
        assert (tmp_path / name).stat().st_size > 500
    assert list((tmp_path / "figures").glob("*.png"))


@pytest.mark.slow
def test_summary_table_is_printed(tmp_path, capsys):
    assert main(["simulate", *SMALL, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "success" in out.lower() and "p95" in out and "report.html" in out


def test_bad_scenario_is_a_clear_error_and_exit_2(tmp_path, capsys):
    code = main(
        ["simulate", "interview-day", "--set", "workload.intervews=5", "--out", str(tmp_path)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['intervews']" in err and "Traceback" not in err
    assert not (tmp_path / "results.json").exists()


def test_scenarios_lists_every_builtin(capsys):
    assert main(["scenarios"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert names == builtin_names()
    default = sorted(line.split()[0] for line in lines if line.endswith("(default run)"))
    assert default == ["interview-day", "interview-day-as-claimed"]


@pytest.mark.parametrize("args", [["simulate", "--seed", "x"], ["frobnicate"]])
def test_bad_arguments_exit_with_usage(args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
