"""The simulator writes the live router's spans on virtual time: the same seed, the same
bytes, and a run that is the same whether it is traced or not."""

from __future__ import annotations

import json

import pytest

from engine.traces.tracing import SIMULATED_EPOCH_NS
from sims.runner import simulate
from sims.scenario import load
from sims.summarise import summarise
from tests.traces.otlp import read_json_file

# Failures, quarantines and failovers: attempts that fail as well as answers.
SCENARIO = ("chaos-quarantine", ["workload.interviews=12", "workload.turns=6"])


def _results(traces=None) -> dict:
    scenario, _ = load(*SCENARIO)
    results = json.loads(summarise(simulate(scenario, traces=traces)).to_json())
    results.pop("meta")
    return results


@pytest.mark.slow
def test_same_seed_same_bytes_and_the_run_unchanged_by_tracing(tmp_path):
    untraced = _results()
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert _results(first) == untraced  # a figure that moves when traced is a bug
    _results(second)
    assert first.read_bytes() == second.read_bytes()

    spans = read_json_file(first)
    requests = [s for s in spans if not s.parent_id]
    attempts = [s for s in spans if s.parent_id]
    # One span per request, one per attempt sent to a provider: what results.json counts.
    assert len(requests) == untraced["summary"]["requests"]
    assert len(attempts) == len(untraced["attempts"]["code"])
    by_id = {s.span_id: s for s in requests}
    for attempt in attempts:
        parent = by_id[attempt.parent_id]
        assert attempt.trace_id == parent.trace_id
        assert parent.start <= attempt.start <= attempt.end <= parent.end
        assert (
            attempt.kind == 3
            and attempt.name == f"chat {attempt.attributes['gen_ai.request.model']}"
        )
        assert (
            attempt.attributes["callboard.request.id"] == parent.attributes["callboard.request.id"]
        )
    failed = [a for a in attempts if a.attributes["callboard.outcome"] != "ok"]
    assert failed and all(
        a.attributes["error.type"] == a.attributes["callboard.outcome"] for a in failed
    )
    assert all(a.status == 2 for a in failed)  # ERROR
    assert min(s.start for s in spans) >= SIMULATED_EPOCH_NS
    assert all(s.attributes["gen_ai.operation.name"] == "chat" for s in spans)
    assert not any("gen_ai.input.messages" in s.attributes for s in spans)


def test_the_default_run_refuses_a_traces_file(tmp_path, capsys):
    from engine.cli.main import main

    assert main(["simulate", "--traces-file", str(tmp_path / "t.jsonl")]) == 2
    assert "--traces-file" in capsys.readouterr().err
    assert not (tmp_path / "t.jsonl").exists()


def test_untraced_runs_do_not_even_import_the_sdk():
    import subprocess
    import sys

    code = (
        "import sys, engine, engine.serve.server, sims.runner, engine.cli.main; "
        "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_traces_file_that_cannot_be_written_is_named():
    from actors.runtime.errors import InvalidSetting
    from engine.traces.otlp_json import OtlpJsonFile

    with pytest.raises(InvalidSetting, match=r"traces\.file.*/no/such/folder/t\.jsonl"):
        OtlpJsonFile("/no/such/folder/t.jsonl")


@pytest.mark.slow
def test_the_same_bytes_in_new_processes_whatever_the_hash_seed(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    files = []
    for hash_seed in ("0", "4242"):
        path = tmp_path / f"traces-{hash_seed}.jsonl"
        command = [sys.executable, "-m", "engine.cli.main", "simulate", "chaos-quarantine"]
        options = ["--interviews", "5", "--quiet", "--json", "--out", str(tmp_path / hash_seed)]
        subprocess.run(
            [*command, *options, "--traces-file", str(path)],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            cwd=Path(__file__).resolve().parents[2],
        )
        files.append(path.read_bytes())
    assert files[0] == files[1] and files[0]
