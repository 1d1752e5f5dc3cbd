"""A small in-memory map whose entries expire: what the service keeps of checked tokens and resolved versions."""

from __future__ import annotations

import time
from collections.abc import Hashable


class ExpiringCache:
    """Values by key, each kept ``seconds`` (less when put with a shorter ``max_seconds``); ``seconds <= 0`` keeps
    nothing. Beyond ``size`` keys it starts afresh rather than grow.

    Examples:
        >>> cache = ExpiringCache(5.0)
        >>> cache.put("a", 1)
        >>> cache.get("a"), cache.get("b")
        (1, None)
    """

    def __init__(self, seconds: float, size: int = 10_000):
        self.seconds, self.size = seconds, size
        self._entries: dict[Hashable, tuple[object, float]] = {}

    def get(self, key: Hashable):
        found = self._entries.get(key)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def put(self, key: Hashable, value, max_seconds: float | None = None) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.size:
            self._entries.clear()
        life = self.seconds if max_seconds is None else min(self.seconds, max_seconds)
        self._entries[key] = (value, time.monotonic() + life)

    def clear(self) -> None:
        self._entries.clear()
