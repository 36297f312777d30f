"""One failure vocabulary: every fault kind fails calls with the code the table gives, and
the mock profile the table names fails them the same way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio

from actors.backends import Usage
from actors.backends.virtual import ErrorRates, LatencyModel, VirtualBackend
from actors.errors import AttemptError
from actors.failures import FAILURES, ErrorCode, FaultKind, MockProfileName
from actors.faults import Fault, FaultSchedule
from actors.messages import ChatMessage, ChatRequest
from actors.runtime.distributions import Constant
from actors.runtime.errors import InvalidSetting
from actors.runtime.randomness import RandomStreams
from engine.cli.live import PROFILES
from sims.mock_provider import MockProvider, mock_profiles

REQUEST = ChatRequest(messages=(ChatMessage("user", "hi"),))


def backend(errors: ErrorRates, faults: tuple[Fault, ...] = ()) -> VirtualBackend:
    return VirtualBackend(
        "a",
        LatencyModel(service=Constant(1.0), error_ttft=Constant(0.1)),
        errors,
        FaultSchedule(faults),
        RandomStreams(1),
    )


async def fails_with(b: VirtualBackend) -> str | None:
    """The code a call fails with; ``timeout`` if it hangs (the attempt timeout ends it in
    the router); None if it is answered."""
    with trio.move_on_after(3600):
        try:
            await b.complete(REQUEST, "r", Usage())
        except AttemptError as exc:
            return exc.code
        return None
    return ErrorCode.TIMEOUT


def test_the_table_names_every_fault_kind_once_in_each_vocabulary():
    assert [f.kind for f in FAILURES] == list(FaultKind)
    assert all(f.code is None or f.code in ErrorCode for f in FAILURES)
    profiles = [f.profile for f in FAILURES if f.profile is not None]
    assert len(profiles) == len(set(profiles))
    assert set(mock_profiles()) == set(MockProfileName) and tuple(MockProfileName) == PROFILES


@pytest.mark.parametrize("failure", FAILURES, ids=lambda f: f.kind)
async def test_a_fault_fails_calls_with_the_code_of_its_kind(virtual_clock, failure):
    b = backend(ErrorRates(), (Fault(failure.kind, start=0, end=7200, period=7200),))
    assert await fails_with(b) == failure.code


@pytest.mark.parametrize(
    "failure", [f for f in FAILURES if f.profile is not None], ids=lambda f: f.profile
)
async def test_the_mock_profile_of_a_fault_fails_calls_as_the_fault_does(virtual_clock, failure):
    b = backend(mock_profiles()[failure.profile].errors)
    codes = {await fails_with(b) for _ in range(30)}
    assert failure.code in codes and codes <= {None, failure.code}


def test_an_unknown_kind_or_profile_is_refused_with_the_allowed_values_named():
    with pytest.raises(InvalidSetting, match=r"faults\[0\]\.kind: got 'brownout'; allowed: outage"):
        FaultSchedule([Fault("brownout", start=0)])  # type: ignore[arg-type]
    with pytest.raises(InvalidSetting, match=r"profile: got 'sideways'; allowed: healthy \| slow"):
        MockProvider(profile="sideways")


def test_the_glossary_shows_the_table_the_code_has():
    page = (Path(__file__).parents[2] / "docs" / "glossary.md").read_text()
    section = page.split("## One failure, three words")[1]
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \| (.+?) \|$", section, re.M)
    first = re.compile(r"`([\w-]+)`")
    shown = [(kind, first.match(code), first.match(profile)) for kind, code, profile in rows]
    assert [(kind, code and code[1], profile and profile[1]) for kind, code, profile in shown] == [
        (f.kind, f.code, f.profile) for f in FAILURES
    ]


async def test_an_answer_bills_every_token_it_carries_and_a_cut_one_what_was_generated(
    virtual_clock,
):
    """Billing counts a whole answer's tokens exactly, at any start time and duration (the
    clock's rounding once billed half of all answers a token short); one cut short is
    billed the share of its decoding done."""
    b = VirtualBackend(
        "a", LatencyModel(tokens_per_s=37.0), ErrorRates(), FaultSchedule(), RandomStreams(3)
    )
    for i in range(200):
        await trio.sleep(0.1 * i / 7)  # starts at uneven times: every rounding shows
        usage = Usage()
        wanted = ChatRequest(messages=(ChatMessage("user", "hi"),), expected_output_tokens=i + 1)
        reply = await b.complete(wanted, f"r-{i}", usage)
        assert usage.output_tokens == reply.completion_tokens == i + 1
    usage = Usage()
    long = ChatRequest(messages=(ChatMessage("user", "hi"),), expected_output_tokens=370)
    with trio.move_on_after(5.0):  # 10 s of decoding at 37 tokens/s, cut at 5 s
        await b.complete(long, "r-cut", usage)
    assert 0 < usage.output_tokens < 370
