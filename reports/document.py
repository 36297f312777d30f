"""The report's content, once, as plain data that Markdown and HTML both render.

Deciding what to say (which sections, which tables, what to leave out and say so)
happens here; the renderers only decide how it looks, so the Markdown and the HTML
report can never tell different stories.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import attrs

from actors.breaker import State
from reports import summary
from reports.figures import CAPTIONS
from sims.results import Results

# Above this many accounts the per-account table becomes a wall: show families and
# the busiest accounts instead (every account is still in results.json).
MAX_ACCOUNT_ROWS = 20
TOP_ACCOUNTS = 10
MAX_TRANSITIONS = 20

FIGURE_TITLES = {
    "latency_cdf": "Latency distribution",
    "latency_over_time": "Latency and failures over time",
    "traffic": "Traffic and work in progress",
    "providers": "Account utilisation and rate limits",
    "breakers": "Circuit breakers",
    "cache": "Cache hit rate",
    "replicas": "Self-hosted replicas",
}


@attrs.frozen
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @property
    def numeric(self) -> list[bool]:
        return summary.numeric_columns(list(self.rows), len(self.headers))


@attrs.frozen
class FigureRef:
    """A figure: ``href`` relative to the report, ``path`` where its bytes are."""

    href: str
    path: Path
    title: str
    caption: str


@attrs.frozen
class Heading:
    """A sub-heading inside a section."""

    text: str


Block = str | Table | FigureRef | Heading


@attrs.frozen
class Section:
    title: str
    blocks: tuple[Block, ...]


@attrs.frozen
class Document:
    title: str
    lead: str
    description: str
    sections: tuple[Section, ...]
    footer: str


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> Table:
    return Table(tuple(headers), tuple(tuple(r) for r in rows))


def _failures(results: Results) -> Section:
    blocks: list[Block] = []
    rows = summary.failure_rows(results)
    requests = summary.count(results.summary.requests)
    if rows:
        blocks.append(f"Requests that ended in an error, of {requests} requests:")
        blocks.append(_table(summary.FAILURE_HEADERS, rows))
    else:
        blocks.append(f"Every one of the {requests} requests was answered.")
    attempts = summary.attempt_failure_rows(results)
    if attempts:
        blocks.append(
            "Failed upstream attempts by code, summed over accounts. A failed attempt is "
            "retried or failed over, so it need not fail the request:"
        )
        blocks.append(_table(summary.ATTEMPT_HEADERS, attempts))
    else:
        blocks.append("No upstream attempt failed.")
    return Section("Failures", tuple(blocks))


def _cache(results: Results) -> Section:
    if not results.cache.enabled:
        return Section("Cache", ("The response cache was off.",))
    note = (
        "Per turn kind: the requests that looked the cache up (all but those rejected "
        "before it), the hits, and why each miss missed. First of their key: no identical "
        "request came before. After a failed identical request: one had ended in an error "
        "(or was cancelled) before this one started, so it never filled the cache; these "
        "misses are due to failures, not to the workload. In flight: every identical "
        "earlier request was still waiting for its answer. Answered earlier, entry gone: "
        "expired or evicted."
    )
    return Section("Cache", (note, _table(summary.CACHE_HEADERS, summary.cache_rows(results))))


def _accounts(results: Results) -> Section:
    count = len(results.providers)
    note = (
        "Load share is the account's share of all upstream calls; slot utilisation is the "
        "average share of its concurrency slots in use over the run (not of its rate "
        "limits: an account can be held at its limit with its slots nearly idle); 429s "
        "count upstream rate-limit replies and calls refused by the account's own limits; "
        "failures count failed attempts of any kind."
    )
    held = summary.held_back_note(results)
    intro: tuple[str, ...] = (note, held) if held else (note,)
    if count <= MAX_ACCOUNT_ROWS:
        return Section(
            f"Accounts ({count})",
            (*intro, _table(summary.PROVIDER_HEADERS, summary.provider_rows(results))),
        )
    return Section(
        f"Accounts ({count})",
        (
            *intro,
            Heading("By profile family"),
            _table(summary.FAMILY_HEADERS, summary.family_rows(results)),
            Heading(f"The {TOP_ACCOUNTS} accounts with the most calls"),
            _table(summary.PROVIDER_HEADERS, summary.top_provider_rows(results, TOP_ACCOUNTS)),
            f"The other {count - TOP_ACCOUNTS} accounts are in results.json.",
        ),
    )


def _breakers(results: Results) -> Section:
    moves = results.transitions
    if not moves:
        return Section("Breaker transitions", ("No circuit breaker left the closed state.",))
    openings = sum(1 for m in moves if m.target is State.OPEN)
    accounts = len({m.provider for m in moves})
    blocks: list[Block] = [
        f"{summary.plural(len(moves), 'transition')} on {summary.plural(accounts, 'account')}, "
        f"{openings:,} of them "
        "opening a breaker (quarantining the account). Times are simulated time since the "
        "start of the run."
    ]
    blocks.append(
        _table(summary.TRANSITION_HEADERS, summary.transition_rows(results, MAX_TRANSITIONS))
    )
    if len(moves) > MAX_TRANSITIONS:
        blocks.append(
            f"The first {MAX_TRANSITIONS} are shown; {len(moves) - MAX_TRANSITIONS:,} more "
            "are in results.json."
        )
    return Section("Breaker transitions", tuple(blocks))


QUOTA_HEADERS = ("account", "quota", "used", "alerts (80% / 90% / 100%)", "at this pace")


def _days(seconds: float) -> str:
    days = seconds / 86400
    return "day" if days == 1 else f"{days:g} days"


def _quotas(results: Results) -> Section | None:
    """Daily and monthly allowances: alerts raised, and when each would run dry."""
    usage = results.quotas.usage
    if not usage:
        return None
    alerts: dict[tuple[str, str], dict[float, float]] = {}
    for alert in results.quotas.alerts:
        alerts.setdefault((alert.provider, alert.limit), {})[alert.level] = alert.time
    # Most used first; beyond MAX_ACCOUNT_ROWS the rest are in results.json.
    usage = sorted(usage, key=lambda item: -item.used / item.allowance)
    shown = [u for u in usage if (u.provider, u.limit) in alerts] or usage[:TOP_ACCOUNTS]
    rows = []
    for item in shown[:MAX_ACCOUNT_ROWS]:
        seen = alerts.get((item.provider, item.limit), {})
        marks = " / ".join(
            summary.clock(seen[level]) if level in seen else "-" for level in (0.8, 0.9, 1.0)
        )
        dry = item.dry_after_s
        window = item.window_s
        pace = (
            "lasts its window"
            if not dry < window
            else f"runs dry {summary.minutes(dry)} into its window"
        )
        rows.append(
            (
                item.provider,
                f"{summary.count(item.allowance)} per {_days(window)} ({item.limit})",
                summary.count(item.used),
                marks,
                pace,
            )
        )
    note = (
        "An account is disabled when a quota is used up, until the quota's window resets; "
        "'at this pace' extrapolates the run's use over the whole window."
    )
    if len(shown) < len(usage):
        note += f" The other {len(usage) - len(shown)} quotas are in results.json."
    return Section("Quotas", (_table(QUOTA_HEADERS, rows), note))


def _figures(figures: list[Path]) -> Section:
    blocks = tuple(
        FigureRef(
            href=f"figures/{path.name}",
            path=path,
            title=FIGURE_TITLES.get(path.stem, path.stem.replace("_", " ")),
            caption=CAPTIONS.get(path.stem, ""),
        )
        for path in figures
    )
    return Section("Figures", blocks or ("No figures were rendered.",))


def build_document(results: Results, figures: list[Path]) -> Document:
    """Everything the report says, in order."""
    meta = results.meta
    name = meta.scenario or "unnamed"
    # The run's own settings first: the scenario's description speaks of its file's
    # settings, which --set or --interviews may have changed.
    written = " ".join(meta.description.split())
    description = f"Run: {summary.run_settings(meta.config)}." + (
        f" The scenario's description: {written}" if written else ""
    )
    footer = (
        f"Scenario {name} · scenario hash {meta.scenario_hash} · "
        f"seed {meta.seed} · callboard {meta.callboard_version}. "
        "All times are simulated; the same scenario and seed give the same report."
    )
    return Document(
        title=f"callboard simulation: {name} (seed {meta.seed})",
        lead=summary.headline_sentence(results),
        description=description,
        sections=(
            Section("Headline", (_table(("figure", "value"), summary.summary_rows(results)),)),
            _failures(results),
            _cache(results),
            *(
                section
                for section in (_accounts(results), _quotas(results), _breakers(results))
                if section is not None
            ),
            _figures(figures),
        ),
        footer=footer,
    )


def write_file(path: Path, text: str) -> Path:
    """Write a report file as UTF-8 with "\n" line ends: the same bytes on every platform."""
    path.write_text(text, encoding="utf-8", newline="\n")
    return path
