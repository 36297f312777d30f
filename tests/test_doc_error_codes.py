"""The error codes the docs show are those the server answers: one table says which
(:mod:`engine.serve.error_codes`, printed in docs/reference.md), and every page is read
against it.

A page shows a server's error code in four ways, each read here: a status then a code
(``a 400 `invalid_request```), a table with a ``code`` column (and maybe a ``status``
one), a JSON error body (``"code":"invalid_request"``), and ``code `x``` in prose. A
status with its code must be a pair the table has; a code alone, one the table, an
attempt or (for prose that names an error's own code) the error tree has.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import engine.serve
from actors.runtime.errors import CallboardError
from engine.routing.errors import InvalidRequest
from engine.serve.callers.keys import Unauthorized
from engine.serve.error_codes import ANSWERS, ATTEMPT_CODES
from engine.serve.openai_format import error_body

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PAIRS = {(answer.status, answer.code) for answer in ANSWERS}
ANSWERED = {answer.code for answer in ANSWERS} | set(ATTEMPT_CODES)

_STATUS_CODE = re.compile(r"\b([1-5]\d\d) `([a-z_]+)`")
_JSON_CODE = re.compile(r'"code"\s*:\s*"([a-z_]+)"')
_PROSE_CODE = re.compile(r"\bcode `([a-z_]+)`")
_CODE_HEADERS = ("code", "`code`", "error code")


def _tree_codes() -> set[str]:
    found, todo = set(), [CallboardError]
    while todo:
        cls = todo.pop()
        found.add(cls.code)
        todo += cls.__subclasses__()
    return found


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table_codes(text: str) -> list[tuple[int | None, str]]:
    """(status or None, code) for each code in a table column headed ``code``."""
    found: list[tuple[int | None, str]] = []
    lines = text.splitlines()
    for at, line in enumerate(lines):
        if not line.startswith("|") or (at and lines[at - 1].startswith("|")):
            continue  # only a table's header row
        header = _cells(line)
        columns = [i for i, cell in enumerate(header) if cell.startswith(_CODE_HEADERS)]
        if not columns:
            continue
        status = header.index("status") if "status" in header else None
        for row in lines[at + 2 :]:
            if not row.startswith("|"):
                break
            cells = _cells(row)
            for code in re.findall(r"`([a-z_]+)`", cells[columns[0]]):
                found.append((int(cells[status]) if status is not None else None, code))
    return found


def presented(text: str) -> list[tuple[int | None, str]]:
    """Every (status or None, code) a page shows as an error code of the server's."""
    shown: list[tuple[int | None, str]] = [
        (int(status), code) for status, code in _STATUS_CODE.findall(text)
    ]
    shown += table_codes(text)
    shown += [(None, code) for code in _JSON_CODE.findall(text)]
    return shown


def answered(status: int | None, code: str) -> bool:
    """Whether the server answers ``code`` (with ``status``, when one is shown)."""
    return (status, code) in PAIRS if status is not None else code in ANSWERED


def test_every_error_code_a_page_shows_is_one_the_server_answers():
    tree = _tree_codes()
    wrong, seen = [], set()
    for page in PAGES:
        text = page.read_text()
        for status, code in presented(text):
            seen.add((page.name, status, code))
            if not answered(status, code):
                wrong.append(f"{page.name}: {'' if status is None else status} `{code}`")
        for code in _PROSE_CODE.findall(text):
            seen.add((page.name, None, code))
            if code not in ANSWERED | tree:
                wrong.append(f"{page.name}: code `{code}`")
    assert not wrong, "codes no server answer carries: " + "; ".join(wrong)
    # The reading finds each way a page shows a code (else this test would pass on nothing).
    assert ("serve.md", 408, "body_timeout") in seen  # status then code
    assert ("callers.md", 401, "missing_api_key") in seen  # a table's status and code
    assert ("serve.md", None, "model_not_found") in seen  # a JSON error body
    assert ("glossary.md", None, "invalid_config") in seen  # prose
    assert {(s, c) for page, s, c in seen if page == "reference.md" and s} == PAIRS


def test_a_pair_the_table_lacks_is_caught_in_each_way_a_page_shows_it():
    page = (
        "JSON nested too deep is a 400 `invalid_value`.\n\n"
        "| status | `code` | when |\n|---|---|---|\n| 401 | `no_key` | no key |\n\n"
        '{"error":{"code":"made_up"}}\n'
    )
    shown = presented(page)
    assert shown == [(400, "invalid_value"), (401, "no_key"), (None, "made_up")]
    assert not any(answered(status, code) for status, code in shown)


def test_the_codes_the_surface_sets_itself_are_in_the_table():
    cases = [
        InvalidRequest("model", "gpt-9", "auto"),
        InvalidRequest("temperature", 7, "a number in [0, 2]"),
        Unauthorized("missing API key", "missing"),
        Unauthorized("incorrect API key provided", "unknown"),
        RuntimeError("a bug"),
    ]
    for error in cases:
        status, body, _ = error_body(error)
        assert (status, body["error"]["code"]) in PAIRS, error


def test_every_error_of_the_http_surface_is_in_the_table():
    """An error class the serve layer defines reaches a client, unless named here."""
    never_answered = {"AddressInUse": "raised before serving; the CLI prints it, exit 2"}
    for module in pkgutil.walk_packages(engine.serve.__path__, "engine.serve."):
        importlib.import_module(module.name)
    defined, todo = set(), [CallboardError]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("engine.serve."):
            defined.add(cls.__name__)
    listed = {answer.error for answer in ANSWERS}
    assert defined - set(never_answered) <= listed
    assert set(never_answered) <= defined
