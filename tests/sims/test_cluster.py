"""Sizing and experiments on a Dask cluster: the same bytes as a local run, clear refusals."""

from __future__ import annotations

import json
import socket
import sys

import pytest
from distributed import Client, LocalCluster

from actors.runtime.errors import InvalidSetting
from engine.cli.main import main
from sims.pool import (
    Pool,
    WorkerMismatch,
    _check_workers,
    _CheckedExecutor,
    code_fingerprint,
)
from tests.sims.test_experiment import EXPERIMENT, SCENARIO
from tests.sims.test_sizing import KNOWN


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes of two threads each, on loopback, for the whole module."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=2,  # two simulations at once in one process: they must take turns
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as local:
        yield local


def _finished(cluster: LocalCluster, task: str) -> int:
    prefix = cluster.scheduler.task_prefixes.get(task)
    return 0 if prefix is None else prefix.state_counts["memory"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_size_on_a_cluster_gives_the_bytes_of_a_local_run(cluster, tmp_path, capsys):
    known = tmp_path / "known.toml"
    known.write_text(KNOWN)
    args = [
        "size", str(known), "--interviews", "40,80", "--slo", "success>=100%",
        "--accounts", "acct=1..16", "--replications", "2", "--quiet", "--json",
    ]  # fmt: skip
    before = _finished(cluster, "run_on_worker")
    assert main([*args, "--cluster", cluster.scheduler_address, "--out", str(tmp_path / "c")]) == 0
    on_cluster = json.loads(capsys.readouterr().out)
    assert main([*args, "--workers", "2", "--out", str(tmp_path / "l")]) == 0
    local = json.loads(capsys.readouterr().out)
    assert on_cluster["recommendation"] == local["recommendation"]
    assert on_cluster["recommendation"]["80"]["fleet"] == {"acct": 14}
    text = (tmp_path / "c" / "capacity.json").read_text()
    assert text == (tmp_path / "l" / "capacity.json").read_text()
    # Every simulation of the cluster run ran on the cluster's workers (and maybe a seed
    # or two more: a fleet's seeds run a batch at a time, and the verdict can come early).
    data = json.loads(text)
    simulations = sum(len(p["latency"]) for level in data["levels"] for p in level["curve"])
    simulations += sum(len(level["holdout"]["seeds"]) for level in data["levels"])
    assert simulations > 0 and _finished(cluster, "run_on_worker") - before >= simulations


@pytest.mark.slow
def test_the_cheapest_mix_on_a_cluster_gives_the_bytes_of_a_local_run(cluster, tmp_path, capsys):
    args = [
        "size", "fleet-mix", "--mix", "--interviews", "20",
        "--accounts", "free=0..2", "--accounts", "hf=0..2", "--accounts", "haiku=0..3",
        "--replications", "2", "--holdout", "2", "--quiet", "--json",
    ]  # fmt: skip
    assert main([*args, "--cluster", cluster.scheduler_address, "--out", str(tmp_path / "c")]) == 0
    on_cluster = json.loads(capsys.readouterr().out)
    assert main([*args, "--workers", "1", "--out", str(tmp_path / "l")]) == 0
    assert on_cluster == {**json.loads(capsys.readouterr().out), "report": on_cluster["report"]}
    text = (tmp_path / "c" / "capacity.json").read_text()
    assert text == (tmp_path / "l" / "capacity.json").read_text()
    assert json.loads(text)["levels"][0]["mix"]["candidates"][0]["verdict"] == "met"


@pytest.mark.slow
def test_an_experiment_on_a_cluster_gives_the_bytes_of_a_local_run(cluster, tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(SCENARIO)
    path = tmp_path / "tiny-experiment.toml"
    path.write_text(EXPERIMENT)
    args = ["experiment", str(path), "--seeds", "2", "--quiet", "--json"]
    before = _finished(cluster, "run_on_worker")
    assert main([*args, "--cluster", cluster.scheduler_address, "--out", str(tmp_path / "c")]) == 0
    assert main([*args, "--workers", "2", "--out", str(tmp_path / "l")]) == 0
    capsys.readouterr()
    text = (tmp_path / "c" / "experiment.json").read_text()
    assert text == (tmp_path / "l" / "experiment.json").read_text()
    assert _finished(cluster, "run_on_worker") - before == 3 * 2  # variants x seeds


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path, capsys):
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    argv = ["size", "--interviews", "10", "--cluster", address, "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"callboard: --cluster: got '{address}'") and "dask scheduler" in err
    assert not (tmp_path / "x").exists()  # refused before any work


@pytest.mark.parametrize(
    ("pool", "field", "allowed"),
    [
        (dict(cluster="127.0.0.1:8786"), "--cluster", "tcp://HOST:PORT"),
        (dict(cluster="tcp://127.0.0.1"), "--cluster", "tcp://HOST:PORT"),
        (dict(cluster="tcp://127.0.0.1:8786", workers=2), "--workers", "nothing with --cluster"),
        (dict(workers=0), "--workers", ">= 1"),
    ],
)
def test_bad_pool_settings_are_named_before_any_work(pool, field, allowed):
    with pytest.raises(InvalidSetting, match=allowed) as refused:
        Pool(**pool)
    assert refused.value.field == field


def test_experiment_refuses_a_bad_address_with_exit_2(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(SCENARIO)
    path = tmp_path / "tiny-experiment.toml"
    path.write_text(EXPERIMENT)
    assert main(["experiment", str(path), "--cluster", "localhost:8786", "--quiet"]) == 2
    assert "callboard: --cluster: got 'localhost:8786'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_scheduler_without_workers_is_refused():
    with LocalCluster(
        n_workers=0, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as empty:
        pool = Pool(cluster=empty.scheduler_address, workers_timeout=1.0)
        with pytest.raises(InvalidSetting, match="none joined within 1 s"), pool.open():
            pass


def test_without_dask_installed_the_fix_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with (
        pytest.raises(InvalidSetting, match=r"callboard\[cluster\]"),
        Pool(cluster="tcp://127.0.0.1:8786").open(),
    ):
        pass


class _Workers:
    """What ``Client.run`` answers, per worker, without a cluster."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers

    def run(self, function, on_error):
        assert function is code_fingerprint and on_error == "return"
        return self.answers


def test_workers_running_other_code_are_refused_by_name():
    ours = code_fingerprint()
    _check_workers(_Workers({"tcp://w1": ours, "tcp://w2": ours}), "tcp://s:1")  # accepted
    with pytest.raises(InvalidSetting, match=r"worker tcp://w2 differs"):
        _check_workers(_Workers({"tcp://w1": ours, "tcp://w2": "0" * 64}), "tcp://s:1")
    broken = ModuleNotFoundError("No module named 'sims'")
    with pytest.raises(InvalidSetting, match=r"worker tcp://w1 failed: ModuleNotFoundError"):
        _check_workers(_Workers({"tcp://w1": broken}), "tcp://s:1")


def test_the_fingerprint_follows_the_code(tmp_path, monkeypatch):
    first = code_fingerprint()
    assert first == code_fingerprint() and len(first) == 64
    # A different numpy, as a worker might have, is a different fingerprint.
    import numpy

    monkeypatch.setattr(numpy, "__version__", "0.0.0")
    assert code_fingerprint() != first


@pytest.mark.slow
def test_a_worker_running_other_code_fails_its_task_by_name(cluster):
    # Workers that join after the up-front check are checked by every task they run.
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        wrong = _CheckedExecutor(client.get_executor(pure=False), "0" * 64, width=1)
        with pytest.raises(WorkerMismatch, match=r"--cluster: a worker .* runs other callboard"):
            wrong.submit(sum, [1, 2]).result()
        right = _CheckedExecutor(client.get_executor(pure=False), code_fingerprint(), width=1)
        assert right.submit(sum, [1, 2]).result() == 3
