"""report.html in a real browser: laid out within the window from 1,024 to 1,920 px, with
no element running past the page's edge (a clipped column is an answer a planner cannot
read), and its sub-reports linked."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from engine.cli.main import main
from tests.browser.conftest import console_errors, set_viewport

#: Every element whose box, drawn, reaches past the viewport's right edge (or its left).
PAST_THE_EDGE = """
const width = document.documentElement.clientWidth;
const past = [];
for (const node of document.querySelectorAll("body *")) {
  const box = node.getBoundingClientRect();
  if (box.width === 0 && box.height === 0) continue;
  if (box.right > width + 0.5 || box.left < -0.5) {
    const text = (node.textContent || "").trim().slice(0, 40);
    const where = `${Math.round(box.left)}..${Math.round(box.right)}`;
    past.push(`${node.tagName.toLowerCase()} ${where} ${text}`);
  }
}
return {width, scrollWidth: document.documentElement.scrollWidth, past};
"""


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    """The default run (both readings, each sized) at 40 interviews: the same report as
    at 500, in seconds."""
    out = tmp_path_factory.mktemp("default-run")
    argv = ["simulate", "--quiet", "--set", "workload.interviews=40", "--out", str(out)]
    assert main(argv) == 0
    return out


@pytest.mark.parametrize("width", [1024, 1440, 1920])
@pytest.mark.parametrize("page", ["report.html", "interview-day/report.html"])
def test_the_report_fits_the_window(browser, default_run, width, page):
    set_viewport(browser, width)
    browser.get((default_run / page).as_uri())
    layout = browser.execute_script(PAST_THE_EDGE)
    assert layout["width"] == width
    assert layout["past"] == [], layout["past"][:10]
    assert layout["scrollWidth"] <= width
    assert console_errors(browser) == []


def test_the_default_runs_report_links_each_scenarios_report(browser, default_run):
    browser.get((default_run / "report.html").as_uri())
    links = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href]")}
    for scenario in ("interview-day", "interview-day-as-claimed"):
        assert (default_run / scenario / "report.html").as_uri() in links
