"""Reports from a short real run: every file written, self-contained, byte-stable, and
still readable when the run had no breaker openings, no answers, or many accounts."""

from __future__ import annotations

import io
import re
from pathlib import Path

import attrs
import numpy as np
import pytest

from actors.breaker import State, Transition
from reports.figures import FIGURES
from reports.html import render_html
from reports.markdown import render_markdown
from reports.render import ReportFiles, write_report
from reports.summary import (
    PROVIDER_HEADERS,
    format_table,
    money,
    percent,
    provider_rows,
    seconds,
    summary_rows,
    wasted_spend,
)
from sims import result_views
from sims.results import Results, SloMetrics
from sims.runner import simulate
from sims.scenario import load
from sims.summarise import summarise

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results() -> Results:
    scenario, _ = load("rate-limit-storm", ["workload.interviews=40"])
    # Through JSON, as a report is normally rendered from a results.json.
    return Results.from_json(summarise(simulate(scenario)).to_json())


@pytest.fixture(scope="module")
def report(results: Results, tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    return write_report(results, tmp_path_factory.mktemp("report"))


def _with_transitions(results: Results) -> Results:
    name = results.providers[0].name
    moves = [
        (100.0, State.CLOSED, State.OPEN, "3 consecutive failures (upstream_error)"),
        (130.0, State.OPEN, State.HALF_OPEN, "quarantine over"),
        (131.5, State.HALF_OPEN, State.CLOSED, "trial call succeeded"),
    ]
    transitions = [Transition(t, name, s, g, why) for t, s, g, why in moves]
    summary = attrs.evolve(results.summary, breaker_openings=1)
    return attrs.evolve(results, transitions=transitions, summary=summary)


def _nothing_answered(results: Results) -> Results:
    n = len(results.requests.start)
    requests = attrs.evolve(
        results.requests,
        outcome=np.full(n, 3),  # no_provider
        cached=np.zeros(n, dtype=bool),
        provider=np.full(n, -1),
        cost=np.zeros(n),
    )
    nan, inf = float("nan"), float("inf")
    summary = attrs.evolve(
        results.summary,
        answered=0,
        success_rate=0.0,
        failures={"no_provider": n},
        cache_hit_rate=0.0,
        throughput_rpm=0.0,
        **{f"{p}p{q}": nan for p in ("", "upstream_", "ttft_") for q in (50, 95, 99)},
        slo_metrics=SloMetrics(
            **{f"{p}_p{q}": inf for p in ("answer", "provider", "ttft") for q in (50, 95, 99)},
            success=0.0,
            interviews_without_error=0.0,
        ),
    )
    zeros = [0] * len(results.series.t)
    series = attrs.evolve(results.series, answered=zeros, cache_hits=zeros)
    evolved = attrs.evolve(
        results, requests=requests, summary=summary, series=series, transitions=[]
    )
    return Results.from_json(evolved.to_json())  # NaNs become "nan" strings, as on disk


def _many_accounts(results: Results, count: int = 25) -> Results:
    template = results.providers[0]
    own = results.series.providers[template.name]
    rows, series = [], {}
    for i in range(count):
        family = "alpha" if i % 3 else "beta"
        name = f"{family}-{i + 1}"
        rows.append(attrs.evolve(template, name=name, family=family, calls=100 + i))
        series[name] = own
    return attrs.evolve(
        results,
        providers=rows,
        series=attrs.evolve(results.series, providers=series),
        meta=attrs.evolve(results.meta, providers=[r.name for r in rows]),
    )


@pytest.mark.slow
def test_write_report_writes_every_file(report: ReportFiles) -> None:
    for path in report.all():
        assert path.is_file() and path.stat().st_size > 0, path
    assert report.results_json.name == "results.json"
    # The replicas figure is drawn only for runs with an autoscaler.
    assert sorted(p.stem for p in report.figures) == sorted(set(FIGURES) - {"replicas"})
    for png in report.figures:
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC, png
        assert len(data) > 10_000, png  # not an empty canvas
        assert b"Software" not in data and b"matplotlib version" not in data


def test_results_json_round_trips(report: ReportFiles, results: Results) -> None:
    assert Results.from_json(report.results_json.read_text()).to_json() == results.to_json()


def test_html_is_self_contained(report: ReportFiles) -> None:
    html = report.html.read_text()
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == len(report.figures)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in html and "<link" not in html
    assert not re.search(r'(href|src)="(https?:)?//', html)


def test_markdown_has_the_headline_numbers(report: ReportFiles, results: Results) -> None:
    markdown = report.markdown.read_text()
    for label, value in summary_rows(results):
        assert f"| {label} | {value} |" in markdown
    for row in provider_rows(results):
        assert row[0] in markdown
    for png in report.figures:
        assert f"](figures/{png.name})" in markdown
    meta = results.meta
    assert meta.scenario_hash in markdown and meta.callboard_version in markdown
    assert " ".join(meta.description.split()) in markdown


def test_html_and_markdown_agree(report: ReportFiles, results: Results) -> None:
    html = report.html.read_text()
    for label, value in summary_rows(results):
        assert f"<td>{label}</td><td>{value}</td>" in html


def test_no_wall_time_or_date(report: ReportFiles) -> None:
    for path in (report.markdown, report.html):
        text = path.read_text()
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), path


