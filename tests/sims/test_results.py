"""results.json: the schema in docs/ is the classes', every built-in scenario's output
follows it, and a file reads back to the same objects and the same bytes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import attrs
import jsonschema
import pytest

from sims.results import Results
from sims.runner import simulate
from sims.scenario import builtin_names, load
from sims.summarise import summarise

ROOT = Path(__file__).resolve().parent.parent.parent
_spec = importlib.util.spec_from_file_location(
    "results_schema", ROOT / "docs" / "results_schema.py"
)
results_schema = importlib.util.module_from_spec(_spec)
sys.modules["results_schema"] = results_schema
_spec.loader.exec_module(results_schema)

SCHEMA = json.loads(results_schema.PAGE.read_text(encoding="utf-8"))


def test_the_published_schema_is_the_classes():
    assert results_schema.text() == results_schema.PAGE.read_text(encoding="utf-8"), (
        "docs/results.schema.json is stale: run docs/results_schema.py"
    )


@attrs.frozen
class Undocumented:
    """A record."""

    #: Noted.
    noted: int
    bare: float


def test_a_field_without_a_note_has_no_place_in_the_schema():
    with pytest.raises(ValueError, match=r"Undocumented\.bare"):
        results_schema.Builder().describe(Undocumented)


@pytest.mark.parametrize("name", builtin_names())
def test_every_built_in_scenario_writes_results_the_schema_describes(name: str):
    # Shortened runs: the shape of the file, not its figures, is under test here.
    scenario, _ = load(name, ["workload.interviews=6", "workload.turns=4"])
    text = summarise(simulate(scenario)).to_json()
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(text))
    loaded = Results.from_json(text)
    assert loaded.to_json() == text
    assert Results.from_json(loaded.to_json()) == loaded


def test_the_schema_rejects_a_renamed_field():
    scenario, _ = load("reference", ["workload.interviews=2", "workload.turns=3"])
    data = json.loads(summarise(simulate(scenario)).to_json())
    data["summary"]["p95_latency"] = data["summary"].pop("p95")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(data)
