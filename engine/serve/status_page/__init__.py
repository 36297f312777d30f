"""The status page's files (HTML, CSS, JavaScript), shipped in the package and served as
they are: no build step, nothing fetched from elsewhere at run time."""

from __future__ import annotations

import functools
from importlib import resources

#: The files the page is made of, with their media types.
FILES = {
    "status.html": "text/html; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
    "status.js": "text/javascript; charset=utf-8",
}


@functools.cache
def page_file(name: str) -> bytes:
    """One of :data:`FILES`, read once."""
    return resources.files(__name__).joinpath(name).read_bytes()
