"""The docs check itself: it runs a page's commands and fails, naming the line, when one
fails or prints something else than the page says. (``.ci/run`` runs the whole check over
README.md and docs/*.md: a few minutes of simulations and live walkthroughs.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("docs_check", ROOT / "docs" / "check.py")
check = importlib.util.module_from_spec(_spec)
sys.modules["docs_check"] = check
_spec.loader.exec_module(check)


def page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text)
    return path


def test_a_command_and_the_output_the_page_shows_are_run_and_compared(tmp_path):
    doc = page(tmp_path, "```sh\necho hello\n```\n\n<!-- check: output -->\n```text\nhello\n```\n")
    assert check.check_page(doc) == (1, 1)


def test_a_failing_command_fails_the_check_with_its_line(tmp_path):
    doc = page(tmp_path, "intro\n\n```sh\necho fine\nfalse\n```\n")
    with pytest.raises(check.DocError, match=r"page\.md:3"):
        check.check_page(doc)


def test_output_that_changed_fails_the_check(tmp_path):
    doc = page(tmp_path, "```sh\necho 41\n```\n<!-- check: output -->\n```text\n42\n```\n")
    with pytest.raises(check.DocError, match="printed something else"):
        check.check_page(doc)


def test_a_block_that_says_not_how_it_is_checked_is_refused(tmp_path):
    doc = page(tmp_path, "```text\nsome output\n```\n")
    with pytest.raises(check.DocError, match="needs a <!-- check"):
        check.check_page(doc)
