"""Write docs/reference.md, every scenario and config key with its default, from the code.

    .venv/bin/python docs/reference.py           # rewrite docs/reference.md
    .venv/bin/python docs/reference.py --check   # fail if docs/reference.md is stale

The keys, types and defaults are read from the attrs classes that scenario files and
live configs are structured into (``Scenario`` and ``LiveConfig``, and every class they
hold); a key's note is the ``#:`` comment above its field or the comment after it.
Nothing here is typed by hand, so the page cannot drift from the code.
"""

from __future__ import annotations

import enum
import inspect
import io
import math
import re
import sys
import tokenize
import types
import typing
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actors.limits import OUTPUT_UNITS  # noqa: E402
from actors.runtime.distributions import Constant, Empirical, Exponential, LogNormal  # noqa: E402
from engine.serve.error_codes import ANSWERS, ATTEMPT_CODES  # noqa: E402
from engine.serve.live_config import LiveConfig  # noqa: E402
from sims.profiles import PROFILES  # noqa: E402
from sims.scenario import Scenario  # noqa: E402

PAGE = ROOT / "docs" / "reference.md"
Z95 = 1.6448536269514722
DISTRIBUTIONS = (Constant, Empirical, Exponential, LogNormal)


def field_notes(cls: type) -> dict[str, str]:
    """Each field's ``#:`` comments (above it) and trailing comment, from the source of
    the class that declares it (a subclass's note wins over its base's)."""
    notes: dict[str, str] = {}
    for declaring in reversed(cls.__mro__):
        if attrs.has(declaring):
            notes.update(_declared_notes(declaring))
    return notes


def _declared_notes(cls: type) -> dict[str, str]:
    """The notes of the fields written in ``cls``'s own source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments: dict[int, tuple[str, bool]] = {}  # line -> (text, is it alone on its line)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            alone = not tok.line[: tok.start[1]].strip()
            comments[tok.start[0]] = (tok.string.lstrip("#").lstrip(":").strip(), alone)
    notes: dict[str, str] = {}
    lines = source.splitlines()
    names = {f.name for f in attrs.fields(cls)}
    for number, line in enumerate(lines, start=1):
        found = re.match(r"\s{4}(\w+)\s*:", line)
        if not found or found.group(1) not in names:
            continue
        above: list[str] = []
        n = number - 1
        while n in comments and comments[n][1] and lines[n - 1].lstrip().startswith("#:"):
            above.insert(0, comments[n][0])
            n -= 1
        after = comments.get(number)
        text = " ".join(above)
        if after and not after[1]:
            text = f"{text} {after[0]}".strip()
        notes[found.group(1)] = text
    return notes


def unwrap(hint: object) -> tuple[type | None, bool, bool]:
    """(the attrs class inside a hint, is it a list, can it be unset)."""
    optional = False
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        optional = type(None) in args
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            return None, False, optional
        hint = rest[0]
    if typing.get_origin(hint) is tuple:
        inner = typing.get_args(hint)[0]
        if attrs.has(inner):
            return inner, True, optional
        return None, False, optional
    if isinstance(hint, type) and attrs.has(hint) and hint not in DISTRIBUTIONS:
        return hint, False, optional
    return None, False, optional


def show_type(text: str) -> str:
    text = str(text).replace("DistributionSpec", "distribution")
    text = re.sub(r"tuple\[(.+?), \.\.\.\]", r"list of \1", text)
    text = re.sub(r"dict\[str, str\]", "table of strings", text)
    text = text.replace(" | None", ", or unset")
    return text


def number(value: float) -> str:
    if value == math.inf:
        return '"inf"'
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value)) if isinstance(value, int) else f"{value:.1f}"
    return f"{value:.6g}"


def show(value: object) -> str:
    """A default as it would be written in TOML."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, LogNormal):
        median = math.exp(value.mu)
        return (
            f'{{ kind = "lognormal", median = {number(round(median, 6))}, '
            f"p95 = {number(round(median * math.exp(Z95 * value.sigma), 6))} }}"
        )
    if isinstance(value, Constant):
        return number(value.value)
    if isinstance(value, Exponential | Empirical):
        fields = ", ".join(f"{k} = {show(v)}" for k, v in attrs.asdict(value).items())
        return f'{{ kind = "{type(value).__name__.lower()}", {fields} }}'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else "{ ... }"
    return str(value)


def default_of(field: attrs.Attribute, parent: object | None) -> object:
    if parent is not None:
        return getattr(parent, field.name)
    if field.default is attrs.NOTHING:
        return attrs.NOTHING
    if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
        return field.default.factory()  # type: ignore[union-attr]
    return field.default


