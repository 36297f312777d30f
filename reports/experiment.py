"""The experiment report: which variant won, by how much, and how sure that is.

:func:`sims.experiment_data.experiment_data` turns an experiment into plain JSON-able
data; :func:`experiment_report_data` adds the verdict in words (experiment.json); the
figures, the Markdown and the HTML are all drawn from that data, through the same
Document the other reports use, so they agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from reports.document import write_file
from reports.experiment_document import experiment_document
from reports.experiment_figures import experiment_figures
from reports.experiment_text import verdict_words
from reports.html import document_html
from reports.markdown import document_markdown
from sims.experiment import Experiment
from sims.experiment_data import experiment_data
from sims.results import round_floats


def experiment_report_data(experiment: Experiment) -> dict[str, Any]:
    """experiment.json: the experiment's numbers, and its verdict in words."""
    data = experiment_data(experiment)
    data["verdict"] = round_floats({**data["verdict"], **verdict_words(data)})
    return data


@attrs.frozen
class ExperimentFiles:
    out_dir: Path
    json: Path
    markdown: Path
    html: Path
    figures: tuple[Path, ...]


def write_experiment_report(
    experiment: Experiment, out_dir: Path
) -> tuple[dict[str, Any], ExperimentFiles]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = experiment_report_data(experiment)
    json_path = write_file(
        out_dir / "experiment.json", json.dumps(data, sort_keys=True, indent=1) + "\n"
    )
    figures = experiment_figures(data, out_dir / "figures")
    document = experiment_document(data, figures)
    md = write_file(out_dir / "experiment.md", document_markdown(document))
    html = write_file(out_dir / "experiment.html", document_html(document))
    return data, ExperimentFiles(out_dir, json_path, md, html, tuple(f.path for f in figures))
