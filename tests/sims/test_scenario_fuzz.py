"""The scenario loader under garbage, with hypothesis: a built-in scenario with one key
replaced, added or removed at random must load or be refused with a ScenarioError that
names that key; nothing else may escape, and nothing may hang."""

from __future__ import annotations

import copy
import math
import tomllib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sims.scenario import SCENARIO_DIR, ScenarioError, builtin_names, structure

CASES = 300

BASES = {
    name: tomllib.loads((SCENARIO_DIR / f"{name}.toml").read_text()) for name in builtin_names()
}

#: Values of every TOML kind, plus the numbers that break careless checks.
junk = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0, -1, 1e308, -0.0, math.nan, math.inf, -math.inf]),
        st.text(max_size=12),
        st.sampled_from(["", "lognormal", "constant", "poisson", "outage", "*", "huggingface"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a parsed TOML tree (list items by index)."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        found.append((*prefix, key))
        if isinstance(value, dict | list):
            found.extend(paths(value, (*prefix, key)))
    return found


def named(path: tuple) -> list[str]:
    """Names a problem report may give the key by: its own, or its table's."""
    names = [str(p) for p in path if not isinstance(p, int)]
    names += [repr(n)[1:-1] for n in names]  # as a problem quotes an odd key
    if path[0] == "accounts" and path[-1] in ("name", "profile"):
        names += ["autoscaler.group", "].target"]  # what refers to an account group
    return names or ["accounts", "faults"]


@st.composite
def mutated(draw) -> tuple[dict, tuple, str]:
    name = draw(st.sampled_from(sorted(BASES)))
    raw = copy.deepcopy(BASES[name])
    path = draw(st.sampled_from(paths(raw)))
    *parents, last = path
    node = raw
    for part in parents:
        node = node[part]
    action = draw(st.sampled_from(["replace", "replace", "add", "remove"]))
    if action == "replace":
        node[last] = draw(junk)
    elif action == "add" and isinstance(node, dict):
        extra = draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in node))
        node[extra] = draw(junk)
        path = (*parents, extra)
    elif isinstance(node, dict):
        del node[last]
    else:
        node[last] = draw(junk)
    return raw, path, action


@pytest.mark.slow
@given(mutated())
@settings(
    max_examples=CASES,
    deadline=2000,  # ms per case: a hang or a runaway loop fails the test
    suppress_health_check=[HealthCheck.too_slow],
)
def test_a_damaged_scenario_loads_or_is_refused_naming_the_key(case):
    raw, path, action = case
    try:
        structure(raw, "fuzz.toml")
    except ScenarioError as error:
        text = str(error)
        assert error.problems and text.startswith("invalid scenario fuzz.toml"), text
        if action != "remove":  # a removed key may leave a different one required
            assert any(name in text for name in named(path)), (path, text)


def test_an_absurd_account_count_is_refused_at_once_not_built():
    raw = copy.deepcopy(BASES["interview-day"])
    raw["accounts"][0]["count"] = 10**12
    with pytest.raises(ScenarioError, match=r"accounts\[0\]\.count = 1000000000000 .* 1 \.\. 5000"):
        structure(raw, "fuzz.toml")
