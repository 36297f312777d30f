"""The reports read at a glance (issue 26): tables that fit a terminal, answers first,
numbers said plainly, figures that name their run and show what they cannot plot."""

from __future__ import annotations

import math
import re

import pytest

from reports.capacity import curve_figure, level_sentence, plain_number
from reports.document import Document, Section, Table
from reports.figures import FIGURES, draw
from reports.headline import answer_sentence, headline_document, reading_sentence
from reports.html import document_html, render_html
from reports.markdown import document_markdown
from reports.summary import (
    TERMINAL_WIDTH,
    format_table,
    fresh_check,
    headline_sentence,
    plural,
    run_settings,
    summary_rows,
)
from sims import result_views
from sims.confidence import chance_of_misses
from sims.headline import Headline
from sims.results import Results
from sims.runner import simulate
from sims.scenario import load
from sims.summarise import summarise


@pytest.fixture(scope="module")
def results() -> Results:
    scenario, _ = load("interview-day", ["workload.interviews=30", "accounts.0.count=1"])
    return Results.from_json(summarise(simulate(scenario)).to_json())


def _reading(**changes: object) -> dict:
    reading = {
        "label": "all at once", "scenario": "interview-day", "seed": 1, "interviews": 500,
        "start_spread_s": 60.0, "question_share": 0.47, "success": 0.37,
        "provider_p95": math.inf, "answer_p95": math.inf, "cache_hit_rate": 0.31,
        "limit_share": 0.94, "accounts": 2, "meets_slos": False, "description": "",
        "slos": [{"slo": "success>=99.5%", "value": 0.37, "met": False, "seconds": False}],
        "needed": {
            "group": "huggingface", "range": [1, 64], "accounts": 34, "confidence": 0.95,
            "seeds_run": 4, "fresh_seeds": 10, "fresh_met": 9,
        },
    }  # fmt: skip
    return {**reading, **changes}


# --- terminal tables --------------------------------------------------------------


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_a_long_two_column_table_wraps_within_the_terminal(results: Results) -> None:
    rows = summary_rows(results)
    text = format_table(rows, ("figure", "value"))
    assert _widest(text) <= TERMINAL_WIDTH
    words = " ".join(" ".join(row) for row in rows).split()
    assert text.split()[3:] and all(word in text for word in words)  # wrapped, none lost


def test_a_wide_table_is_split_repeating_its_first_column() -> None:
    headers = ("interviews", *(f"a long column header number {n}" for n in range(8)))
    rows = [(f"{n:,}", *(f"value {n}-{c} with some words" for c in range(8))) for n in (50, 100)]
    text = format_table(rows, headers)
    assert _widest(text) <= TERMINAL_WIDTH
    tables = text.split("\n\n")
    assert len(tables) > 1
    for table in tables:  # each part keeps the key column, and every row
        assert "interviews" in table.split("\n-")[0]
        assert re.search(r"^ *50  value", table, re.M) and re.search(r"^ *100  value", table, re.M)


def test_a_table_that_fits_is_printed_as_before() -> None:
    text = format_table([("a", "1"), ("bb", "22")], ("name", "count"))
    assert text.splitlines() == ["name  count", "----  -----", "a         1", "bb       22"]


# --- the default run's answer -----------------------------------------------------


def test_the_answer_sentence_says_how_many_accounts_it_takes() -> None:
    needed = _reading()["needed"]
    assert answer_sentence(_reading()) == (
        "All at once (500 interviews over 1.0 min): 2 accounts miss the SLOs; it takes 34."
    )
    met = {"meets_slos": True, "start_spread_s": 3600.0, "label": "as claimed"}
    assert answer_sentence(_reading(**met, needed={**needed, "accounts": 2})) == (
        "As claimed (500 interviews over 60.0 min): 2 accounts meet the SLOs, and no fewer would."
    )
    one = _reading(accounts=1, **met, needed={**needed, "accounts": 3})
    assert answer_sentence(one).endswith(
        ": 1 account meets the SLOs on seed 1; it takes 3 to meet them reliably."
    )
    assert answer_sentence(_reading(needed=None)).endswith("(not sized: --no-size).")
    none = _reading(start_spread_s=0.0, needed={**needed, "accounts": None})
    assert answer_sentence(none) == (
        "All at once (500 interviews all at once): 2 accounts miss the SLOs; "
        "no fleet of up to 64 does."
    )


def test_the_confidence_says_what_95_and_9_of_10_each_mean() -> None:
    sentence = reading_sentence(_reading())
    assert "shown to meet them on at least 95.0% of days" in sentence
    assert "met them on 9 of 10 fresh days it never searched" in sentence
    # And why that is no contradiction: how often a fleet at exactly 95% misses a day of 10.
    assert "one meeting them on exactly 95.0% of days misses 1 or more of 10 days 40.1%" in (
        sentence
    )
    assert "fresh seeds)" not in sentence


def test_the_chance_of_misses_is_the_binomial_tail() -> None:
    assert chance_of_misses(0.95, 10, 1) == pytest.approx(1 - 0.95**10)
    assert chance_of_misses(0.95, 10, 2) == pytest.approx(1 - 0.95**10 - 10 * 0.05 * 0.95**9)
    assert chance_of_misses(0.95, 10, 0) == 1.0
    assert fresh_check(10, 10, 0.95, "it never searched") == (
        "it met them on 10 of 10 fresh days it never searched"
    )


def test_the_headline_report_opens_with_the_answers_and_links_each_report() -> None:
    headline = Headline("a claim", ("success>=99.5%",), (_reading(),))
    document = headline_document(headline)
    assert document.lead == answer_sentence(_reading())
    html = document_html(document)
    assert 'href="interview-day/report.html"' in html and 'href="interview-day/report.md"' in html
    assert "<code>callboard size</code>" in html and "`" not in html.split("</style>")[1]
    markdown = document_markdown(document)
    assert "[interview-day/report.html](interview-day/report.html)" in markdown


