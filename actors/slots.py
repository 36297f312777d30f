"""Concurrency slots with a bounded FIFO queue, as a provider account enforces them."""

from __future__ import annotations

import trio


class QueueIsFull(Exception):
    """Raised by :meth:`Slots.acquire` when every slot is busy and the queue is full."""


class Slots:
    """``capacity`` concurrent calls; up to ``queue_limit`` more wait in FIFO order.

    A released slot is handed straight to the longest waiter (no barging), so
    queueing is fair and the wait of each request is what a FIFO server gives.
    """

    __slots__ = ("_lot", "capacity", "in_use", "queue_limit")

    def __init__(self, capacity: int, queue_limit: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        if queue_limit < 0:
            raise ValueError(f"queue_limit must be >= 0, got {queue_limit!r}")
        self.capacity = capacity
        self.queue_limit = queue_limit
        self.in_use = 0
        self._lot = trio.lowlevel.ParkingLot()

    @property
    def queued(self) -> int:
        return len(self._lot)

    def try_acquire(self) -> bool:
        """Take a free slot if there is one, without waiting (and without a checkpoint)."""
        if self.in_use < self.capacity:
            self.in_use += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, queueing in FIFO order if all are busy."""
        if self.in_use < self.capacity:
            self.in_use += 1
            await trio.lowlevel.checkpoint_if_cancelled()
            return
        if len(self._lot) >= self.queue_limit:
            raise QueueIsFull(f"{self.in_use} calls in flight and {len(self._lot)} queued")
        # The slot is handed over by release(); in_use already counts it.
        await self._lot.park()

    def release(self) -> None:
        # Above capacity (it was just lowered) the slot is retired, not handed over.
        if self._lot and self.in_use <= self.capacity:
            self._lot.unpark()
        else:
            self.in_use -= 1

    def resize(self, capacity: int) -> None:
        """Change the number of slots: waiters get new ones at once; surplus ones retire
        as their calls end (a call in progress is never cut short)."""
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self.capacity = capacity
        while self._lot and self.in_use < capacity:
            self.in_use += 1
            self._lot.unpark()
