"""Limits on failed logins, per web user and per client address (and on
guest identities taken, per address: the same sliding window).

A sliding window: at most ``failures`` failed attempts within ``window``
seconds for one key; past that, every attempt on that key is refused (429,
``Retry-After``: when the oldest failure of the window leaves it) before the
password is even looked at, right or wrong.  Keys are ``user:<name>``
(lower-cased, so case variants share one budget, and counted for unknown
names too, which therefore look like known ones) and ``addr:<address>``.
A successful login clears its user's failures, not its address's.

The per-user limit lets someone who knows a user name lock that user out
for a window; a short window keeps that cheap, and is the usual price of
stopping password guessing from many addresses.  The table is in memory,
bounded (keys with no failure in their window are swept when it grows).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable

__all__ = ["LoginLimiter"]


class LoginLimiter:
    def __init__(
        self,
        failures: int,
        window: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}

    @staticmethod
    def keys(user: str, address: str) -> tuple[str, str]:
        return (f"user:{user.lower()}", f"addr:{address}")

    def retry_after(self, keys: Iterable[str]) -> int | None:
        """Seconds to wait before another attempt on any of ``keys``, or None."""
        now = self.clock()
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= self.failures:
                wait = max(wait, times[0] + self.window - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record(self, keys: Iterable[str]) -> None:
        """Count one event (a failed login, a guest identity lent) on ``keys``."""
        now = self.clock()
        if len(self._seen) >= self.max_keys:
            self._sweep(now)
        for key in keys:
            times = self._seen.setdefault(key, deque())
            times.append(now)
            while len(times) > self.failures:
                times.popleft()

    def clear(self, key: str) -> None:
        self._seen.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._seen.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._seen[key]
            return None
        return times

    def _sweep(self, now: float) -> None:
        for key in list(self._seen):
            self._recent(key, now)
        while len(self._seen) >= self.max_keys:  # all recent: drop the oldest keys
            del self._seen[next(iter(self._seen))]
