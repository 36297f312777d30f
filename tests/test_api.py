"""The embedding API: ``engine`` exports exactly these names, each the real thing."""

from __future__ import annotations

import subprocess
import sys

import pytest

import engine
import engine.errors

#: The names besides the error tree (pinned class by class in tests/test_errors.py).
PUBLIC = {
    "AsyncioRouter",
    "ChatMessage",
    "ChatRequest",
    "Completion",
    "LiveConfig",
    "LiveRouter",
    "SessionBusy",
    "UnknownSession",
    "load_config",
    "open_asyncio_router",
    "open_router",
    *engine.errors.__all__,
}


def test_the_public_names_are_pinned():
    # Adding or removing a public name is a decision: change this list with it.
    assert set(engine.__all__) == PUBLIC
    assert len(engine.__all__) == len(PUBLIC)


def test_every_public_name_resolves_to_the_object_its_module_defines():
    for name in engine.__all__:
        value = getattr(engine, name)
        home = sys.modules[value.__module__]
        assert getattr(home, name) is value, name
    assert set(engine.__all__) <= set(dir(engine))


def test_errors_share_one_base_and_settings_are_not_requests():
    values = [getattr(engine, n) for n in engine.__all__]
    errors = [v for v in values if isinstance(v, type) and issubclass(v, BaseException)]
    assert len(errors) == 26
    assert all(issubclass(e, engine.CallboardError) for e in errors)
    assert not issubclass(engine.InvalidSetting, engine.InvalidRequest)
    assert not issubclass(engine.InvalidRequest, engine.InvalidSetting)
    error = engine.InvalidSetting("cache.ttl", -1, "> 0 seconds")
    assert str(error) == "cache.ttl: got -1; allowed: > 0 seconds"
    assert (error.field, error.value, error.code, error.status) == (
        "cache.ttl",
        -1,
        "invalid_setting",
        400,
    )


def test_an_unknown_name_is_an_attribute_error_that_names_it():
    try:
        engine.open_routr  # noqa: B018
    except AttributeError as exc:
        assert "open_routr" in str(exc)
    else:
        raise AssertionError("engine.open_routr resolved")


@pytest.mark.slow
def test_importing_the_api_does_not_load_the_live_stack_until_asked():
    code = (
        "import sys, engine; "
        "print(sorted(m for m in sys.modules if m.startswith('engine.serve'))); "
        "engine.open_router; "
        "print('engine.serve.live_router' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "True"]
