"""The config converter: TOML tables in, validated attrs classes out, errors by key.

Scenario files (:mod:`sims.scenario`) and the live router's config
(:mod:`engine.serve.live_config`) share it, so a key means the same and fails the
same way in both: strict types (``1`` is no float where a bool is wanted),
distributions written as a number or a ``{kind = ...}`` table, unknown keys named,
and every problem listed with its key. ``--set key=value`` overrides go through
:func:`apply_override` on the raw tables before structuring.
"""

from __future__ import annotations

import math
import re
import tomllib
import typing
from enum import StrEnum
from typing import Any

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.v import format_exception, transform_error

from actors.runtime.distributions import Constant, Empirical, Exponential, LogNormal
from actors.runtime.errors import CallboardError, InvalidSetting


class ConfigError(CallboardError):
    """A config file that cannot run; lists every problem with its key.

    Raised while loading, before anything runs; each problem is an :class:`InvalidSetting`,
    an unknown key or a wrong type, written out with its key.
    """

    code = "invalid_config"

    #: What the file is, in the message: a config of the live router here.
    noun = "config"

    def __init__(self, source: str, problems: list[str]) -> None:
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid {self.noun} {source}:\n{listed}")
        self.source = source
        self.problems = problems


_DISTRIBUTIONS = {
    "constant": Constant,
    "exponential": Exponential,
    "lognormal": LogNormal,
    "empirical": Empirical,
}
_DISTRIBUTION_TYPES = frozenset(_DISTRIBUTIONS.values())


class _BadValue(ValueError):
    """A value of the wrong type; the message shows it."""


def _structure_distribution(value: Any, _: type) -> Any:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Constant(float(value))
    if not isinstance(value, dict) or "kind" not in value:
        raise _BadValue(
            f"expected a number or a table with kind = {' | '.join(_DISTRIBUTIONS)}, got {value!r}"
        )
    fields = dict(value)
    kind = fields.pop("kind")
    if kind not in _DISTRIBUTIONS:
        raise _BadValue(
            f"unknown distribution kind {kind!r}; allowed: {' | '.join(_DISTRIBUTIONS)}"
        )
    if kind == "lognormal" and "median" in fields:
        if set(fields) != {"median", "p95"}:
            raise _BadValue(
                f"lognormal takes median and p95, or mu and sigma; got {sorted(fields)}"
            )
        return _build(LogNormal.from_median_p95, fields["median"], fields["p95"])
    cls = _DISTRIBUTIONS[kind]
    allowed = [a.name for a in attrs.fields(cls)]
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise _BadValue(f"{kind} takes {allowed}, got unknown {unknown}")
    return _build(cls, **fields)


