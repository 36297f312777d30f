"""The report's tables as (already formatted) rows of strings.

Markdown, HTML and the terminal all print these same rows, so the three can never
disagree about a number, and a number is formatted in exactly one place.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from sims.cache_use import CacheCounts
from sims.confidence import chance_of_misses
from sims.result_views import as_float, family_of
from sims.results import ProviderSummary, Results, RunMeta, RunSummary

PROVIDER_HEADERS = (
    "account",
    "calls",
    "load share",
    "slot utilisation",
    "429s",
    "failures",
    "cost",
)
FAMILY_HEADERS = (
    "family",
    "accounts",
    "calls",
    "load share",
    "mean slot utilisation",
    "429s",
    "failures",
    "cost",
)
FAILURE_HEADERS = ("outcome", "requests", "share of requests", "meaning")
ATTEMPT_HEADERS = ("code", "failed attempts")
TRANSITION_HEADERS = ("time (h:mm:ss)", "account", "change", "reason")
CACHE_HEADERS = (
    "turn kind",
    "lookups",
    "hits",
    "hit rate",
    "misses: first of their key",
    "after a failed identical request",
    "identical request in flight",
    "answered earlier, entry gone",
)

# What each outcome means, in the reader's words (actors/errors.py, engine/routing/errors.py).
OUTCOME_MEANINGS = {
    "cancelled": "the caller gave up before an answer",
    "invalid_request": "rejected before reaching any provider",
    "no_provider": (
        "no account could take it before its deadline: all at a rate limit, out of quota, "
        "quarantined or disabled"
    ),
    "deadline_exceeded": "the request's overall deadline passed",
    "request_failed": "the router tried and gave up (see failed attempts)",
    "overloaded": "capacity exhausted; shed with a Retry-After",
    "shed": "load shedding: the line would not clear before the deadline; shed with a "
    "Retry-After, lower priority first",
    "retry_budget_exhausted": "an attempt failed and the retry budget had no credit left",
    "error": "an unexpected error",
}


# --- formatting -------------------------------------------------------------------


def count(value: Any) -> str:
    number = as_float(value)
    return f"{number:,.0f}" if math.isfinite(number) else "n/a"


def percent(share: Any) -> str:
    """A share as a percentage that never rounds a miss to 100% or a few to 0%."""
    value = as_float(share)
    if not math.isfinite(value):
        return "n/a"
    if value in (0.0, 1.0) or 0.001 <= value <= 0.999:
        return f"{value * 100:.1f}%"
    for decimals in (2, 3):
        text = f"{value * 100:.{decimals}f}"
        if float(text) not in (0.0, 100.0):
            return f"{text}%"
    return "<0.001%" if value < 0.5 else ">99.999%"


def seconds(value: Any) -> str:
    """Seconds to three significant digits (no exponent notation)."""
    number = as_float(value)
    if number == math.inf:
        return "∞ s"  # an SLO percentile beyond the share of turns answered
    if not math.isfinite(number):
        return "n/a"
    if number == 0:
        return "0 s"
    if number < 0.001:
        return "<0.001 s"
    if number >= 100:
        return f"{number:,.0f} s"
    return f"{number:.3g} s"


def seconds_triple(values: list[Any]) -> str:
    """ "0.863 / 14.9 / 39.5 s": p50 / p95 / p99 with the unit once."""
    texts = [seconds(v) for v in values]
    if all(t == "n/a" for t in texts):
        return "n/a (none)"
    return " / ".join(t.removesuffix(" s") for t in texts) + " s"


def minutes(value_s: Any) -> str:
    number = as_float(value_s)
    return f"{number / 60:,.1f} min" if math.isfinite(number) else "n/a"


def money(value: Any) -> str:
    """Dollars: cents from $1 up, three significant digits below."""
    number = as_float(value)
    if not math.isfinite(number):
        return "n/a"
    if number == 0:
        return "$0.00"
    if abs(number) >= 1:
        return f"${number:,.2f}"
    return f"${number:.3g}" if abs(number) >= 1e-4 else "<$0.0001"


def clock(value_s: Any) -> str:
    """Simulated time as h:mm:ss, counted from the start of the run."""
    number = as_float(value_s)
    if not math.isfinite(number):
        return "n/a"
    whole = int(number)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def fresh_check(met: int, days: int, share: float, searched: str) -> str:
    """What the fresh days showed, and when some missed, that a fleet meeting the
    objectives on ``share`` of days misses that many that often (``searched``: "it never
    searched" / "the search never saw")."""
    said = f"it met them on {met} of {days} fresh days {searched}"
    missed = days - met
    if missed <= 0:
        return said
    chance = chance_of_misses(share, days, missed)
    return (
        f"{said}, as such a fleet may: one meeting them on exactly {percent(share)} of days "
        f"misses {missed} or more of {days} days {percent(chance)} of the time"
    )


def plural(n: Any, word: str, many: str | None = None) -> str:
    """ "1 account", "2 accounts", "3 families": a count with its noun agreeing (``many``:
    the plural, when it is not ``word`` + "s")."""
    return f"{count(n)} {word if as_float(n) == 1 else many or word + 's'}"


def _total(mapping: dict[str, int]) -> float:
    return sum(as_float(v) for v in mapping.values())


# --- rows -------------------------------------------------------------------------


def summary_rows(results: Results) -> list[tuple[str, str]]:
    """The headline figures, (label, value), in reading order."""
    s = results.summary
    error_share = s.interviews_with_error / s.interviews if s.interviews > 0 else math.nan
    slo = s.slo_metrics
    rows = [
        ("Requests", count(s.requests)),
        ("Answered", f"{count(s.answered)} of {count(s.requests)}"),
        ("Success rate (all requests)", percent(s.success_rate)),
        (
            "answer_p50 / p95 / p99: every candidate-facing turn, a cache hit at its ~0 s, "
            "a failed turn as ∞",
            seconds_triple([slo.answer_p50, slo.answer_p95, slo.answer_p99]),
        ),
        (
            "provider_p50 / p95 / p99: candidate-facing turns that needed a provider, "
            "a failed turn as ∞",
            seconds_triple([slo.provider_p50, slo.provider_p95, slo.provider_p99]),
        ),
        (
            "ttft_p50 / p95 / p99: time to first token of the same turns, a failed turn as ∞",
            seconds_triple([slo.ttft_p50, slo.ttft_p95, slo.ttft_p99]),
        ),
        (
            "Provider latency of the answered turns only, p50 / p95 / p99",
            seconds_triple([s.upstream_p50, s.upstream_p95, s.upstream_p99]),
        ),
        (
            "Background turns (evaluation), answered, p50 / p95",
            seconds_triple([s.background_p50, s.background_p95]),
        ),
        (
            "Mean wait for a slot / for a limit / service (candidate-facing, not cached)",
            seconds_triple([s.slot_wait_mean, s.limit_wait_mean, s.service_mean]),
        ),
        ("Waiting line (when no account could take a request)", waiting_line(results.meta)),
        ("Throughput (answered / simulated time)", f"{count(s.throughput_rpm)} per min"),
        ("Cache hit rate", percent(s.cache_hit_rate)),
        ("Cache misses due to failures", cache_failure_misses(results)),
        ("Upstream attempts", count(s.attempts)),
        ("Retries", count(s.retries)),
        ("429s (from providers, or refused by account limits)", count(s.rate_limited)),
        ("Binding account limit", binding_limit(s.held_back_by_limits)),
        ("Breaker openings", count(s.breaker_openings)),
        (
            "Interviews that reached their last turn (failed turns included)",
            f"{count(s.interviews_completed)} of {count(s.interviews)}",
        ),
        (
            "Interviews with at least one failed turn",
            f"{count(s.interviews_with_error)} ({percent(error_share)})",
        ),
        ("Interview length p50", minutes(s.interview_minutes_p50 * 60)),
        (
            "Cost (usage and powered hours; monthly fees are in the sizing report)",
            money(s.cost_total),
        ),
        ("Wasted spend (attempts that gave no answer)", wasted_spend(s)),
        ("Cost per interview", money(s.cost_per_interview)),
        ("Simulated time", minutes(s.simulated_s)),
    ]
    if not results.cache.enabled:
        rows = [row for row in rows if row[0] != "Cache misses due to failures"]
    # The optional policies, only when they acted (they are off by default).
    at = [label for label, _ in rows].index("Retries") + 1
    if s.retries_denied > 0:
        rows.insert(at, ("Retries denied by the retry budget", count(s.retries_denied)))
    if s.hedges > 0:
        hedged = f"{count(s.hedges)} ({count(s.hedge_wins)} answered first)"
        rows.insert(at, ("Hedged attempts", hedged))
    return rows


#: The router's waiting disciplines ([line] discipline), as a report names them.
DISCIPLINES = {
    "priority": "by priority, shedding what would miss its deadline",
    "fifo": "first come first served, held to the deadline",
}


def waiting_line(meta: RunMeta) -> str:
    """Which discipline the router's waiting line ran, and its bound."""
    line = meta.config.get("line") or {}
    if "discipline" not in line:
        return "not recorded"
    named = DISCIPLINES.get(line["discipline"], line["discipline"])
    return f"{named}; at most {count(line.get('max_waiting'))} waiting"


def wasted_spend(summary: RunSummary) -> str:
    """ "$1.20 (3.1% of the cost): timeout $0.80, deadline $0.40": billed, never answered."""
    wasted, total = summary.wasted_cost, summary.cost_total
    by_code = summary.wasted_cost_by_outcome
    ordered = sorted(by_code.items(), key=lambda item: (-item[1], item[0]))
    parts = ", ".join(f"{code} {money(value)}" for code, value in ordered)
    head = money(wasted)
    if total > 0:
        head += f" ({percent(wasted / total)} of the cost)"
    return f"{head}: {parts}" if parts else head


def cache_failure_misses(results: Results) -> str:
    """ "1,184 of 5,888 misses (20.1%)": misses after an identical request had failed."""
    total = results.cache.all
    misses = total.misses if total else math.nan
    after = total.after_failure if total else math.nan
    share = after / misses if misses > 0 else math.nan
    return f"{count(after)} of {count(misses)} misses ({percent(share)})"


def cache_rows(results: Results) -> list[tuple[str, ...]]:
    """Lookups, hits and misses by cause per turn kind, then over all; as CACHE_HEADERS."""
    cache = results.cache
    rows: list[tuple[str, CacheCounts]] = [(row.kind, row) for row in cache.kinds or []]
    if cache.all is not None:
        rows.append(("all", cache.all))
    return [
        (
            kind,
            count(row.lookups),
            count(row.hits),
            percent(row.hit_rate),
            count(row.first),
            count(row.after_failure),
            count(row.in_flight),
            count(row.answered_earlier),
        )
        for kind, row in rows
    ]


def binding_limit(held_back: dict[str, int]) -> str:
    """The limit requests most often found exhausted, and its share of such findings."""
    if not held_back:
        return "none"
    total = _total(held_back)
    name, hits = max(held_back.items(), key=lambda item: (as_float(item[1]), item[0]))
    return f"{name} ({percent(as_float(hits) / total)} of the times one held a request back)"


def _arrival(workload: dict[str, Any]) -> str:
    """How the interviews start, in words, from a scenario's ``[workload]`` as run."""
    match workload.get("arrival"):
        case "all_at_once":
            return "all starting at once"
        case "uniform" | "ramp":
            return f"starting over {minutes(workload.get('window'))}"
        case "poisson":
            return f"arriving at {count(workload.get('rate_per_minute'))} per minute"
        case "daily":
            return "arriving over the day"
        case other:
            return f"arriving {other}"


def run_settings(config: dict[str, Any]) -> str:
    """ "4,000 interviews starting over 1.0 min, on 250 accounts (250 x huggingface)":
    the run's own settings, after every override, never the scenario's description."""
    workload = config.get("workload") or {}
    groups = config.get("accounts") or []
    fleet = " + ".join(f"{g['count']} x {g.get('name') or g['profile']}" for g in groups)
    accounts = plural(sum(g["count"] for g in groups), "account")
    return (
        f"{plural(workload.get('interviews'), 'interview')} {_arrival(workload)}, "
        f"on {accounts} ({fleet})"
    )


def headline_sentence(results: Results) -> str:
    """One sentence a reader can stop after, built from the summary rows' values."""
    values = dict(summary_rows(results))
    s = results.summary
    p95 = seconds(s.slo_metrics.provider_p95)
    return (
        f"{values['Requests']} requests from {count(s.interviews)} interviews over "
        f"{values['Simulated time']} of simulated time: {percent(s.success_rate)} "
        f"answered, provider_p95 {p95} (a failed turn as ∞), "
        f"{plural(s.breaker_openings, 'breaker opening')}, cost {money(s.cost_total)}."
    )


def held_back_note(results: Results) -> str | None:
    """How often the router found accounts at their own limits, if it ever did.

    These are checks, not requests (a waiting request is checked again and again),
    so they are said in words rather than put in a table beside request counts.
    """
    held = results.summary.held_back_by_limits
    total = _total(held)
    if total <= 0:
        return None
    by_limit = ", ".join(
        f"{name} {count(n)}" for name, n in sorted(held.items(), key=lambda i: -as_float(i[1]))
    )
    return (
        f"The router's own limit checks found an account at its limit {count(total)} times "
        f"({by_limit}) and looked elsewhere or waited; these count checks, not requests."
    )


def failure_rows(results: Results) -> list[tuple[str, str, str, str]]:
    """Requests that ended in an error, by outcome, most frequent first."""
    requests = results.summary.requests
    ordered = sorted(results.summary.failures.items(), key=lambda item: (-item[1], item[0]))
    return [
        (
            code,
            count(n),
            percent(n / requests if requests > 0 else math.nan),
            OUTCOME_MEANINGS.get(code, ""),
        )
        for code, n in ordered
        if n > 0
    ]


def attempt_failure_rows(results: Results) -> list[tuple[str, str]]:
    """Failed upstream attempts by code, summed over accounts (a request may retry)."""
    codes: Counter[str] = Counter()
    for row in results.providers:
        for code, n in row.failures.items():
            codes[code] += n
        for limit, n in row.rejections.items():
            codes[f"refused by account limit {limit}"] += n
    ordered = sorted(codes.items(), key=lambda item: (-item[1], item[0]))
    return [(code, count(n)) for code, n in ordered if n > 0]


def _provider_row(row: ProviderSummary) -> tuple[str, ...]:
    return (
        row.name,
        count(row.calls),
        percent(row.load_share),
        percent(row.utilisation),
        count(row.rate_limited),
        count(_total(row.failures)),
        money(row.cost),
    )


def provider_rows(results: Results) -> list[tuple[str, ...]]:
    """One row per account, in fleet order; columns as PROVIDER_HEADERS."""
    return [_provider_row(row) for row in results.providers]


def top_provider_rows(results: Results, limit: int = 10) -> list[tuple[str, ...]]:
    """The ``limit`` accounts with the most calls (ties in fleet order)."""
    ranked = sorted(enumerate(results.providers), key=lambda item: (-item[1].calls, item[0]))
    return [_provider_row(row) for _, row in ranked[:limit]]


def family_rows(results: Results) -> list[tuple[str, ...]]:
    """Accounts aggregated by profile family; columns as FAMILY_HEADERS."""
    families = family_of(results)
    grouped: dict[str, list[ProviderSummary]] = defaultdict(list)
    for row in results.providers:
        grouped[families[row.name]].append(row)
    out: list[tuple[str, ...]] = []
    for family, rows in sorted(grouped.items()):
        utilisation = [as_float(r.utilisation) for r in rows]
        out.append(
            (
                family,
                count(len(rows)),
                count(sum(r.calls for r in rows)),
                percent(sum(as_float(r.load_share) for r in rows)),
                percent(sum(utilisation) / len(utilisation)),
                count(sum(r.rate_limited for r in rows)),
                count(sum(_total(r.failures) for r in rows)),
                money(sum(as_float(r.cost) for r in rows)),
            )
        )
    return out


def transition_rows(results: Results, limit: int = 20) -> list[tuple[str, str, str, str]]:
    """The first ``limit`` breaker transitions in time order."""
    ordered = sorted(results.transitions, key=lambda m: m.time)
    names = {"closed": "closed", "open": "open", "half_open": "half-open"}
    return [
        (
            clock(m.time),
            m.provider,
            f"{names[m.source.value]} → {names[m.target.value]}",
            m.reason,
        )
        for m in ordered[:limit]
    ]


# --- plain text -------------------------------------------------------------------

#: The terminal width every table and sentence the CLI prints fits in.
TERMINAL_WIDTH = 100
#: Narrowest a wrapped text column gets (unless one word is wider).
MIN_WRAPPED = 12

_NUMERIC = re.compile(r"^[<>]?\$?-?[\d,.]+(%| s| min)?$|^n/a$")


def numeric_columns(rows: Sequence[tuple[str, ...]], width: int) -> list[bool]:
    """Columns whose every cell is a number (right-aligned in every format)."""
    return [
        bool(rows) and all(_NUMERIC.match(row[i].split(" (")[0]) for row in rows if row[i])
        for i in range(width)
    ]


def format_table(
    rows: Sequence[tuple[str, ...]],
    headers: tuple[str, ...] | list[str],
    width: int = TERMINAL_WIDTH,
) -> str:
    """A plain-text table for the terminal, numbers right-aligned, within ``width`` columns.

    A table that fits is printed as is. One that does not first wraps its headers at
    spaces, then its widest text columns (a wrapped cell goes on indented); one still
    too wide is split into several tables, each repeating the first column.
    Hand-written rather than a library (tabulate, rich): the reports stay on the
    project's own dependencies (numpy, matplotlib, attrs).
    """
    headers = list(headers)
    right = numeric_columns(rows, len(headers))
    widths = _fit(rows, headers, right, width)
    if widths is not None:
        return _render(rows, headers, right, widths)
    # Split so that no cell wraps, if that can be done; else as few columns as possible.
    tables, columns = [], list(range(1, len(headers)))
    while columns:
        take = len(columns)
        while take > 1 and _fit(*_pick(rows, headers, right, columns[:take]), width, 0) is None:
            take -= 1
        picked = _pick(rows, headers, right, columns[:take])
        widths = _fit(*picked, width) or _natural(*picked[:2])
        tables.append(_render(*picked, widths))
        columns = columns[take:]
    return "\n\n".join(tables)


def _pick(
    rows: Sequence[tuple[str, ...]], headers: list[str], right: list[bool], columns: list[int]
) -> tuple[list[tuple[str, ...]], list[str], list[bool]]:
    """The first column and ``columns`` of a table."""
    keep = [0, *columns]
    return (
        [tuple(row[i] for i in keep) for row in rows],
        [headers[i] for i in keep],
        [right[i] for i in keep],
    )


def _natural(rows: Sequence[tuple[str, ...]], headers: list[str]) -> list[int]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    return widths


def _longest_word(texts: Sequence[str]) -> int:
    return max((len(word) for text in texts for word in text.split()), default=0)


def _fit(
    rows: Sequence[tuple[str, ...]],
    headers: list[str],
    right: list[bool],
    width: int,
    min_wrapped: int = MIN_WRAPPED,
) -> list[int] | None:
    """Column widths that fit ``width`` with headers and text cells wrapped (no narrower
    than ``min_wrapped``; 0: no cell wraps); None if none do."""
    widths = _natural(rows, headers)
    room = width - 2 * (len(widths) - 1)
    if sum(widths) <= room:
        return widths
    # Headers wrap down to their column's widest cell (and their own longest word).
    cells = [[row[i] for row in rows] for i in range(len(headers))]
    widths = [
        max(max((len(c) for c in column), default=0), _longest_word([h]))
        for column, h in zip(cells, headers, strict=True)
    ]
    floors = [
        w if numeric or not min_wrapped else max(min(w, min_wrapped), _longest_word(column) + 2)
        for w, numeric, column in zip(widths, right, cells, strict=True)
    ]

    def height(i: int, w: int) -> int:
        return sum(len(_wrap(cell, w)) for cell in cells[i])

    # Narrow, one column at a time, whichever costs the fewest extra lines.
    while sum(widths) > room:
        shrinkable = [i for i, w in enumerate(widths) if w > floors[i]]
        if not shrinkable:
            return None
        cheapest = min(
            shrinkable,
            key=lambda i: (height(i, widths[i] - 1) - height(i, widths[i]), -widths[i], i),
        )
        widths[cheapest] -= 1
    return widths


def _wrap(cell: str, width: int) -> list[str]:
    if len(cell) <= width:
        return [cell]
    return textwrap.wrap(cell, width, subsequent_indent="  ", break_long_words=False) or [""]


def _render(
    rows: Sequence[tuple[str, ...]], headers: list[str], right: list[bool], widths: list[int]
) -> str:
    def lines(cells: Sequence[str]) -> list[str]:
        parts = [_wrap(cell, w) for cell, w in zip(cells, widths, strict=True)]
        height = max(len(p) for p in parts)
        return [
            "  ".join(
                (p[n] if n < len(p) else "").rjust(w)
                if r
                else (p[n] if n < len(p) else "").ljust(w)
                for p, w, r in zip(parts, widths, right, strict=True)
            ).rstrip()
            for n in range(height)
        ]

    head = [
        textwrap.wrap(h, w, break_long_words=False) or [""]
        for h, w in zip(headers, widths, strict=True)
    ]
    # Headers line up at the bottom, above the rule.
    tall = max(len(h) for h in head)
    head = [[""] * (tall - len(h)) + h for h in head]
    header_lines = [
        "  ".join(
            h[n].rjust(w) if r else h[n].ljust(w)
            for h, w, r in zip(head, widths, right, strict=True)
        ).rstrip()
        for n in range(tall)
    ]
    rule = "  ".join("-" * w for w in widths)
    body = [line for row in rows for line in lines(row)]
    return "\n".join([*header_lines, rule, *body])
