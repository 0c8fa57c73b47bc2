"""uvloop when it is installed, asyncio's own loop otherwise."""

from __future__ import annotations

import asyncio
import gc
import logging

__all__ = ["ServerGc", "install_event_loop_policy"]

log = logging.getLogger(__name__)


def install_event_loop_policy() -> bool:
    """Make new event loops uvloop loops; returns False if uvloop is unavailable."""
    try:
        import uvloop  # noqa: PLC0415 - optional dependency
    except ImportError:
        log.debug("uvloop not installed; using the asyncio event loop")
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


class ServerGc:
    """Garbage collection on a schedule instead of on allocation counts.

    A proxy allocates a few hundred small objects per transaction and keeps
    them for the transaction's life (32 s on UDP).  With the default
    thresholds the collector walks those live objects over and over, and a
    full collection of a large heap stalls the loop for long enough to
    overflow socket buffers.  The SIP core frees its objects by reference
    counting (the proxy breaks its one cycle when a transaction ends), so the
    collector only has stray cycles to find: objects alive at start-up are
    frozen out of its sight, automatic collection is off, the young
    generations are collected every ``young_every`` seconds and everything
    every ``full_every`` seconds.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        young_every: float = 2.0,
        full_every: float = 600.0,
    ) -> None:
        self._loop = loop
        self.young_every = young_every
        self.full_every = full_every
        self._handle: asyncio.TimerHandle | None = None
        self._next_full = 0.0

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        gc.disable()
        self._next_full = self._loop.time() + self.full_every
        self._handle = self._loop.call_later(self.young_every, self._tick)

    def _tick(self) -> None:
        now = self._loop.time()
        if now >= self._next_full:
            gc.collect()
            self._next_full = now + self.full_every
        else:
            gc.collect(1)
        self._handle = self._loop.call_later(self.young_every, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        gc.unfreeze()
        gc.enable()
