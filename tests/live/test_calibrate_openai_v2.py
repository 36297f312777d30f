"""A fresh trace file from the official OpenTelemetry OpenAI instrumentation (openai-v2:
the `openai` client against a mock provider over loopback) calibrates without edits."""

from __future__ import annotations

from tests.calibrate.test_openai_v2 import check_openai_v2
from tests.live.openai_v2_traces import write_traces


async def test_a_fresh_openai_v2_file_calibrates(tmp_path):
    path = tmp_path / "openai-v2.jsonl"
    await write_traces(path, seed=7)
    check_openai_v2(path)