@pytest.mark.slow
def test_same_results_same_bytes(report: ReportFiles, results: Results, tmp_path: Path) -> None:
    again = write_report(results, tmp_path)
    for first, second in zip(report.all(), again.all(), strict=True):
        assert first.name == second.name
        assert first.read_bytes() == second.read_bytes(), first.name


@pytest.mark.slow
def test_breaker_transitions_are_listed(results: Results, tmp_path: Path) -> None:
    moved = _with_transitions(results)
    files = write_report(moved, tmp_path)
    markdown = files.markdown.read_text()
    assert "0:01:40" in markdown and "closed → open" in markdown
    assert "half-open → closed" in markdown
    assert "No circuit breaker left the closed state." not in markdown


@pytest.mark.slow
def test_no_breaker_openings_still_renders(results: Results, tmp_path: Path) -> None:
    quiet = attrs.evolve(
        results, transitions=[], summary=attrs.evolve(results.summary, breaker_openings=0)
    )
    files = write_report(quiet, tmp_path)
    assert "No circuit breaker left the closed state." in files.markdown.read_text()
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in files.figures)


@pytest.mark.slow
def test_nothing_answered_still_renders(results: Results, tmp_path: Path) -> None:
    failed = _nothing_answered(results)
    assert Results.from_json(failed.to_json()) == failed  # nan figures read back equal
    files = write_report(failed, tmp_path)
    markdown = files.markdown.read_text()
    assert "| Success rate (all requests) | 0.0% |" in markdown
    assert "| Provider latency of the answered turns only, p50 / p95 / p99 | n/a (none) |" in (
        markdown
    )
    assert "a failed turn as ∞ | ∞ / ∞ / ∞ s |" in markdown
    assert "| no_provider |" in markdown
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in files.figures)


@pytest.mark.slow
def test_many_accounts_are_aggregated(results: Results, tmp_path: Path) -> None:
    many = _many_accounts(results)
    markdown = render_markdown(many, [])
    assert "### By profile family" in markdown
    assert "| alpha | 16 |" in markdown and "| beta | 9 |" in markdown
    assert "The 10 accounts with the most calls" in markdown
    assert "The other 15 accounts are in results.json." in markdown
    assert "beta-25" in markdown and "alpha-2 |" not in markdown  # fewest calls left out
    html = render_html(many, [])
    assert "By profile family" in html and "<img" not in html
    # The figures switch to one line and band per family; they must still draw.
    requests, series = result_views.requests(many), result_views.sampled(many)
    for name in ("providers", "breakers"):
        buffer = io.BytesIO()
        FIGURES[name](many, requests, series).savefig(buffer, format="png", dpi=40)
        assert buffer.getvalue()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "100.0%"), (0.99996, "99.996%"), (0.0004, "0.04%"), (0.5, "50.0%"), ("nan", "n/a")],
)
def test_percent_never_rounds_to_all_or_nothing(value: object, text: str) -> None:
    assert percent(value) == text


