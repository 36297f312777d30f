"""Traces: the router's records as OpenTelemetry spans, live and simulated alike.

:mod:`engine.traces.spans` turns each :class:`~engine.routing.recording.RequestRecord`
and its :class:`~engine.routing.recording.AttemptRecord` into spans named and attributed
by the OpenTelemetry GenAI semantic conventions, with the records' own times, so the
live router (trio's clock, mapped to wall time) and the simulator (virtual time from a
fixed epoch) write the same spans; :mod:`engine.traces.otlp_json` writes them as an
OTLP JSON file, :mod:`engine.traces.tracing` wires the SDK for either world.
"""
