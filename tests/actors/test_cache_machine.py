"""Stateful tests for :class:`actors.cache.CacheCore` against a reference LRU + TTL model.

A cache that serves an expired answer, evicts the wrong entry or miscounts hits
corrupts both live answers and the simulator's cost figures. The model is a plain
list kept in recency order (least recent first), with expiry checked on every
read, written without looking at the implementation's OrderedDict bookkeeping.
Also checks that :func:`actors.cache.request_key` normalises what it should.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actors.cache import CacheCore, request_key
from actors.messages import ChatMessage, ChatRequest

KEYS = st.sampled_from("abcdefg")


class ModelCache:
    """Entries as [key, expires_at, value], least recently used first."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self.entries: list[list[Any]] = []
        self.hits = self.misses = self.evictions = self.expirations = 0

    def find(self, key: str) -> int | None:
        return next((i for i, e in enumerate(self.entries) if e[0] == key), None)

    def get(self, now: float, key: str) -> Any | None:
        i = self.find(key)
        if i is None or now >= self.entries[i][1]:
            if i is not None:
                self.entries.pop(i)
                self.expirations += 1
            self.misses += 1
            return None
        entry = self.entries.pop(i)
        self.entries.append(entry)
        self.hits += 1
        return entry[2]

    def put(self, now: float, key: str, value: Any, ttl: float | None) -> None:
        i = self.find(key)
        if i is not None:
            self.entries.pop(i)
        self.entries.append([key, now + (self.ttl if ttl is None else ttl), value])
        while len(self.entries) > self.max_entries:
            self.entries.pop(0)
            self.evictions += 1

    def sweep(self, now: float) -> int:
        keep = [e for e in self.entries if now < e[1]]
        dropped = len(self.entries) - len(keep)
        self.entries = keep
        self.expirations += dropped
        return dropped


class CacheMachine(RuleBasedStateMachine):
    now = 0.0
    counter = 0

    @initialize(ttl=st.integers(1, 20), max_entries=st.integers(1, 5))
    def setup(self, ttl: int, max_entries: int) -> None:
        self.cache = CacheCore(float(ttl), max_entries)
        self.model = ModelCache(float(ttl), max_entries)

    @rule(dt=st.integers(0, 8) | st.floats(0, 2, allow_nan=False))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(key=KEYS, ttl=st.none() | st.integers(0, 20))
    def put(self, key: str, ttl: int | None) -> None:
        self.counter += 1
        value = f"v{self.counter}"
        self.model.put(self.now, key, value, ttl)
        self.cache.put(self.now, key, value, None if ttl is None else float(ttl))

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        expected = self.model.get(self.now, key)
        assert self.cache.get(self.now, key) == expected

    @rule()
    def sweep(self) -> None:
        assert self.cache.sweep(self.now) == self.model.sweep(self.now)

    @invariant()
    def same_size_and_counters(self) -> None:
        m = self.model
        assert len(self.cache) == len(m.entries)
        assert len(self.cache) <= m.max_entries
        got = (self.cache.hits, self.cache.misses, self.cache.evictions, self.cache.expirations)
        assert got == (m.hits, m.misses, m.evictions, m.expirations)


TestCacheMachine = CacheMachine.TestCase
TestCacheMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def _request(
    *messages: tuple[str, str], model: str = "m", temperature: float = 0.0, key: str | None = None
) -> ChatRequest:
    return ChatRequest(
        [ChatMessage(r, c) for r, c in messages],
        model=model,
        temperature=temperature,
        cache_key=key,
    )


SPACE = st.text(alphabet=" \t\n\r", min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.text(alphabet="abcxyz.?", min_size=1, max_size=5), min_size=1, max_size=5),
    gaps=st.lists(SPACE, min_size=6, max_size=6),
    edges=st.tuples(st.text(" \n", max_size=2), st.text(" \n", max_size=2)),
)
def test_request_key_ignores_whitespace_only(
    words: list[str], gaps: list[str], edges: tuple[str, str]
) -> None:
    plain = " ".join(words)
    spaced = edges[0] + "".join(w + g for w, g in zip(words, gaps, strict=False)) + edges[1]
    base = request_key(_request(("user", plain)))
    assert request_key(_request(("user", spaced))) == base
    assert request_key(_request(("system", plain))) != base
    assert request_key(_request(("user", plain), model="other")) != base
    assert request_key(_request(("user", plain), temperature=0.7)) != base
    assert request_key(_request(("user", plain + "!"))) != base
    assert request_key(_request(("user", plain), ("user", plain))) != base


#: Every kind of whitespace str.split() knows, ASCII and not, beside a few letters.
ANY_TEXT = st.text(
    alphabet=" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2000\u3000ab\xe9", max_size=12
)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(ANY_TEXT, min_size=1, max_size=3))
def test_request_key_is_the_hash_of_the_whitespace_collapsed_text(texts: list[str]) -> None:
    """The key is pinned: a blake2b of the settings and of each message with its runs of
    whitespace collapsed as ``" ".join(text.split())`` does (a fast path must agree)."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    digest.update(b"m\x1f0.0\x1fNone")
    for text in texts:
        digest.update(f"\x1euser\x1f{' '.join(text.split())}".encode())
    assert request_key(_request(*(("user", t) for t in texts))) == digest.hexdigest()


def test_explicit_cache_key_wins() -> None:
    a = _request(("user", "one"), key="fixed")
    b = _request(("system", "two"), model="other", temperature=0.9, key="fixed")
    assert request_key(a) == request_key(b) == "fixed"
    assert request_key(_request(("user", "one"))) != "fixed"


def test_equal_requests_share_a_key() -> None:
    as_int, as_float = _request(("user", "hi"), temperature=0), _request(("user", "hi"))
    assert as_int == as_float
    assert request_key(as_int) == request_key(as_float)


@given(head=st.text(alphabet="[]:0123456789 ab", max_size=10), padding=st.integers(0, 5000))
def test_a_padded_message_is_the_text_it_stands_for(head: str, padding: int) -> None:
    """A modelled message holds its head and counts its filler: its size is the whole
    text's, its key tells it apart from any other head or length."""
    padded = ChatMessage("user", head, padding)
    whole = ChatMessage("user", padded.text)
    assert len(padded.text) == len(head) + padding
    assert ChatRequest(messages=(padded,)).prompt_chars == len(head) + padding
    assert ChatRequest(messages=(whole,)).prompt_chars == len(head) + padding
    key = request_key(ChatRequest(messages=(padded,)))
    assert request_key(ChatRequest(messages=(ChatMessage("user", head, padding),))) == key
    assert request_key(ChatRequest(messages=(ChatMessage("user", head, padding + 1),))) != key
    assert request_key(ChatRequest(messages=(ChatMessage("user", head + "x", padding),))) != key
