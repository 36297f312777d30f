"""The live router's interview sessions: created on demand, one turn at a time, evicted when idle.

Each session is an :class:`~actors.session.InterviewSession` actor under its
own supervisor and cancel scope, so an idle one can be stopped alone and a
server's memory stays flat however many candidates come and go. Two turns of
one session at once would interleave its history, so a second one is refused
(:class:`SessionBusy`) instead of queued behind an answer that may take a minute.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import attrs
import trio

from actors.runtime import clock
from actors.runtime.actor import Supervisor
from actors.runtime.errors import CallboardError, Overloaded
from actors.session import InterviewSession
from engine.routing.errors import InvalidRequest
from engine.routing.router import Router
from engine.serve.state.sessions import record_of, restore
from engine.serve.state.store import SessionRecord

if TYPE_CHECKING:
    from engine.serve.state.sessions import SharedSessions

MAX_ID_CHARS = 128


class UnknownSession(CallboardError):
    code = "session_not_found"
    status = 404

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session_id: no session {session_id!r}; create it with POST /sessions")
        self.session_id = session_id


class SessionBusy(CallboardError):
    code = "session_busy"
    status = 409

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} is still answering the previous message")
        self.session_id = session_id


@attrs.define
class _Entry:
    session: InterviewSession
    scope: trio.CancelScope
    last_used: float
    busy: bool = False
    version: int = 0  # turns answered (shared sessions: the newest copy wins)


def _turns(session: InterviewSession) -> int:
    return sum(1 for m in session.history if m.role == "user")


def _record(entry: _Entry) -> SessionRecord:
    return record_of(entry.session, entry.version)


def check_session_id(session_id: object) -> str:
    ok = (
        isinstance(session_id, str)
        and 0 < len(session_id) <= MAX_ID_CHARS
        and session_id.isprintable()
        and "/" not in session_id
    )
    if not ok:
        raise InvalidRequest(
            "session_id", session_id, f"1 to {MAX_ID_CHARS} printable characters, no '/'"
        )
    return session_id  # type: ignore[return-value]


class SessionRegistry:
    def __init__(
        self,
        router: Router,
        nursery: trio.Nursery,
        *,
        idle_timeout: float = 3600.0,
        max_sessions: int = 10_000,
        shared: SharedSessions | None = None,
    ) -> None:
        self.router = router
        self.shared = shared
        self._nursery = nursery
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self._entries: dict[str, _Entry] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._entries

    async def open(self, session_id: str, system_prompt: str = "") -> InterviewSession:
        """The session ``session_id``, started now if it does not exist here or in the store."""
        check_session_id(session_id)
        entry = self._entries.get(session_id)
        if entry is not None:
            entry.last_used = clock.now()
            await self._refresh(entry)
            return entry.session
        record = await self.shared.load(session_id) if self.shared is not None else None
        session = await self._start(session_id, system_prompt)
        if record is not None:
            self._adopt(self._entries[session_id], record)
        elif self.shared is not None:  # new: the other routers can find it from now on
            await self.shared.save(_record(self._entries[session_id]))
        return session

    async def fetch(self, session_id: str) -> InterviewSession:
        """The session here, or as another router left it in the store; else UnknownSession."""
        entry = self._entries.get(session_id)
        if entry is not None:
            await self._refresh(entry)
            return entry.session
        record = await self.shared.load(session_id) if self.shared is not None else None
        if record is None:
            raise UnknownSession(session_id)
        session = await self._start(session_id, record.system_prompt)
        self._adopt(self._entries[session_id], record)
        return session

    async def _refresh(self, entry: _Entry) -> None:
        """Take the store's copy if another router answered this session since."""
        if self.shared is None or entry.busy:
            return
        record = await self.shared.load(entry.session.session_id)
        if record is not None and not entry.busy:
            self._adopt(entry, record)

    def _adopt(self, entry: _Entry, record: SessionRecord) -> None:
        if record.version > entry.version:
            restore(entry.session, record)
            entry.version = record.version

    async def _start(self, session_id: str, system_prompt: str) -> InterviewSession:
        existing = self._entries.get(session_id)
        if existing is not None:  # started by a concurrent call while the store answered
            return existing.session
        if len(self._entries) >= self.max_sessions:
            self.evict_idle(clock.now())
            if len(self._entries) >= self.max_sessions:
                raise Overloaded(
                    f"{len(self._entries)} sessions open (server.max_sessions)",
                    retry_after=self.idle_timeout,
                )
        session = InterviewSession(session_id, self.router, system_prompt)
        scope = trio.CancelScope()
        self._entries[session_id] = _Entry(session, scope, clock.now())
        await self._nursery.start(self._host, session, scope)
        return session

    async def _host(
        self, session: InterviewSession, scope: trio.CancelScope, task_status: trio.TaskStatus
    ) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                await Supervisor(nursery).start(session)
                task_status.started()

    def get(self, session_id: str) -> InterviewSession:
        entry = self._entries.get(session_id)
        if entry is None:
            raise UnknownSession(session_id)
        return entry.session

    @contextlib.asynccontextmanager
    async def turn(self, session_id: str) -> AsyncIterator[InterviewSession]:
        """Hold the session for one turn; refuses a second concurrent one (on any router)."""
        if session_id not in self._entries:
            await self.fetch(session_id)
        entry = self._entries[session_id]
        if entry.busy:
            raise SessionBusy(session_id)
        entry.busy = True
        shared = self.shared
        try:
            if shared is not None:
                if not await shared.lock(session_id):
                    raise SessionBusy(session_id)
                try:
                    record = await shared.load(session_id)
                    if record is not None:
                        self._adopt(entry, record)
                    turns = _turns(entry.session)
                    yield entry.session
                    if _turns(entry.session) != turns:  # answered (a failed turn leaves it)
                        entry.version += 1
                        with trio.CancelScope(shield=True):  # bounded by state.timeout
                            await shared.save(_record(entry))
                finally:
                    # Shielded: a client that hangs up must not leave the lock held for
                    # its whole TTL, refusing the session's next turn on other routers.
                    with trio.CancelScope(shield=True):
                        await shared.unlock(session_id)
            else:
                yield entry.session
        finally:
            entry.busy = False
            entry.last_used = clock.now()

    def close(self, session_id: str) -> None:
        entry = self._entries.pop(session_id, None)
        if entry is not None:
            entry.scope.cancel()

    def evict_idle(self, now: float) -> int:
        """Stop every session unused for ``idle_timeout`` (never one mid-turn)."""
        stale = [
            sid
            for sid, e in self._entries.items()
            if not e.busy and now - e.last_used >= self.idle_timeout
        ]
        for sid in stale:
            self.close(sid)
        self.evicted += len(stale)
        return len(stale)

    async def sweep_forever(self) -> None:
        interval = min(self.idle_timeout / 4, 60.0)
        if not math.isfinite(interval):
            return
        while True:
            await clock.sleep(interval)
            self.evict_idle(clock.now())
