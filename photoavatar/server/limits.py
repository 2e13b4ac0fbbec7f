"""Sliding-window request limits: at most N calls per key within the last window_s seconds."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable


class RateLimiter:
    def __init__(self, max_calls: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.max_calls = max_calls
        self.window_s = window_s
        self._clock = clock
        self._calls: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        """Record a call for KEY and say whether it is within the limit (refused calls are not counted)."""
        now = self._clock()
        calls = self._calls[key]
        while calls and calls[0] <= now - self.window_s:
            calls.popleft()
        if len(calls) >= self.max_calls:
            return False
        calls.append(now)
        return True

    def retry_after_s(self, key: str) -> int:
        calls = self._calls.get(key)
        if not calls:
            return 0
        return max(1, int(calls[0] + self.window_s - self._clock()) + 1)

    def forget(self, key: str) -> None:
        self._calls.pop(key, None)
