"""The error tree is pinned: every error callboard raises on purpose, its parents, code and
status, as :mod:`engine.errors` draws it. Changing the tree means changing this table."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
import trio

import actors
import engine
import engine.errors
import sims
from actors.runtime.errors import CallboardError, leaves
from engine.routing.fleet import open_fleet
from sims.experiment import ExperimentError
from sims.scenario import ScenarioError
from tests.conftest import virtual_account

# name: (parents, code, status)
TREE: dict[str, tuple[tuple[str, ...], str, int]] = {
    "CallboardError": (("Exception",), "error", 500),
    "FieldError": (("CallboardError",), "invalid_value", 400),
    "InvalidSetting": (("FieldError",), "invalid_setting", 400),
    "InvalidRequest": (("FieldError",), "invalid_request", 400),
    "ConfigError": (("CallboardError",), "invalid_config", 500),
    "ScenarioError": (("ConfigError",), "invalid_config", 500),
    "ExperimentError": (("ScenarioError",), "invalid_config", 500),
    "Overloaded": (("CallboardError",), "overloaded", 503),
    "ShuttingDown": (("CallboardError",), "shutting_down", 503),
    "ActorCrashed": (("CallboardError",), "actor_crashed", 500),
    "AttemptError": (("CallboardError",), "attempt_failed", 500),
    "RateLimited": (("AttemptError",), "rate_limited", 429),
    "UpstreamError": (("AttemptError",), "upstream_error", 502),
    "BackendFailed": (("UpstreamError",), "upstream_error", 502),
    "ConnectionFailed": (("UpstreamError",), "upstream_error", 502),
    "Unreachable": (("ConnectionFailed",), "unreachable", 502),
    "StreamBroken": (("UpstreamError",), "upstream_error", 502),
    "UpstreamRejected": (("AttemptError",), "upstream_rejected", 502),
    "AttemptTimeout": (("AttemptError",), "timeout", 504),
    "DeadlineReached": (("AttemptError",), "deadline", 504),
    "AnswerCapReached": (("AttemptError",), "answer_cap", 504),
    "ProviderOverloaded": (("AttemptError",), "overloaded", 503),
    "MalformedReply": (("AttemptError",), "malformed_reply", 502),
    "AnswerTooLarge": (("MalformedReply",), "malformed_reply", 502),
    "EventTooLarge": (("AnswerTooLarge",), "malformed_reply", 502),
    "InflatedTooLarge": (("AnswerTooLarge",), "malformed_reply", 502),
    "LineTooLong": (("AnswerTooLarge",), "malformed_reply", 502),
    "ReplyTooLarge": (("AnswerTooLarge",), "malformed_reply", 502),
    "StreamTooLarge": (("AnswerTooLarge",), "malformed_reply", 502),
    "AuthFailed": (("AttemptError",), "auth_failed", 502),
    "QueueFull": (("AttemptError",), "queue_full", 503),
    "CircuitOpen": (("AttemptError",), "circuit_open", 503),
    "StreamAlreadyStarted": (("AttemptError",), "stream_interrupted", 500),
    "RequestFailed": (("CallboardError",), "request_failed", 502),
    "NoProviderAvailable": (("RequestFailed",), "no_provider", 503),
    "Shed": (("NoProviderAvailable",), "shed", 503),
    "LineFull": (("NoProviderAvailable", "Overloaded"), "overloaded", 503),
    "DeadlineExceeded": (("RequestFailed",), "deadline_exceeded", 504),
    "RetryBudgetExhausted": (("RequestFailed",), "retry_budget_exhausted", 503),
    "UnknownSession": (("CallboardError",), "session_not_found", 404),
    "SessionBusy": (("CallboardError",), "session_busy", 409),
    "Unauthorized": (("CallboardError",), "invalid_api_key", 401),
    "OverBudget": (("CallboardError",), "rate_limit_exceeded", 429),
    "NotAdmin": (("CallboardError",), "not_admin", 403),
    "BodyTooLarge": (("CallboardError",), "body_too_large", 413),
    "BodyTimeout": (("CallboardError",), "body_timeout", 408),
    "NotFound": (("CallboardError",), "not_found", 404),
    "MethodNotAllowed": (("CallboardError",), "method_not_allowed", 405),
    "AddressInUse": (("CallboardError",), "address_in_use", 500),
    "WorkerMismatch": (("CallboardError",), "worker_mismatch", 500),
}


def _public_errors() -> dict[str, type[CallboardError]]:
    """Every CallboardError class with a public name in engine, actors and sims."""
    for package in (engine, actors, sims):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    found: dict[str, type[CallboardError]] = {"CallboardError": CallboardError}
    todo = [CallboardError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if not sub.__name__.startswith("_"):
                assert found.setdefault(sub.__name__, sub) is sub, f"two {sub.__name__} classes"
                todo.append(sub)
    return found


def test_every_error_sits_in_the_tree_with_its_parents_code_and_status():
    errors = _public_errors()
    assert sorted(errors) == sorted(TREE)
    for name, cls in errors.items():
        parents = tuple(base.__name__ for base in cls.__bases__)
        assert (parents, cls.code, cls.status) == TREE[name], name


def test_the_docstring_draws_the_tree_that_the_code_has():
    errors = _public_errors()
    drawn: dict[str, set[str]] = {}
    path: list[str] = []
    lines = re.findall(r"^( *)\* (\w+) +(\w+) +(\d+) +([\w.]+)$", engine.errors.__doc__, re.M)
    for indent, name, code, status, module in lines:
        depth = (len(indent) - 4) // 2
        path[depth:] = [name]
        drawn.setdefault(name, set()).update(path[-2:-1] or ["Exception"])
        cls = errors[name]
        assert (code, int(status), module) == (cls.code, cls.status, cls.__module__), name
    assert {name: set(parents) for name, (parents, _, _) in TREE.items()} == drawn


def test_retry_after_is_declared_once_and_none_unless_known():
    assert CallboardError("x").retry_after is None
    assert engine.RequestFailed("r-1", "gave up", []).retry_after is None
    assert engine.RateLimited("a", "requests", 2.5).retry_after == 2.5
    assert engine.ShuttingDown("stopping").retry_after == 1.0
    assert engine.LineFull("r-1", [], 30, 4.0).retry_after == 4.0


def test_a_full_line_is_caught_as_overloaded_and_as_no_provider():
    for caught in (engine.Overloaded, engine.NoProviderAvailable, engine.RequestFailed):
        with pytest.raises(caught) as error:
            raise engine.LineFull("r-1", [], 30, 4.0)
        assert error.value.code == "overloaded" and error.value.request_id == "r-1"


@pytest.mark.parametrize(
    ("cls", "noun"),
    [(engine.ConfigError, "config"), (ScenarioError, "scenario"), (ExperimentError, "experiment")],
)
def test_a_config_error_is_a_callboard_error_not_a_value_error(cls, noun):
    problems = ["retry.max_attempts = 0 is not allowed"]
    error = cls("x.toml", problems)
    assert isinstance(error, CallboardError) and not isinstance(error, ValueError)
    assert str(error) == f"invalid {noun} x.toml:\n  - retry.max_attempts = 0 is not allowed"
    assert (error.code, error.problems) == ("invalid_config", problems)


@pytest.mark.parametrize(("names", "field"), [((), "providers"), (("a", "a"), "providers.name")])
async def test_a_router_without_accounts_or_with_twins_is_an_invalid_setting(
    virtual_clock, names, field
):
    with pytest.raises(BaseExceptionGroup) as caught:
        async with open_fleet([virtual_account(name)[0] for name in names]):
            await trio.sleep(0)
    (error,) = leaves(caught.value)
    assert isinstance(error, engine.InvalidSetting) and error.field == field


def test_leaves_finds_the_errors_inside_nested_groups():
    one, two = KeyError("one"), ValueError("two")
    assert leaves(one) == [one]
    assert leaves(ExceptionGroup("g", [ExceptionGroup("h", [one])])) == [one]
    assert leaves(ExceptionGroup("g", [one, ExceptionGroup("h", [two])])) == [one, two]
