"""The default run's report: the claim's two readings side by side, a sentence each.

Everything said comes from :class:`sims.headline.Headline` (headline.json); each
reading's own full report sits in a folder named after its scenario, beside this one.

out_dir/headline.json     the readings' figures and SLO verdicts
out_dir/report.md         the comparison in Markdown
out_dir/report.html       the same, one self-contained page
out_dir/<scenario>/       each reading's results.json, report.md, report.html, figures
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from reports.document import Document, Section, Table, write_file
from reports.html import document_html
from reports.markdown import document_markdown
from reports.summary import fresh_check, minutes, percent, plural, seconds
from sims.headline import Headline

#: What the table says about each reading, one row each (a column per reading).
HEADLINE_FIGURES = (
    "scenario",
    "interviews start over",
    "bank questions",
    "success",
    "provider_p95",
    "answer_p95",
    "cache hit rate",
    "request limit used",
    "SLOs",
    "smallest fleet meeting them",
    "fresh days meeting them",
)


def _spread(reading: dict[str, Any]) -> str:
    spread = float(reading["start_spread_s"])
    return minutes(spread) if spread > 0 else "0 s (all at once)"


def _starting(reading: dict[str, Any]) -> str:
    spread = float(reading["start_spread_s"])
    return f"starting over {minutes(spread)}" if spread > 0 else "all starting at once"


def headline_headers(headline: Headline) -> tuple[str, ...]:
    """The table's columns: one per reading, so it stays narrow however long each figure."""
    return ("reading", *(str(r["label"]) for r in headline.readings))


def headline_rows(headline: Headline) -> list[tuple[str, ...]]:
    """One row per figure of HEADLINE_FIGURES; a column per reading."""
    columns = [
        (
            str(r["scenario"]),
            _spread(r),
            percent(r["question_share"]),
            percent(r["success"]),
            seconds(r["provider_p95"]),
            seconds(r["answer_p95"]),
            percent(r["cache_hit_rate"]),
            percent(r["limit_share"]),
            "met" if r["meets_slos"] else "missed",
            *_fleet(r["needed"]),
        )
        for r in headline.readings
    ]
    return [(name, *cells) for name, *cells in zip(HEADLINE_FIGURES, *columns, strict=True)]


def _fleet(needed: dict[str, Any] | None) -> tuple[str, str]:
    """The fleet sizing found for a reading, and its held-out check, for the table."""
    if needed is None:
        return "not sized", ""
    if needed["accounts"] is None:
        return f"none up to {needed['range'][1]} x {needed['group']}", ""
    return (
        f"{needed['accounts']} x {needed['group']}",
        f"{needed['fresh_met']} of {needed['fresh_seeds']}",
    )


def answer_sentence(reading: dict[str, Any]) -> str:
    """The reading's answer, short enough to read first (and to fit a terminal line):
    whether the accounts run meet the SLOs, and how many it takes."""
    spread = float(reading["start_spread_s"])
    when = f"over {minutes(spread)}" if spread > 0 else "all at once"
    interviews = plural(reading["interviews"], "interview")
    head = f"{str(reading['label']).capitalize()} ({interviews} {when})"
    ran, met = reading["accounts"], reading["meets_slos"]
    verb = ("meet" if met else "miss") + ("s" if ran == 1 else "")
    found = f"{head}: {plural(ran, 'account')} {verb} the SLOs"
    needed = reading["needed"]
    if needed is None:
        return f"{found} (not sized: --no-size)."
    takes = needed["accounts"]
    if takes is None:
        return f"{found}; no fleet of up to {needed['range'][1]} does."
    if not met:
        return f"{found}; it takes {takes}."
    if takes == ran:
        return f"{found}, and no fewer would."
    if takes < ran:
        return f"{found}; {takes} would."
    return f"{found} on seed {reading['seed']}; it takes {takes} to meet them reliably."


def _what_it_takes(reading: dict[str, Any]) -> str:
    """The end of a reading's sentence: what sizing found it takes to meet the SLOs."""
    needed = reading["needed"]
    if needed is None:
        return (
            f"`callboard size {reading['scenario']} --interviews {reading['interviews']}` "
            "finds the smallest fleet that meets them"
        )
    if needed["accounts"] is None:
        return f"no fleet of up to {needed['range'][1]} x {needed['group']} meets them"
    fleet = plural(needed["accounts"], f"{needed['group']} account")
    fresh = fresh_check(
        needed["fresh_met"], needed["fresh_seeds"], needed["confidence"], "it never searched"
    )
    return (
        f"the smallest fleet `callboard size` finds is {fleet}: shown to meet them on at "
        f"least {percent(needed['confidence'])} of days, {fresh}"
    )


def _judged(item: dict[str, Any]) -> str:
    shown = seconds(item["value"]) if item["seconds"] else percent(item["value"])
    return f"{item['slo']} ({shown})"


def reading_sentence(reading: dict[str, Any]) -> str:
    """What one reading found and what it takes to meet the SLOs, in one sentence."""
    accounts = plural(reading["accounts"], "account")
    premise = (
        f"{plural(reading['interviews'], 'interview')} {_starting(reading)}, "
        f"{percent(reading['question_share'])} of requests questions from the bank"
    )
    found = (
        f"{percent(reading['cache_hit_rate'])} served from cache and "
        f"{percent(reading['limit_share'])} of the request limit used"
    )
    head = f"{str(reading['label']).capitalize()} ({reading['scenario']}: {premise})"
    if reading["meets_slos"]:
        judged = " and ".join(_judged(item) for item in reading["slos"])
        verb = "meets" if reading["accounts"] == 1 else "meet"
        return f"{head}: {accounts} {verb} {judged}, with {found}; {_what_it_takes(reading)}."
    missed = " and ".join(_judged(item) for item in reading["slos"] if not item["met"])
    verb = "misses" if reading["accounts"] == 1 else "miss"
    return f"{head}: {accounts} {verb} {missed}, with {found}; {_what_it_takes(reading)}."


def headline_document(headline: Headline) -> Document:
    sentences = [reading_sentence(r) for r in headline.readings]
    reports = [
        f"{r['label'].capitalize()}: [{r['scenario']}/report.html]({r['scenario']}/report.html)"
        f" ([Markdown]({r['scenario']}/report.md); seed {r['seed']}). {r['description']}"
        for r in headline.readings
    ]
    return Document(
        title="The claim, read two ways",
        lead=" ".join(answer_sentence(r) for r in headline.readings),
        description=f'The claim: "{headline.claim}". Each reading is one seeded run of a '
        f"built-in scenario, judged on {' and '.join(headline.slos)} (the sizing defaults).",
        sections=(
            Section(
                "Headline",
                (Table(headline_headers(headline), tuple(headline_rows(headline))), *sentences),
            ),
            Section("Each reading's full report", tuple(reports)),
        ),
        footer="Figures from headline.json; each reading's results.json is in its folder.",
    )


@attrs.frozen
class HeadlineFiles:
    out_dir: Path
    json: Path
    markdown: Path
    html: Path


def write_headline_report(headline: Headline, out_dir: Path) -> HeadlineFiles:
    """headline.json, report.md and report.html in ``out_dir`` (created if missing)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    document = headline_document(headline)
    return HeadlineFiles(
        out_dir,
        write_file(out_dir / "headline.json", headline.to_json()),
        write_file(out_dir / "report.md", document_markdown(document)),
        write_file(out_dir / "report.html", document_html(document)),
    )