# --- settings, plurals ------------------------------------------------------------


def test_the_run_is_described_by_its_own_settings_with_plurals_right(results: Results) -> None:
    assert run_settings(results.meta.config) == (
        "30 interviews starting over 1.0 min, on 1 account (1 x huggingface)"
    )
    assert plural(1, "account") == "1 account" and plural(2_000, "interview") == "2,000 interviews"
    assert plural(1, "family", "families") == "1 family" and plural(0, "family", "families") == (
        "0 families"
    )
    assert "0 breaker openings" in headline_sentence(results)
    html = render_html(results, [])
    assert "30 interviews starting over 1.0 min, on 1 account" in html
    assert "(seed 1)" in html


# --- HTML -------------------------------------------------------------------------


def test_the_html_renders_markdown_and_lets_tables_scroll_in_their_own_box() -> None:
    document = Document(
        title="t",
        lead="see `callboard size` and [the other report](other/report.html)",
        description="<script>alert(1)</script>",
        sections=(Section("S", ("a `cell` here", Table(("a", "b"), (("`x`", "1"),)))),),
        footer="f",
    )
    html = document_html(document)
    assert "<code>callboard size</code>" in html and "<code>cell</code>" in html
    assert '<a href="other/report.html">the other report</a>' in html
    assert "<td><code>x</code></td>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html  # raw HTML stays text
    assert '<div class="table">\n<table>' in html
    css = html.split("<style>")[1].split("</style>")[0]
    assert re.search(r"\.table \{[^}]*overflow-x: auto", css)
    assert "max-width: 1120px" not in css  # fluid up to a wide screen
    assert re.search(r"img \{[^}]*max-width: 100%", css)
    assert not re.search(r"th[^{}]*\{[^}]*nowrap", css)  # long headers wrap, never widen it


# --- figures ----------------------------------------------------------------------


def _tick_labels(fig) -> list[str]:
    fig.canvas.draw()
    return [
        label.get_text()
        for ax in fig.axes
        for axis in (ax.xaxis, ax.yaxis)
        for minor in (False, True)
        for label in axis.get_ticklabels(minor=minor)
        if label.get_text()
    ]


def _capacity_data() -> dict:
    def point(accounts: int, latency: list[float]) -> dict:
        return {
            "accounts": accounts,
            "counts": {"huggingface": accounts},
            "latency": latency,
            "success_rate": [0.9] * len(latency),
        }

    return {
        "meta": {"scenario": "my-launch", "seed": 7, "slos": ["provider_p95<=5s"]},
        "levels": [
            {
                "interviews": 50,
                "feasible": True,
                "recommended": {"accounts": 4, "counts": {"huggingface": 4}},
                "curve": [
                    point(2, [math.inf]),
                    point(3, [60.0]),
                    point(4, [4.0, 3.5, 4.2]),
                    point(6, [0.5]),
                ],
            }
        ],
    }


def test_the_sizing_latency_axis_reads_as_plain_numbers() -> None:
    fig = curve_figure(_capacity_data(), "latency", "provider_p95", "s", "title")
    labels = _tick_labels(fig)
    assert labels and not [t for t in labels if "10^" in t or "times" in t or "$" in t]
    assert {"1", "10"} <= set(labels)
    assert [plain_number(v) for v in (60.0, 4.0, 0.5)] == ["60", "4", "0.5"]


def test_an_infinite_point_is_drawn_off_scale_and_said_in_the_legend() -> None:
    fig = curve_figure(_capacity_data(), "latency", "provider_p95", "s", "title")
    [ax] = fig.axes
    [marker] = [line for line in ax.lines if line.get_gid() == "off-scale"]
    assert list(marker.get_xdata()) == [2]
    assert marker.get_marker() == "^"
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any(text.startswith("∞ on a seed") for text in legend)


def test_every_figure_names_its_scenario_and_seed(results: Results) -> None:
    requests = result_views.requests(results)
    series = result_views.sampled(results)
    for name in FIGURES:
        fig = draw(name, results, requests, series)
        assert fig.get_suptitle() == "interview-day (seed 1)", name
    sizing = curve_figure(_capacity_data(), "latency", "provider_p95", "s", "title")
    assert sizing.get_suptitle() == "my-launch (seed 7)"


def test_a_one_account_run_says_one_account_in_its_figures(results: Results) -> None:
    requests = result_views.requests(results)
    series = result_views.sampled(results)
    fig = FIGURES["providers"](results, requests, series)
    title = fig.axes[0].get_title()
    assert "(1 account)" in title and "1 accounts" not in title


# --- capacity ---------------------------------------------------------------------


def test_a_sizing_level_is_answered_in_one_sentence() -> None:
    meta = {"slos": ["provider_p95<=5s", "success>=99.5%"], "confidence": 0.95}
    level = {
        "interviews": 500,
        "feasible": True,
        "recommended": {"counts": {"huggingface": 34}},
        "holdout": {"seeds": list(range(10)), "met": 9},
    }
    assert level_sentence(level, meta) == (
        "500 interviews: 34 x huggingface is the smallest fleet shown to meet "
        "provider_p95<=5s and success>=99.5% on at least 95.0% of days; it met them on 9 of "
        "10 fresh days the search never saw, as such a fleet may: one meeting them on exactly "
        "95.0% of days misses 1 or more of 10 days 40.1% of the time."
    )
    failed = {"interviews": 1, "feasible": False, "best_tried": {"counts": {"hf": 64}}}
    assert level_sentence(failed, meta).startswith("1 interview: no fleet in the range met")
