"""The report as one self-contained HTML file: inline CSS, figures as data URIs.

One file that opens anywhere (mail it, attach it to a ticket) with nothing to fetch.
Only layout lives here; what the report says comes from reports.document.
"""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path

from markdown_it import MarkdownIt

from reports.document import Document, FigureRef, Heading, Table, build_document
from sims.results import Results

CSS = """
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1d1d1f; max-width: 1800px; margin: 2em auto; padding: 0 2em; }
h1 { font-size: 1.7em; margin-bottom: 0.3em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
p, figcaption, footer { max-width: 75em; overflow-wrap: anywhere; }
code { font: 0.92em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: #f3f3f3; padding: 0.05em 0.3em; border-radius: 3px; }
.lead { font-size: 1.1em; background: #f3f6fa; border-left: 4px solid #1f77b4;
        padding: 0.6em 0.9em; }
.description { color: #444; font-style: italic; }
nav { font-size: 0.9em; color: #555; }
a { color: #1f5f99; }
nav a { margin-right: 0.9em; text-decoration: none; }
.table { max-width: 100%; overflow-x: auto; margin: 0.6em 0 1em; }
table { border-collapse: collapse; font-size: 0.93em; }
th, td { padding: 0.25em 0.55em; border-bottom: 1px solid #e4e4e4; text-align: left;
         vertical-align: top; }
th { background: #f5f5f5; font-weight: 600; vertical-align: bottom; }
td { max-width: 40em; overflow-wrap: break-word; }
tr:nth-child(even) td { background: #fafafa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
figure { margin: 1em 0 2em; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92em; margin-top: 0.3em; }
footer { margin-top: 3em; color: #666; font-size: 0.85em; border-top: 1px solid #ddd;
         padding-top: 0.6em; }
"""

#: The report's text is Markdown (backticks, links); CommonMark renders it, and raw HTML
#: in it is shown as text, never passed through.
MARKDOWN = MarkdownIt("commonmark", {"html": False})


def inline(text: str) -> str:
    """One run of report text (a paragraph, a cell, a caption) as HTML."""
    return MARKDOWN.renderInline(text).strip()


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def table(block: Table) -> str:
    numeric = block.numeric

    def cells(tag: str, values: tuple[str, ...]) -> str:
        return "".join(
            f'<{tag} class="num">{inline(v)}</{tag}>' if right else f"<{tag}>{inline(v)}</{tag}>"
            for v, right in zip(values, numeric, strict=True)
        )

    body = "\n".join(f"<tr>{cells('td', row)}</tr>" for row in block.rows)
    head = f"<thead><tr>{cells('th', block.headers)}</tr></thead>"
    # Its own box scrolls sideways when wider than the page; the page never does.
    return f'<div class="table">\n<table>\n{head}\n<tbody>\n{body}\n</tbody>\n</table>\n</div>'


def figure(block: FigureRef) -> str:
    data = base64.b64encode(block.path.read_bytes()).decode("ascii")
    return (
        f'<figure id="{_anchor(block.title)}">\n<h3>{escape(block.title)}</h3>\n'
        f'<img alt="{escape(block.title)}" src="data:image/png;base64,{data}">\n'
        f"<figcaption>{inline(block.caption)}</figcaption>\n</figure>"
    )


def _block(block: object) -> str:
    if isinstance(block, Table):
        return table(block)
    if isinstance(block, Heading):
        return f"<h3>{escape(block.text)}</h3>"
    if isinstance(block, FigureRef):
        return figure(block)
    return f"<p>{inline(str(block))}</p>"


def document_html(document: Document) -> str:
    nav = " ".join(
        f'<a href="#{_anchor(s.title)}">{escape(s.title)}</a>' for s in document.sections
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(document.title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(document.title)}</h1>",
        f'<p class="lead">{inline(document.lead)}</p>',
    ]
    if document.description:
        parts.append(f'<p class="description">{inline(document.description)}</p>')
    parts.append(f"<nav>{nav}</nav>")
    for section in document.sections:
        parts.append(f'<section>\n<h2 id="{_anchor(section.title)}">{escape(section.title)}</h2>')
        parts += [_block(b) for b in section.blocks]
        parts.append("</section>")
    parts += [f"<footer>{inline(document.footer)}</footer>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def render_html(results: Results, figures: list[Path]) -> str:
    """One HTML page with every figure embedded; links nothing outside itself."""
    return document_html(build_document(results, figures))