def tables(cls: type, path: str, instance: object | None, out: dict[str, list]) -> None:
    """Fill ``out[path]`` with [class, (key, type, default, note) rows, notes on the table]."""
    hints = typing.get_type_hints(cls)
    notes = field_notes(cls)
    rows = out.setdefault(path, [cls, [], []])[1]
    for field in attrs.fields(cls):
        if field.name.startswith("_") or not field.init:
            continue
        inner, is_list, _ = unwrap(hints[field.name])
        default = default_of(field, instance)
        if inner is None:
            shown = "required" if default is attrs.NOTHING else show(default)
            hint = hints[field.name]
            type_ = (
                "one of " + ", ".join(f"`{v}`" for v in hint)
                if isinstance(hint, type) and issubclass(hint, enum.StrEnum)
                else field.type
            )
            rows.append((field.name, type_, shown, notes.get(field.name, "")))
            continue
        child = f"{path}.{field.name}" if path else field.name
        kept = default if attrs.has(type(default)) else None
        tables(inner, child, kept, out)
        said = out[child][2]
        if is_list:
            said.append(
                "a list of tables (`[["
                + child
                + "]]`, or an inline array)"
                + ("; required" if default is attrs.NOTHING else "; empty by default")
            )
        elif default is None and path == "accounts":
            said.append("unset by default: the account keeps its profile's")
        elif default is None:
            said.append("unset by default")


