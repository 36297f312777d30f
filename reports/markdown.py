"""The report as Markdown, for a terminal, a pull request or a wiki.

Only layout lives here; what the report says comes from reports.document.
"""

from __future__ import annotations

from pathlib import Path

from reports.document import Document, FigureRef, Heading, Table, build_document
from sims.results import Results


def _cell(text: str) -> str:
    # A "|" would end the cell; newlines would end the row.
    return " ".join(text.split()).replace("|", "\\|")


def table(block: Table) -> str:
    align = ["---:" if right else "---" for right in block.numeric]
    lines = [
        "| " + " | ".join(_cell(h) for h in block.headers) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows]
    return "\n".join(lines)


def _block(block: object) -> str:
    if isinstance(block, Table):
        return table(block)
    if isinstance(block, Heading):
        return f"### {block.text}"
    if isinstance(block, FigureRef):
        return f"### {block.title}\n\n![{block.title}]({block.href})\n\n{block.caption}".rstrip()
    return str(block)


def document_markdown(document: Document) -> str:
    parts = [f"# {document.title}", f"**{document.lead}**"]
    if document.description:
        parts.append(f"> {document.description}")
    for section in document.sections:
        parts.append(f"## {section.title}")
        parts += [_block(b) for b in section.blocks]
    parts += ["---", f"<sub>{document.footer}</sub>"]
    return "\n\n".join(parts) + "\n"


def render_markdown(results: Results, figures: list[Path]) -> str:
    """Markdown linking the figures as ``figures/<name>.png`` beside the report."""
    return document_markdown(build_document(results, figures))