def _build(factory: Any, *args: Any, **kwargs: Any) -> Any:
    """Construct a distribution, turning its own complaint into a shown one."""
    try:
        return factory(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise _BadValue(str(exc)) from None


def _is_distribution_type(t: Any) -> bool:
    args = [a for a in typing.get_args(t) if a is not type(None)]
    return bool(args) and all(a in _DISTRIBUTION_TYPES for a in args)


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadValue(f"expected an integer, got {value!r}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadValue(f"expected a number, got {value!r}")
    return float(value)


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise _BadValue(f"expected a string, got {value!r}")
    return value


def _choice(value: Any, cls: type[StrEnum]) -> StrEnum:
    """One of an enum's values (a fault's ``kind``), else the values allowed."""
    if isinstance(value, str) and value in cls._value2member_map_:
        return cls(value)
    raise _BadValue(f"got {value!r}; allowed: {' | '.join(cls)}")


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise _BadValue(f"expected true or false, got {value!r}")
    return value


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(StrEnum, _choice)  # before str: an enum is a str
    converter.register_structure_hook_func(_is_distribution_type, _structure_distribution)
    for cls in _DISTRIBUTION_TYPES:
        converter.register_structure_hook(cls, _structure_distribution)
    converter.register_unstructure_hook_func(_is_distribution_type, _unstructure_distribution)
    for cls in _DISTRIBUTION_TYPES:
        converter.register_unstructure_hook(cls, _unstructure_distribution)
    converter.register_unstructure_hook(float, _unstructure_float)
    converter.register_unstructure_hook(StrEnum, lambda member: member.value)
    return converter


def _unstructure_float(value: float) -> float | str:
    return "inf" if value == math.inf else value


def _unstructure_distribution(value: Any) -> Any:
    if value is None:
        return None
    kind = next(k for k, cls in _DISTRIBUTIONS.items() if isinstance(value, cls))
    fields = attrs.asdict(value)
    if isinstance(value, Empirical):
        fields["points"] = [list(p) for p in value.points]
    return {"kind": kind, **fields}


CONVERTER = _converter()


def _describe(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, InvalidSetting):
        return f"{exc.field} = {exc.value!r} is not allowed; allowed: {exc.allowed}"
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = ", ".join(a.name for a in attrs.fields(exc.cl)) if attrs.has(exc.cl) else "?"
        return f"unknown key(s) {sorted(exc.extra_fields)}; allowed keys: {allowed}"
    if isinstance(exc, _BadValue):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required key is missing"  # its path names it
    return format_exception(exc, type_)


def _by_key(exc: cattrs.BaseValidationError, root: str) -> list[str]:
    """Every problem as ``key: what is wrong``, the key first as a user types it.

    cattrs writes ``description @ root.key``; a description that already starts with its
    key (``breaker.failure_threshold = 0 is not allowed``) keeps it, with the list index
    the path has (``accounts.profile = ...`` in ``accounts[0]`` reads ``accounts[0].profile``).
    """
    problems = []
    for line in transform_error(exc, root, _describe):
        message, _, path = line.rpartition(" @ ")
        key = path.removeprefix(root).lstrip(".")
        unindexed = re.sub(r"\[\d+\]", "", key)
        if not key or message.startswith(key):
            problems.append(message)
        elif message.startswith(f"{unindexed}."):
            problems.append(key + message.removeprefix(unindexed))
        else:
            problems.append(f"{key}: {message}")
    return problems


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _no_item(parts: list[str], items: list[Any], error: type[ConfigError]) -> ConfigError:
    """``accounts[5]: no such [[accounts]] table; there is 1 (accounts[0])``."""
    where, part = dotted(parts[:-1]), parts[-1]
    tables = bool(items) and all(isinstance(item, dict) for item in items)
    what = f"[[{where}]] table" if tables else f"item of {where}"
    count = len(items)
    if count == 0:
        there = f"{where} is empty"
    elif count == 1:
        there = f"there is 1 ({where}[0])"
    else:
        there = f"there are {count} ({where}[0] .. {where}[{count - 1}])"
    index = "" if part.isdigit() else f" ({part!r} is not an index)"
    return error("--set", [f"{dotted(parts)}: no such {what}{index}; {there}"])


#: ``[3]`` in a key: an index, as errors write it (``accounts[0].count``).
_INDEX = re.compile(r"\[(\d+)\]")


def key_parts(key: str) -> list[str]:
    """``accounts[0].count`` (as errors name it) or ``accounts.0.count``: the same parts."""
    return _INDEX.sub(r".\1", key.strip()).split(".")


def dotted(parts: list[str]) -> str:
    """Parts as errors name a key: ``accounts[0].count``."""
    return "".join(
        f"[{p}]" if p.isdigit() and i else f"{'.' if i else ''}{p}" for i, p in enumerate(parts)
    )


def apply_override(
    raw: dict[str, Any], assignment: str, error: type[ConfigError] = ConfigError
) -> None:
    """Apply ``key.sub=value`` to raw TOML; ``accounts[0].count=3`` (or
    ``accounts.0.count=3``) indexes a list.

    A bad assignment raises ``error``: the file kind it was meant for names itself.
    """
    if "=" not in assignment:
        raise error("--set", [f"{assignment!r} is not key=value"])
    key, text = assignment.split("=", 1)
    parts = key_parts(key)
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        where = dotted(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise _no_item(parts[: depth + 1], node, error)
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
            if not isinstance(node, dict | list):
                raise error("--set", [f"{where} is a value, not a table"])
    last = parts[-1]
    value = _parse_value(text.strip())
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise _no_item(parts, node, error)
        node[int(last)] = value
    else:
        node[last] = value


def describe_problems(exc: BaseException, root: str) -> list[str]:
    """Every problem of a failed ``CONVERTER.structure``, by key, for other config files."""
    if isinstance(exc, cattrs.BaseValidationError):
        return _by_key(exc, root)
    return [str(exc)]
