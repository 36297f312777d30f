"""State that several routers share: the store interface, in memory or in Redis.

The Redis store (:mod:`engine.serve.state.redis_store`, through coredis) is imported
only by a router configured with ``[state] redis``.
"""

from engine.serve.state.config import StateConfig
from engine.serve.state.store import MemoryStore, StateStore, StoreUnavailable

__all__ = ["MemoryStore", "StateConfig", "StateStore", "StoreUnavailable"]
