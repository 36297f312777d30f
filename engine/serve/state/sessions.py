"""Interview sessions in the shared store, so a conversation can move between routers.

After every answered turn the session's history is written to the store (with
the idle timeout as its TTL) before the answer goes back, so the candidate's
next message may reach any router. Before a turn, a router holding an older
copy takes the store's newer one, and holds the session's lock for the turn, so
two routers never answer the same session at once. When the store is down a
session lives on in its router alone; its latest history is written back once
the store returns.
"""

from __future__ import annotations

import contextlib
import logging

from actors.messages import ChatMessage
from actors.session import InterviewSession
from engine.serve.state.guard import GuardedStore
from engine.serve.state.store import SessionRecord, StoreUnavailable

logger = logging.getLogger("callboard.state")


def record_of(session: InterviewSession, version: int) -> SessionRecord:
    return SessionRecord(
        session.session_id,
        session.system_prompt,
        tuple((m.role, m.content) for m in session.history),
        tuple(session.providers_used),
        version,
    )


def restore(session: InterviewSession, record: SessionRecord) -> None:
    """Give ``session`` the stored conversation (a started actor: on_start already ran)."""
    session.system_prompt = record.system_prompt
    session.history = [ChatMessage(role, content) for role, content in record.history]
    session.providers_used = list(record.providers_used)
    session.provider = record.providers_used[-1] if record.providers_used else None


class SharedSessions:
    """The registry's link to the store; every failure leaves the session local."""

    def __init__(self, guard: GuardedStore, instance: str, *, ttl: float, lock_ttl: float) -> None:
        self.guard = guard
        self.instance = instance
        self.ttl = ttl
        self.lock_ttl = lock_ttl
        #: Sessions answered while the store was down: written back when it returns.
        self.unsaved: dict[str, SessionRecord] = {}

    async def load(self, session_id: str) -> SessionRecord | None:
        try:
            return await self.guard.call("load_session", self.guard.store.load_session, session_id)
        except StoreUnavailable:
            return None

    async def save(self, record: SessionRecord) -> None:
        try:
            await self.guard.call("save_session", self.guard.store.save_session, record, self.ttl)
        except StoreUnavailable:
            self.unsaved[record.session_id] = record
        else:
            self.unsaved.pop(record.session_id, None)

    async def lock(self, session_id: str) -> bool:
        """False only if another router is answering this session now."""
        store = self.guard.store
        try:
            return await self.guard.call(
                "lock_session", store.lock_session, session_id, self.instance, self.lock_ttl
            )
        except StoreUnavailable:
            return True

    async def unlock(self, session_id: str) -> None:
        store = self.guard.store
        # On failure the lock expires by itself after lock_ttl.
        with contextlib.suppress(StoreUnavailable):
            await self.guard.call("unlock_session", store.unlock_session, session_id, self.instance)

    async def write_back(self) -> None:
        """After an outage: store what was answered meanwhile, unless a newer copy is there."""
        for session_id, record in list(self.unsaved.items()):
            stored = await self.load(session_id)
            if stored is not None and stored.version >= record.version:
                self.unsaved.pop(session_id, None)
                continue
            await self.save(record)
        if self.unsaved:
            logger.warning("state sessions_unsaved=%d", len(self.unsaved))