def test_number_formats() -> None:
    assert [seconds(v) for v in (0.0, 0.86336, 14.851, 1234.6, "inf", "nan")] == [
        "0 s",
        "0.863 s",
        "14.9 s",
        "1,235 s",
        "∞ s",
        "n/a",
    ]
    assert [money(v) for v in (0, 1.07385, 0.0035795, 12345.678)] == [
        "$0.00",
        "$1.07",
        "$0.00358",
        "$12,345.68",
    ]


def test_format_table_aligns_numbers_right(results: Results) -> None:
    text = format_table(provider_rows(results), PROVIDER_HEADERS)
    lines = text.splitlines()
    assert lines[0].startswith("account") and lines[0].endswith("cost")
    assert len(lines) == 2 + len(results.providers)
    widths = {len(line) for line in lines[1:]}
    assert len(widths) == 1  # right-aligned last column: every row as wide as the rule
    assert all(line.endswith(tuple("0123456789")) for line in lines[2:])


def test_failure_counts_agree_with_the_summary(results: Results) -> None:
    # Background turns (the evaluation) are answered too: a figure that counted only
    # candidate-facing answers would call them failures.
    requests = result_views.requests(results)
    assert ((requests.outcome == 0) & ~requests.facing).any()
    failed = results.summary.requests - results.summary.answered
    assert failed == sum(results.summary.failures.values())
    figure = FIGURES["latency_over_time"](results, requests, result_views.sampled(results))
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert f"{failed:,} of {results.summary.requests:,} requests failed" in texts
    assert int(requests.failed.sum()) == failed


def test_waits_and_service_add_up_to_the_mean_latency_and_waste_is_its_own_line(
    results: Results,
) -> None:
    s = results.summary
    columns = results.requests
    served = (columns.outcome == 0) & ~columns.cached & result_views.requests(results).facing
    slot, limit, latency = (c[served] for c in (columns.slot_wait, columns.limit_wait,
                                                 columns.latency))  # fmt: skip
    assert (slot >= 0).all() and (limit >= 0).all() and (slot + limit <= latency + 1e-9).all()
    # results.json keeps six decimals.
    assert s.slot_wait_mean == pytest.approx(slot.mean(), abs=1e-6)
    assert s.limit_wait_mean == pytest.approx(limit.mean(), abs=1e-6) and limit.mean() > 0
    total = s.slot_wait_mean + s.limit_wait_mean + s.service_mean
    assert total == pytest.approx(latency.mean(), abs=3e-6)
    rows = dict(summary_rows(results))
    label = "Mean wait for a slot / for a limit / service (candidate-facing, not cached)"
    means = [s.slot_wait_mean, s.limit_wait_mean, s.service_mean]
    assert rows[label] == " / ".join(seconds(v).removesuffix(" s") for v in means) + " s"
    wasted = rows["Wasted spend (attempts that gave no answer)"]
    assert wasted.startswith(money(s.wasted_cost))
    assert s.wasted_cost == pytest.approx(sum(s.wasted_cost_by_outcome.values()))
    for code, value in s.wasted_cost_by_outcome.items():
        assert f"{code} {money(value)}" in wasted


def test_wasted_spend_names_each_outcome_and_its_share(results: Results) -> None:
    summary = attrs.evolve(
        results.summary,
        wasted_cost=1.5,
        cost_total=10.0,
        wasted_cost_by_outcome={"deadline": 0.5, "timeout": 1.0},
    )
    assert wasted_spend(summary) == "$1.50 (15.0% of the cost): timeout $1.00, deadline $0.5"
    nothing = attrs.evolve(summary, wasted_cost=0.0, cost_total=0.0, wasted_cost_by_outcome={})
    assert wasted_spend(nothing) == "$0.00"


def test_the_report_says_which_waiting_discipline_ran(results: Results, report: ReportFiles):
    label = "Waiting line (when no account could take a request)"
    ran = "by priority, shedding what would miss its deadline; at most 10,000 waiting"
    assert dict(summary_rows(results))[label] == ran
    assert ran in report.markdown.read_text() and ran in report.html.read_text()
    config = {**results.meta.config, "line": {"discipline": "fifo", "max_waiting": 12}}
    fifo = attrs.evolve(results, meta=attrs.evolve(results.meta, config=config))
    assert dict(summary_rows(fifo))[label] == (
        "first come first served, held to the deadline; at most 12 waiting"
    )
