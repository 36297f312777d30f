"""Trace and span ids drawn from a seeded stream, so a simulation's traces repeat."""

from __future__ import annotations

from opentelemetry.sdk.trace.id_generator import IdGenerator

from actors.runtime.randomness import RandomStreams


class SeededIds(IdGenerator):
    """Ids from the scenario seed's ``traces:ids`` stream: the same run, the same ids."""

    def __init__(self, seed: int) -> None:
        self._draw = RandomStreams(seed).stream("traces:ids").generator.bytes

    def _nonzero(self, size: int) -> int:
        while True:  # an all-zero id is invalid in OpenTelemetry
            value = int.from_bytes(self._draw(size), "big")
            if value:
                return value

    def generate_span_id(self) -> int:
        return self._nonzero(8)

    def generate_trace_id(self) -> int:
        return self._nonzero(16)

    def is_trace_id_random(self) -> bool:
        return True
