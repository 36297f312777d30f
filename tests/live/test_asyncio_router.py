"""``engine.open_asyncio_router``: the live router from asyncio code, trio as a guest.

Each test runs its own asyncio loop (``asyncio.run``) against mock providers served by
``callboard mock-provider`` processes on loopback ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import engine
from engine.routing.books import Books
from engine.serve.live_config import structure_config
from tests.live.test_live_cli import _start, _stop

USER = [{"role": "user", "content": "Tell me about yourself."}]


@pytest.fixture(scope="module")
def mocks() -> Iterator[dict[str, str]]:
    """Loopback mock providers by profile: healthy, hang (never answers), down (500s)."""
    started = {}
    try:
        for profile in ("healthy", "hang", "down"):
            argv = ["--port", "0", "--speed", "20", "--name", profile, "--profile", profile]
            started[profile] = _start("mock-provider", *argv)
        yield {profile: url for profile, (_, url) in started.items()}
    finally:
        for process, _ in started.values():
            _stop(process)


def config(*urls: str, **provider):
    providers = [
        {"name": f"p{i}", "base_url": f"{url}/v1", **provider} for i, url in enumerate(urls)
    ]
    return structure_config(
        {
            "providers": providers,
            "health": {"ping_every": None},
            "cache": {"enabled": False},
            "retry": {"deadline": 120, "backoff_base": 0.01},
            "timeouts": {"first_byte": 60},
        },
        "test",
    )


async def until_in_flight(router, count: int) -> None:
    """Wait (bounded) until the provider holds ``count`` requests in its slots."""
    async with asyncio.timeout(10):
        while router.status()[0].in_flight != count:
            await asyncio.sleep(0.005)


@pytest.mark.slow
def test_the_router_api_from_asyncio(mocks):
    async def main():
        async with engine.open_asyncio_router(config(mocks["healthy"]), env={}) as router:
            answer = await router.complete(USER, max_tokens=10)
            assert answer.provider == "p0" and answer.content.startswith("[healthy] answer")
            async with router.stream(USER, max_tokens=30) as reply:
                pieces = [text async for text in reply]
            assert len(pieces) > 1 and "".join(pieces) == reply.completion.content
            session = await router.session("c-1", system_prompt="You are an interviewer.")
            for message in ("Hello!", "I build services."):
                turn = await router.turn("c-1", message, max_tokens=10)
                assert turn.provider == "p0"
            async with router.stream_turn("c-1", "Thanks.", max_tokens=10) as reply:
                assert "".join([text async for text in reply]) == reply.completion.content
            roles = [m.role for m in session.history]
            assert roles == ["system"] + ["user", "assistant"] * 3
            (status,) = router.status()
            assert (status.name, status.breaker, status.in_flight) == ("p0", "closed", 0)
            # Many at once, from many asyncio tasks.
            many = [router.complete(USER, max_tokens=5) for _ in range(20)]
            answers = await asyncio.gather(*many)
            assert len({a.request_id for a in answers}) == 20

    asyncio.run(main())


def test_a_cancelled_asyncio_task_cancels_its_request_and_frees_the_slot(mocks):
    async def main():
        hanging = config(mocks["hang"], max_concurrency=1)
        async with engine.open_asyncio_router(hanging, env={}) as router:
            task = asyncio.create_task(router.complete(USER, max_tokens=10))
            await until_in_flight(router, 1)  # it holds the provider's only slot
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Freed by the time the CancelledError arrives: no wait, no polling.
            assert router.status()[0].in_flight == 0
            books = Books.of(router.live.router)
            assert (books.cancelled, books.in_flight) == (1, 0)
            # An asyncio timeout is a cancellation too.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await router.complete(USER, max_tokens=10)
            assert router.status()[0].in_flight == 0
            assert Books.of(router.live.router).cancelled == 2

    asyncio.run(main())


def test_leaving_a_stream_early_cancels_its_request(mocks):
    async def main():
        hanging = config(mocks["hang"], max_concurrency=1)
        async with engine.open_asyncio_router(hanging, env={}) as router:
            with pytest.raises(TimeoutError):
                async with router.stream(USER, max_tokens=10) as reply:
                    async with asyncio.timeout(0.2):
                        await anext(reply)
            assert router.status()[0].in_flight == 0
            assert Books.of(router.live.router).cancelled == 1

    asyncio.run(main())


def test_a_request_the_router_cancels_ends_as_cancelled_error_in_asyncio(mocks):
    async def main():
        async with engine.open_asyncio_router(config(mocks["hang"]), env={}) as router:
            task = asyncio.create_task(router.complete(USER, max_tokens=10))
            await until_in_flight(router, 1)
        # The router closed under the request: trio cancelled it, asyncio sees that.
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(main())


@pytest.mark.slow
def test_errors_arrive_as_the_named_errors_they_are(mocks, tmp_path):
    async def main():
        with pytest.raises(engine.ConfigError, match="no such file"):
            async with engine.open_asyncio_router(tmp_path / "missing.toml"):
                pass
        async with engine.open_asyncio_router(config(mocks["down"]), env={}) as router:
            with pytest.raises(engine.InvalidRequest, match=r"messages\[0\]\.content"):
                await router.complete([{"role": "user", "content": 42}])
            with pytest.raises(engine.RequestFailed) as failed:
                await router.complete(USER, max_tokens=5)
            assert failed.value.attempts and failed.value.attempts[0].provider == "p0"
            # One router per loop: trio runs once per thread.
            with pytest.raises(RuntimeError, match="one asyncio router per event loop"):
                async with engine.open_asyncio_router(config(mocks["down"]), env={}):
                    pass

    asyncio.run(main())
