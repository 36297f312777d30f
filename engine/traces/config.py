"""The ``[traces]`` table of the live config: where spans go, and what they may hold."""

from __future__ import annotations

import attrs

from actors.runtime.errors import InvalidSetting, require


def _url(instance: object, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise InvalidSetting(f"traces.{attribute.name}", value, "an http:// or https:// URL")


@attrs.frozen
class TracesConfig:
    """Off unless a destination is set: an OTLP/HTTP collector, a file, or both."""

    #: The collector's OTLP/HTTP URL (``http://localhost:4318``; ``/v1/traces`` is added
    #: unless the URL already ends with it).
    otlp_endpoint: str | None = attrs.field(default=None, validator=_url)
    #: A file to write spans to in the OTLP JSON file format (one export request a line).
    file: str | None = None
    #: Record message contents on spans (``gen_ai.input.messages`` ...): off, since
    #: prompts and answers are the users' data.
    capture_content: bool = False
    #: The share of requests traced (each request's attempts go with it).
    sample_ratio: float = 1.0

    def __attrs_post_init__(self) -> None:
        ratio = self.sample_ratio
        ok = isinstance(ratio, int | float) and 0.0 <= ratio <= 1.0
        require("traces.sample_ratio", ok, ratio, "a number from 0 to 1")
        require("traces.file", self.file != "", self.file, "a path, or no key")

    @property
    def enabled(self) -> bool:
        return self.otlp_endpoint is not None or self.file is not None

    @property
    def traces_url(self) -> str | None:
        """The URL spans are POSTed to."""
        url = self.otlp_endpoint
        if url is None or url.rstrip("/").endswith("/v1/traces"):
            return url
        return url.rstrip("/") + "/v1/traces"
