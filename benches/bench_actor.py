"""Cost of talking to an actor: ``actors.runtime.actor`` versus plain trio memory channels.

Every routed request is a few actor round trips (provider, breaker, cache, session), so
what one costs bounds the router's overhead. The actor's mailbox is a deque plus trio's
lowest-level parking, and an ``ask`` answers through a one-shot reply slot. Its peers,
measured in the same process on trio's normal clock:

- ask: ``await actor.ask(msg)`` on an echo actor, versus a request channel into a
  server task that answers through a fresh ``open_memory_channel(1)`` pair per request
  (the naive pattern), versus a rendezvous pair (``open_memory_channel(0)``) for the
  requests with one shared reply channel;
- tell: ``actor.tell(msg)`` in chunks that the actor drains in batches, versus
  ``send_nowait`` into a buffered memory channel that a server task drains with
  ``async for``. A chunk ends with one round trip as a barrier, so every message has been
  handled when the clock stops; its cost is spread over the chunk.

Each variant runs ``--repeat`` times, interleaved; the median time per message is kept.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from actors.runtime.actor import Actor, Supervisor

CHUNK = 500  # tells between barriers; below the mailbox capacity, so tell never overflows


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


async def actor_ask(messages: int) -> float:
    async with trio.open_nursery() as nursery:
        actor = await Supervisor(nursery).start(Echo("echo"))
        start = time.perf_counter()
        for i in range(messages):
            await actor.ask(i)
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed


async def actor_tell(messages: int) -> float:
    async with trio.open_nursery() as nursery:
        actor = await Supervisor(nursery).start(Echo("echo"))
        start = time.perf_counter()
        for first in range(0, messages, CHUNK):
            for i in range(first, min(first + CHUNK, messages)):
                actor.tell(i)
            await actor.ask(None)  # barrier: the mailbox is FIFO
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed


Request = tuple[Any, trio.MemorySendChannel[Any] | None]


async def reply_server(requests: trio.MemoryReceiveChannel[Request]) -> None:
    """Answer each request on the reply channel that came with it (if any)."""
    async for message, reply_to in requests:
        if reply_to is not None:
            reply_to.send_nowait(message)


async def channel_fresh_reply(messages: int) -> float:
    async with trio.open_nursery() as nursery:
        send, receive = trio.open_memory_channel[Request](Actor.mailbox_capacity)
        nursery.start_soon(reply_server, receive)
        start = time.perf_counter()
        for i in range(messages):
            reply_send, reply_receive = trio.open_memory_channel[Any](1)
            await send.send((i, reply_send))
            await reply_receive.receive()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed


async def channel_rendezvous(messages: int) -> float:
    async def server(
        requests: trio.MemoryReceiveChannel[Any], replies: trio.MemorySendChannel[Any]
    ) -> None:
        async for message in requests:
            await replies.send(message)

    async with trio.open_nursery() as nursery:
        request_send, request_receive = trio.open_memory_channel[Any](0)
        reply_send, reply_receive = trio.open_memory_channel[Any](0)
        nursery.start_soon(server, request_receive, reply_send)
        start = time.perf_counter()
        for i in range(messages):
            await request_send.send(i)
            await reply_receive.receive()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed


async def channel_send_nowait(messages: int) -> float:
    async with trio.open_nursery() as nursery:
        send, receive = trio.open_memory_channel[Request](Actor.mailbox_capacity)
        nursery.start_soon(reply_server, receive)
        start = time.perf_counter()
        for first in range(0, messages, CHUNK):
            for i in range(first, min(first + CHUNK, messages)):
                send.send_nowait((i, None))
            reply_send, reply_receive = trio.open_memory_channel[Any](1)
            await send.send((None, reply_send))  # barrier
            await reply_receive.receive()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed


VARIANTS: dict[str, Callable[[int], Awaitable[float]]] = {
    "actor.ask": actor_ask,
    "channel, fresh reply pair": channel_fresh_reply,
    "rendezvous, shared reply": channel_rendezvous,
    "actor.tell": actor_tell,
    "channel send_nowait": channel_send_nowait,
}


def compare(factor: float, subject: str, peer: str) -> str:
    if factor >= 1.0:
        return f"{subject} is {factor:.1f}x cheaper than {peer}"
    return f"{subject} is {1.0 / factor:.1f}x MORE EXPENSIVE than {peer}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5_000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=7, help="runs per variant; median is kept")
    args = parser.parse_args()

    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeat):
        for name, variant in VARIANTS.items():  # interleaved, so noise hits every variant alike
            walls[name].append(trio.run(variant, args.messages))
    us = {name: statistics.median(w) / args.messages * 1e6 for name, w in walls.items()}

    print(f"{args.messages} messages per run, median of {args.repeat} runs")
    for name in ("actor.ask", "channel, fresh reply pair", "rendezvous, shared reply"):
        print(f"  round trip  {name:26s} {us[name]:7.2f} µs")
    for name in ("actor.tell", "channel send_nowait"):
        print(f"  one-way     {name:26s} {us[name]:7.2f} µs/message")
    ask = us["actor.ask"]
    print(
        compare(
            us["channel, fresh reply pair"] / ask,
            "ask",
            "a memory-channel round trip with a fresh reply channel",
        )
    )
    print(
        compare(
            us["rendezvous, shared reply"] / ask,
            "ask",
            "a rendezvous-channel round trip with a shared reply channel",
        )
    )
    print(
        compare(
            us["channel send_nowait"] / us["actor.tell"],
            "tell (per message)",
            "send_nowait into a buffered memory channel drained by async for",
        )
    )
    print(compare(ask / us["actor.tell"], "tell (per message)", "ask"))


if __name__ == "__main__":
    main()
