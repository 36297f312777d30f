"""Write docs/results.schema.json, the JSON Schema of results.json, from the code.

    .venv/bin/python docs/results_schema.py           # rewrite docs/results.schema.json
    .venv/bin/python docs/results_schema.py --check   # fail if it is stale

The schema is read from the attrs classes results.json is written from
(``sims.results.Results`` and every class it holds): a field's type gives its JSON type,
its ``#:`` comment (or the comment after it) its description, as docs/reference.py reads
them. A field without a note is an error, so every field of results.json is described.
"""

from __future__ import annotations

import enum
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "docs")]

from reference import field_notes  # noqa: E402

from sims.results import (  # noqa: E402
    SPARSE,
    BoolColumn,
    FloatColumn,
    IntColumn,
    Results,
)

PAGE = ROOT / "docs" / "results.schema.json"
NUMBER = {"$ref": "#/$defs/number"}
COLUMNS = {
    FloatColumn: {"type": "array", "items": NUMBER},
    IntColumn: {"type": "array", "items": {"type": "integer"}},
    BoolColumn: {"type": "array", "items": {"type": "boolean"}},
}
SCALARS = {str: {"type": "string"}, bool: {"type": "boolean"}, int: {"type": "integer"}}


def plain(text: str) -> str:
    """A docstring's words without reStructuredText markup, on one line."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?(\w+)`", r"\1", text)
    return " ".join(text.replace("``", "`").split())


class Builder:
    """Walks the classes from :class:`Results` down, one definition per class."""

    def __init__(self) -> None:
        self.defs: dict[str, Any] = {
            "number": {
                "description": "A number; a float that is not finite is written as a string.",
                "anyOf": [{"type": "number"}, {"enum": ["nan", "inf", "-inf"]}],
            }
        }

    def type_of(self, hint: Any) -> dict[str, Any]:
        if hint in COLUMNS:
            return COLUMNS[hint]
        if hint in SCALARS:
            return SCALARS[hint]
        if hint is float:
            return NUMBER
        if hint is Any:
            return {}
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return {"enum": [member.value for member in hint]}
        if isinstance(hint, type) and attrs.has(hint):
            return self.ref(hint)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self.type_of(a) for a in args]}
        if hint is type(None):
            return {"type": "null"}
        if origin is list:
            return {"type": "array", "items": self.type_of(args[0])}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.type_of(args[1])}
        raise TypeError(f"no JSON Schema for {hint!r}")

    def ref(self, cls: type) -> dict[str, Any]:
        name = cls.__name__
        if name not in self.defs:
            self.defs[name] = {}  # a placeholder while its fields are walked
            self.defs[name] = self.describe(cls)
        return {"$ref": f"#/$defs/{name}"}

    def describe(self, cls: type) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        notes: dict[str, str] = {}
        for base in reversed(cls.__mro__):
            if attrs.has(base):
                notes.update(field_notes(base))
        properties = {}
        for field in attrs.fields(cls):
            if not notes.get(field.name) or not cls.__doc__:
                raise ValueError(f"{cls.__qualname__}.{field.name}: no docstring or #: note")
            properties[field.name] = {
                "description": plain(notes[field.name]),
                **self.type_of(hints[field.name]),
            }
        required = [
            f.name
            for f in attrs.fields(cls)
            if not (cls in SPARSE and f.default is not attrs.NOTHING)
        ]
        return {
            "type": "object",
            "description": plain((cls.__doc__ or "").split("\n\n")[0]),
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }


def build() -> dict[str, Any]:
    """The JSON Schema of results.json."""
    builder = Builder()
    top = builder.describe(Results)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "callboard results.json",
        **top,
        "$defs": dict(sorted(builder.defs.items())),
    }


def text() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        if PAGE.read_text(encoding="utf-8") != text():
            print(f"{PAGE.relative_to(ROOT)} is stale: run docs/results_schema.py")
            return 1
        return 0
    PAGE.write_text(text(), encoding="utf-8", newline="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
