"""Deadlines for thousands of transactions, cheaply.

Transaction timers come in a handful of durations (T1 doubling up to T2,
64*T1, T4 ...), and a timer of a given duration armed later also expires
later.  So one FIFO per duration is already in deadline order: arming is an
append, expiring a pop from the left, and the earliest deadline is the
smallest of a few FIFO heads.  A heap of every timer, by contrast, costs a
logarithm of the whole population on every push and pop; at thousands of
transactions a second that was a tenth of a proxy's time.

A deadline that would break a FIFO's order (time given out of order, as a
test may) goes to a small heap instead.  Cancelled timers are not removed:
the owner marks them dead and they are dropped when they reach the front.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from itertools import count
from typing import Generic, TypeVar

__all__ = ["TimerQueues"]

T = TypeVar("T")

#: More distinct durations than this go to the heap.
_MAX_FIFOS = 64


class TimerQueues(Generic[T]):
    """Items with deadlines; see the module notes."""

    __slots__ = ("_fifos", "_heap", "_seq")

    def __init__(self) -> None:
        self._fifos: dict[float, deque[tuple[float, int, T]]] = {}
        self._heap: list[tuple[float, int, T]] = []
        self._seq = count()

    def push(self, delay: float, now: float, item: T) -> None:
        """Arm ``item`` to expire ``delay`` seconds after ``now``."""
        entry = (now + delay, next(self._seq), item)
        fifo = self._fifos.get(delay)
        if fifo is None:
            if len(self._fifos) >= _MAX_FIFOS:
                heappush(self._heap, entry)
                return
            fifo = self._fifos[delay] = deque()
        if fifo and fifo[-1][0] > entry[0]:
            heappush(self._heap, entry)
        else:
            fifo.append(entry)

    def _front(self, alive: Callable[[T], bool]) -> deque[tuple[float, int, T]] | None:
        """The FIFO whose live head is earliest (None: the heap's head is);
        :class:`LookupError` when nothing live is left."""
        best: deque[tuple[float, int, T]] | None = None
        best_when = 0.0
        best_seq = 0
        for fifo in self._fifos.values():
            while fifo and not alive(fifo[0][2]):
                fifo.popleft()
            if fifo:
                when, seq, _ = fifo[0]
                if best is None or when < best_when or (when == best_when and seq < best_seq):
                    best, best_when, best_seq = fifo, when, seq
        heap = self._heap
        while heap and not alive(heap[0][2]):
            heappop(heap)
        if heap:
            when, seq, _ = heap[0]
            if best is None or when < best_when or (when == best_when and seq < best_seq):
                return None
        elif best is None:
            raise LookupError
        return best

    def first(self, alive: Callable[[T], bool]) -> float | None:
        """The earliest deadline of a live item, or None."""
        try:
            fifo = self._front(alive)
        except LookupError:
            return None
        return fifo[0][0] if fifo is not None else self._heap[0][0]

    def pop_due(self, now: float, alive: Callable[[T], bool]) -> T | None:
        """Remove and return the earliest live item due at ``now``, or None."""
        try:
            fifo = self._front(alive)
        except LookupError:
            return None
        if fifo is None:
            if self._heap[0][0] > now:
                return None
            return heappop(self._heap)[2]
        if fifo[0][0] > now:
            return None
        return fifo.popleft()[2]

    def __len__(self) -> int:
        """Entries held, dead ones not yet dropped included."""
        return len(self._heap) + sum(len(f) for f in self._fifos.values())
