"""Write a whole report directory from one Results: the data, figures, Markdown, HTML.

out_dir/results.json   the run's data (byte-stable)
out_dir/figures/*.png  the figures
out_dir/report.md      Markdown, linking figures/*.png
out_dir/report.html    one self-contained page with the figures embedded
"""

from __future__ import annotations

from pathlib import Path

import attrs

from reports.document import write_file
from reports.figures import render_figures
from reports.html import render_html
from reports.markdown import render_markdown
from sims.results import Results


@attrs.frozen
class ReportFiles:
    """Where each part of a report was written."""

    out_dir: Path
    results_json: Path
    markdown: Path
    html: Path
    figures: tuple[Path, ...]

    def all(self) -> list[Path]:
        return [self.results_json, self.markdown, self.html, *self.figures]


def write_report(results: Results, out_dir: Path) -> ReportFiles:
    """Render everything into ``out_dir`` (created if missing); returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_json = write_file(out_dir / "results.json", results.to_json())
    figures = render_figures(results, out_dir / "figures")
    markdown = write_file(out_dir / "report.md", render_markdown(results, figures))
    html = write_file(out_dir / "report.html", render_html(results, figures))
    return ReportFiles(out_dir, results_json, markdown, html, tuple(figures))
