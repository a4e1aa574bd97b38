"""Results of read-only service calls, kept while the database stands still.

Every write transaction moves the state version on (``enclave.control.db.transaction``), under
the write lock, so versions follow commit order. A result computed after reading version ``v``
reflects every write up to ``v``, so it may be served to any later reader who also sees ``v``;
the first reader to see a newer version drops everything older. Nothing is ever served from
an older state than the one the reader saw, so a suspension, a revoked token or a removed
membership takes effect on the next request exactly as without the cache.

The queue's overview and API list are read far more often than anything changes (many checkers
polling, one decision now and then): with the cache, a request costs one indexed read of the
version instead of the whole query.

What depends on the clock rather than the database (expiry dates, token lifetimes) must be in
the key or be checked by the caller on the result.

A web request (GET or HEAD) opens a scope (``begin_request``): its first cached read reads the
version and pins it, so its several cached reads cost one version read; outside a scope each
call reads the version itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

# The version pinned by the request being served in this context: [] until its first read.
_SCOPE: ContextVar[list[int] | None] = ContextVar("enclave_read_scope", default=None)


class ReadCache:
    """A thread-safe map from keys to results, all of one state version."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._version = -1
        self._entries: dict[Hashable, object] = {}

    def get(self, version: int, key: Hashable, compute: Callable[[], T]) -> T:
        """The result for ``key`` at ``version``: kept if computed at that version, else
        ``compute()`` (kept when ``version`` is the newest seen and there is room)."""
        with self._lock:
            if version > self._version:  # the database moved on: everything kept is stale
                self._entries.clear()
                self._version = version
            elif version == self._version and key in self._entries:
                return self._entries[key]  # type: ignore[return-value]
        value = compute()
        with self._lock:
            if version == self._version and len(self._entries) < self.max_entries:
                self._entries[key] = value
        return value

    def __len__(self) -> int:
        return len(self._entries)


def begin_request() -> None:
    """Start a request scope in this context: its first cached read reads the version and
    every later one in the scope uses it (one version read per request)."""
    _SCOPE.set([])


def end_request() -> None:
    _SCOPE.set(None)


def unpin() -> None:
    """Forget the scope's pinned version (after a write in it: its later reads must see it)."""
    if _SCOPE.get() is not None:
        _SCOPE.set([])


def version(read: Callable[[], int]) -> int:
    """The version this context's reads use: the one pinned in the request scope, else
    ``read()`` (pinned in the scope, if there is one)."""
    scope = _SCOPE.get()
    if scope:
        return scope[0]
    found = read()
    if scope is not None:
        scope.append(found)
    return found
