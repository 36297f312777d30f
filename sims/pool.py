"""Where sizing and experiments run their simulations: local processes or a Dask cluster.

Both submit independent, seeded simulations and only read their results, so any
``concurrent.futures.Executor`` serves: a process pool over this machine's cores by
default, or, with ``cluster="tcp://HOST:PORT"``, the executor of a Dask distributed
client (``pip install 'callboard[cluster]'``). A simulation is a function of its
arguments, so where it runs changes no number; what could change one is a worker
running other code, so :meth:`Pool.open` checks every connected worker's
:func:`code_fingerprint` against this machine's before any work is sent, and every
task checks it again on the worker that runs it (workers may join later).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs

from actors.runtime.errors import CallboardError, InvalidSetting, require

_ADDRESS = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
#: The packages whose code decides a simulation's numbers.
_PACKAGES = ("actors", "engine", "sims")
CLUSTER_EXTRA = "pip install 'callboard[cluster]'"


def code_fingerprint() -> str:
    """A hash of what decides a simulation's numbers here: the code and its runtime.

    Runs on every Dask worker too; a worker whose hash differs from the client's
    would compute other numbers for the same seed.
    """
    import numpy

    digest = hashlib.sha256()
    digest.update(f"python {sys.version_info[0]}.{sys.version_info[1]}\n".encode())
    digest.update(f"numpy {numpy.__version__}\ntrio {metadata.version('trio')}\n".encode())
    for package in _PACKAGES:
        spec = importlib.util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec else []:
            base = Path(root)
            files = sorted(p for p in base.rglob("*") if p.suffix in {".py", ".toml"})
            for path in files:
                digest.update(f"{package}/{path.relative_to(base).as_posix()}\n".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def quiet_simulation_logs() -> None:
    """Keep the virtual world's log lines (quota alerts ...) out of the worker's stderr.

    A sizing run's hundreds of simulations would each log their own alerts, in virtual
    time, interleaved across processes, burying the progress lines; each alert is in its
    run's results already. Idempotent, and only ``callboard`` loggers are touched.
    """
    callboard = logging.getLogger("callboard")
    if not any(isinstance(h, logging.NullHandler) for h in callboard.handlers):
        callboard.addHandler(logging.NullHandler())
    callboard.propagate = False


class WorkerMismatch(CallboardError):
    """A Dask worker runs other code than the client: its numbers would not match."""

    code = "worker_mismatch"


@functools.cache
def _fingerprint_here() -> str:
    """This process's fingerprint, computed once (a worker checks it on every task)."""
    return code_fingerprint()


def run_on_worker(expected: str, function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function`` on a worker, unless the worker runs other code than the client."""
    here = _fingerprint_here()
    if here != expected:
        raise WorkerMismatch(
            f"--cluster: a worker ({socket.gethostname()}, pid {os.getpid()}) runs other "
            "callboard code, Python, numpy or trio than this machine; its results would "
            "not match a local run: install the same checkout on every worker"
        )
    quiet_simulation_logs()
    return function(*args)


class _LocalExecutor(ProcessPoolExecutor):
    """Processes on this machine, which say how many simulations run at once."""

    def __init__(self, width: int) -> None:
        super().__init__(max_workers=width, initializer=quiet_simulation_logs)
        self.width = width


class _CheckedExecutor(Executor):
    """A Dask client's executor whose every task first checks the worker's code."""

    def __init__(self, inner: Executor, expected: str, width: int) -> None:
        self._inner = inner
        self._expected = expected
        #: The cluster's worker threads when it was opened: how many simulations run at once.
        self.width = width

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        return self._inner.submit(run_on_worker, self._expected, fn, *args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait=wait)


@attrs.frozen
class Pool:
    """Where simulations run: ``workers`` local processes, or the Dask ``cluster`` at an address.

    Built (and so validated) before any simulation starts; :meth:`open` connects.
    """

    workers: int | None = None
    cluster: str | None = None
    #: How long to wait for the scheduler to answer.
    connect_timeout: float = 10.0
    #: How long to wait for a first worker to join (workers started with the scheduler
    #: take a few seconds to import and register).
    workers_timeout: float = 30.0

    def __attrs_post_init__(self) -> None:
        if self.workers is not None:
            require("--workers", self.workers >= 1, self.workers, ">= 1 simulation processes")
        if self.cluster is not None:
            require(
                "--cluster",
                bool(_ADDRESS.match(self.cluster)),
                self.cluster,
                "a Dask scheduler's address tcp://HOST:PORT, e.g. tcp://127.0.0.1:8786",
            )
            require(
                "--workers",
                self.workers is None,
                self.workers,
                "nothing with --cluster: the cluster's workers run the simulations",
            )

    @contextmanager
    def open(self) -> Iterator[_LocalExecutor | _CheckedExecutor]:
        """An executor for the simulations, whose ``width`` says how many run at once;
        closed (pending work cancelled) on the way out."""
        if self.cluster is None:
            with _LocalExecutor(self.workers or os.cpu_count() or 1) as processes:
                yield processes
            return
        with _dask_client(self.cluster, self.connect_timeout, self.workers_timeout) as client:
            executor = _CheckedExecutor(
                client.get_executor(pure=False),
                code_fingerprint(),
                sum(client.nthreads().values()),
            )
            try:
                yield executor
            finally:
                executor.shutdown(wait=False)  # cancels what is still pending after an error


@contextmanager
def _dask_client(address: str, timeout: float, workers_timeout: float) -> Iterator[Any]:
    """A client of the scheduler at ``address`` with at least one worker running this code."""
    try:
        from distributed import Client
    except ImportError:
        raise InvalidSetting(
            "--cluster", address, f"an address, once Dask distributed is installed: {CLUSTER_EXTRA}"
        ) from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise InvalidSetting(
            "--cluster",
            address,
            f"a Dask scheduler that answers (none did within {timeout:g} s: {exc}); "
            f"start one with `dask scheduler` and workers with `dask worker {address}`",
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=workers_timeout)
        except (OSError, TimeoutError):
            raise InvalidSetting(
                "--cluster",
                address,
                f"a scheduler with workers (none joined within {workers_timeout:g} s); "
                f"start some with `dask worker {address}`",
            ) from None
        _check_workers(client, address)
        yield client
    finally:
        client.close()


def _check_workers(client: Any, address: str) -> None:
    """Refuse a cluster whose workers would compute other numbers than this machine."""
    ours = code_fingerprint()
    theirs = client.run(code_fingerprint, on_error="return")
    for worker, answer in sorted(theirs.items()):
        if isinstance(answer, BaseException):
            raise InvalidSetting(
                "--cluster",
                address,
                f"workers that can run callboard (worker {worker} failed: "
                f"{type(answer).__name__}: {answer})",
            )
        if answer != ours:
            raise InvalidSetting(
                "--cluster",
                address,
                f"workers running the same callboard, Python, numpy and trio as this machine "
                f"(worker {worker} differs: results would not match a local run)",
            )
