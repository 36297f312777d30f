"""`callboard simulate` as a user runs it: files written, byte-identical per seed."""

from __future__ import annotations

import json
import os
import signal
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


REPORTING = ("simulate", "size", "experiment", "replay")


@pytest.fixture
def handlers_must_not_run(monkeypatch):
    """Every reporting command's handler fails the test if reached: ``--out`` is checked first."""
    import engine.cli.main as cli

    def ran(args):
        raise AssertionError(f"{args.command} ran before --out was checked")

    for command in REPORTING:
        monkeypatch.setattr(cli, f"cmd_{command}", ran)


def _target(command: str) -> list[str]:
    return [command, "mixed-fleet"] if command in ("experiment", "replay") else [command]


@pytest.mark.parametrize("command", REPORTING)
def test_out_naming_a_file_is_refused_before_any_work(
    command, tmp_path, capsys, handlers_must_not_run
):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    for out, why in ((existing, "existing file"), (existing / "run", "is a file")):
        assert main([*_target(command), "--out", str(out)]) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith("callboard: --out: ") and str(out) in line and why in line
    assert existing.read_text() == "keep me"


def test_out_in_a_folder_that_cannot_be_written_is_refused(
    tmp_path, capsys, monkeypatch, handlers_must_not_run
):
    # Run as root, chmod cannot make a folder unwritable: stand in for the check.
    import engine.cli.main as cli

    monkeypatch.setattr(cli.os, "access", lambda path, mode: Path(path) != tmp_path)
    assert main(["size", "--out", str(tmp_path / "new" / "run")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "--out" in line and f"{str(tmp_path)!r} is not" in line and "written" in line


@pytest.mark.parametrize(
    ("argv", "target", "said"),
    [
        (["simulate", "chaos-quarantine", "--quiet"], "sims.runner.simulate", ""),
        # Replay's live run is a trio nursery: Ctrl-C arrives wrapped in an exception group.
        (["replay", "chaos-quarantine"], "sims.replay.replay", ""),
        (["size", "--quiet"], "sims.sizing.size", ""),
    ],
)
def test_ctrl_c_ends_with_one_line_and_status_130(
    argv, target, said, tmp_path, capsys, monkeypatch
):
    def interrupted(*args, **kwargs):
        if argv[0] == "replay":
            raise BaseExceptionGroup("Exceptions from Trio nursery", [KeyboardInterrupt()])
        raise KeyboardInterrupt

    monkeypatch.setattr(target, interrupted)
    assert main([*argv, "--out", str(tmp_path / "run")]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip() == f"callboard {argv[0]}: interrupted{said}"
    assert captured.out == "" and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ctrl_c_in_size_keeps_the_levels_it_had_decided(tmp_path):
    """A real Ctrl-C (SIGINT to the process group, as a terminal sends it) during the
    second level: the first level's answer is written, and said so in one line."""
    out = tmp_path / "run"
    argv = [str(Path(sys.executable).parent / "callboard"), "size", "interview-day"]
    argv += ["--interviews", "20,2000", "--accounts", "huggingface=1..200"]
    argv += ["--replications", "2", "--holdout", "2", "--workers", "1", "--out", str(out)]
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:  # one line per fleet and per level: not a terminal
        seen.append(line)
        if line.startswith("size: 20 interviews: smallest fleet"):
            break
    os.killpg(process.pid, signal.SIGINT)
    rest, code = process.stderr.read(), process.wait()
    assert code == 130, "".join(seen) + rest
    last = rest.strip().splitlines()[-1]
    said = "callboard size: interrupted; the levels decided before it (20) are in"
    assert last == f"{said} {out}/capacity.md"
    data = json.loads((out / "capacity.json").read_text())
    assert [level["interviews"] for level in data["levels"]] == [20]
    assert data["levels"][0]["recommended"]["counts"] == {"huggingface": 2}
    assert "Traceback" not in rest


def test_every_option_of_every_command_has_help():
    import argparse

    from engine.cli.main import build_parser

    parser = build_parser()
    [subparsers] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    # Each command's own line in `callboard --help`, then every argument of every command.
    missing = [
        choice.dest for choice in subparsers._choices_actions if not (choice.help or "").strip()
    ]
    missing += [
        f"{name} {action.option_strings[0] if action.option_strings else action.dest}"
        for name, command in [("callboard", parser), *subparsers.choices.items()]
        for action in command._actions
        if action is not subparsers and not (action.help or "").strip()
    ]
    assert missing == []


def test_size_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["size", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps at the terminal width
    assert "(default: 500,1000,2000)" in text
    assert "(default: interview-day)" in text
    assert "default: the scenario's first group" in text


def test_version_is_the_installed_package(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"callboard {metadata.version('callboard')}\n"


def test_slo_with_a_unit_not_allowed_lists_the_units(tmp_path, capsys):
    assert main(["size", "--slo", "provider_p95<=5min", "--out", str(tmp_path / "r")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "'provider_p95<=5min'" in line and "s or ms" in line and "% or 0..1" in line


def test_a_folder_given_as_scenario_says_it_is_a_folder(tmp_path, capsys):
    assert main(["simulate", str(tmp_path), "--quiet", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "is a folder, not a scenario file" in err and "no such file" not in err
    assert "built-in scenario name or a .toml file" in err