def markdown(text: str) -> str:
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?(\w+)`", r"`\1`", text)
    return re.sub(r"``(.+?)``", r"`\1`", text)


def doc_of(cls: type) -> str:
    """The class's docstring, then those of the attrs classes it extends."""
    docs = []
    for klass in cls.__mro__:
        doc = klass.__dict__.get("__doc__") or ""
        if attrs.has(klass) and doc and not doc.startswith(f"{klass.__name__}("):
            docs.append(inspect.cleandoc(doc))
    return markdown(" ".join(docs))


def render_table(path: str, cls: type, rows: list, extra: list[str]) -> list[str]:
    listed = any(e.startswith("a list") for e in extra)
    title = f"[[{path}]]" if listed else f"[{path}]"
    lines = [f"### `{title}`" if path else "### Top level", ""]
    doc = doc_of(cls)
    lines.append(f"From `{cls.__name__}`." + (f" {' '.join(doc.split())}" if doc else ""))
    if extra:
        lines.append("The table is " + "; ".join(extra) + ".")
    lines.append("")
    lines.append("| key | type | default | note |")
    lines.append("|---|---|---|---|")
    for key, type_, default, note in rows:
        note = markdown(note).replace("|", "\\|")
        default = default.replace("|", "\\|")
        lines.append(f"| `{key}` | {show_type(type_)} | `{default}` | {note} |")
    lines.append("")
    return lines


def collect(root: type) -> dict[str, list]:
    out: dict[str, list] = {}
    tables(root, "", None, out)
    return out


PERIODS = {1.0: "second", 60.0: "minute", 300.0: "5 minutes", 3600.0: "hour", 86400.0: "day"}


def period(seconds: float) -> str:
    return PERIODS.get(float(seconds), f"{number(seconds)} s")


def limit_text(limit: object) -> str:
    how = "fixed window" if limit.mode == "window" else "refilling"
    if limit.enforce_every is not None:
        how += f", enforced per {period(limit.enforce_every)}"
    return f"{number(limit.limit)} {limit.unit}/{period(limit.per)} ({how})"


def limit_rows() -> list[str]:
    """One row per limit of every profile: what it counts, how, and where it comes from."""
    lines = [
        "### Their limits",
        "",
        "Each limit as the provider enforces it. A *bucket* refills continuously up to its",
        "size; a *window* counts from zero at each boundary (`[k * per, (k + 1) * per)`). A",
        "bucket *enforced per* a shorter slice holds one slice's share at once (60 per minute",
        "enforced per second: a burst of 1) at the same steady rate; a prompt longer than a",
        "slice enters only a full bucket. *Output charged*: the output estimate (`max_tokens`,",
        "else the expected output) is charged at admission; *adjusted* limits swap it for the",
        "actual output when the call ends. `tokens` is input + output.",
        "",
        "| profile | limit | unit | size | per | kind | enforced per | output charged | source |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, profile in PROFILES.items():
        for limit in profile.spec.limits:
            every = "-" if limit.enforce_every is None else period(limit.enforce_every)
            charged = "-"
            if limit.unit in OUTPUT_UNITS:
                charged = "estimate, adjusted to actual" if limit.adjust_output else "estimate"
            lines.append(
                f"| `{name}` | {limit.name} | {limit.unit} | {number(limit.limit)} | "
                f"{period(limit.per)} | {limit.mode} | {every} | {charged} | "
                f"{' '.join(limit.source.split())} |"
            )
    return [*lines, ""]


def profiles() -> list[str]:
    lines = [
        "## Provider profiles",
        "",
        "What `[[accounts]] profile = ...` starts from; any account key above overrides it",
        "(`[[accounts.limits]]` replaces the profile's limits: leave `enforce_every` unset",
        "there to read a per-minute limit over the whole minute).",
        "The `source` says where each figure comes from.",
        "",
        "| profile | tier | limits | slots / queue | $ per M tokens in / out | monthly fee |"
        " $ per powered hour | latency | source |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, profile in PROFILES.items():
        spec = profile.spec
        limits = "; ".join(limit_text(limit) for limit in spec.limits) or "none"
        latency = (
            f"ttft {show(profile.latency.ttft)}, {number(profile.latency.tokens_per_s)} tokens/s"
        )
        lines.append(
            f"| `{name}` | {spec.tier} | {limits} | {spec.max_concurrency} / {spec.queue_limit} | "
            f"{number(spec.input_cost_per_mtok)} / {number(spec.output_cost_per_mtok)} | "
            f"{number(spec.monthly_fee)} | {number(spec.hourly_cost)} | `{latency}` | "
            f"{' '.join(profile.source.split())} |"
        )
    return [*lines, "", *limit_rows()]


def error_codes() -> list[str]:
    """The table of :mod:`engine.serve.error_codes`: every error answer of the server."""
    lines = [
        "## HTTP error codes",
        "",
        'Every error `callboard serve` answers with, as `{"error": {"message", "type",',
        '"param", "code"}}` (on `/v1/messages`, in Anthropic\'s shape with the same fields),',
        "a WebSocket `error` event or a stream's last event. A code is the error's own (the",
        "tree of `engine/errors.py`) unless the surface sets it (`error` says which).",
        "",
        "| status | `code` | error | when |",
        "|---|---|---|---|",
    ]
    for answer in ANSWERS:
        error = f"`{answer.error}`" if answer.error.isidentifier() else answer.error
        lines.append(f"| {answer.status} | `{answer.code}` | {error} | {markdown(answer.when)} |")
    codes = ", ".join(f"`{code}`" for code in ATTEMPT_CODES)
    lines += [
        "",
        f"Each of a `request_failed` body's `attempts` has the code of that attempt: {codes}.",
        "",
    ]
    return lines


def render() -> str:
    scenario = collect(Scenario)
    live = collect(LiveConfig)
    shared = [p for p in scenario if p and p in live and scenario[p][0] is live[p][0]]
    lines = [
        "# Scenario and config reference",
        "",
        "<!-- Generated by docs/reference.py from the code; do not edit by hand. -->",
        "",
        "Every key a scenario file (`callboard simulate`, `size`, `experiment`, `replay`) or a",
        "live config (`callboard serve`, `engine.open_router`) takes, with its default. An",
        "unknown key is refused with the list of allowed ones; a value out of range is refused",
        "with what is allowed (an `InvalidSetting`, collected into one `ScenarioError` or",
        "`ConfigError` that lists every problem). `--set KEY=VALUE` takes the same keys",
        "(`--set accounts[0].count=4`, `--set retry.max_attempts=2`). Last, every",
        "[error code](#http-error-codes) `callboard serve` answers with.",
        "",
        "A duration is in seconds. A *distribution* is a number (a constant) or a table:",
        '`{ kind = "lognormal", median = M, p95 = P }` (or `mu`, `sigma`),',
        '`{ kind = "exponential", mean = M }`, `{ kind = "constant", value = V }`, or',
        '`{ kind = "empirical", points = [[0, LOW], [50, MEDIAN], [100, HIGH]] }`',
        "(percentile, value).",
        "",
        "## Scenario files",
        "",
    ]
    for path, (cls, rows, extra) in scenario.items():
        if path not in shared:
            lines += render_table(path, cls, rows, extra)
    lines += profiles()
    lines += ["## Live config (`callboard serve`, `engine.open_router`)", ""]
    for path, (cls, rows, extra) in live.items():
        if path not in shared:
            lines += render_table(path, cls, rows, extra)
    lines += [
        "## Tables both take",
        "",
        "A scenario and a live config take these tables with the same keys. Where the",
        "default differs, the live one is given after the scenario's (`scenario / live`).",
        "",
    ]
    for path in shared:
        cls, rows, _ = scenario[path]
        live_rows = {r[0]: r for r in live[path][1]}
        merged = []
        for key, type_, default, note in rows:
            other = live_rows[key][2]
            merged.append(
                (key, type_, default if other == default else f"{default} / {other}", note)
            )
        lines += render_table(path, cls, merged, [])
    lines += error_codes()
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(
                "docs/reference.md is stale: run .venv/bin/python docs/reference.py",
                file=sys.stderr,
            )
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
