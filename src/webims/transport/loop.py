"""uvloop when it is installed, asyncio's own loop otherwise."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import platform

__all__ = ["MMAP_THRESHOLD", "ServerGc", "install_event_loop_policy", "pin_mmap_threshold"]

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


#: glibc's ``mallopt`` parameter number (malloc.h), and its default value of it.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Have glibc serve every block of ``threshold`` bytes or more with its own
    ``mmap()``, for the life of the process (``mallopt(M_MMAP_THRESHOLD)``).

    uvloop gives each TLS connection a 256 KiB receive buffer of which a read
    touches a page or two.  glibc maps such blocks apart until the first is
    freed; then its dynamic threshold rises above 256 KiB (mallopt(3)) and every
    later buffer is cut from the top of the heap, over pages that short-lived
    allocations touched before, which stay resident inside it: measured with
    ``bench/bench_ws_idle.py`` (eP-CSCF, idle registered WICs over WSS),
    42.1 KiB per connection with the dynamic threshold, 31.2 KiB pinned.
    Setting the threshold turns the dynamic adjustment off.  A mapped block
    costs a map and an unmap: once per connection, as long as nothing else
    allocates that much per message (TLS reads are one record at a time,
    :class:`~webims.transport.tls.BoundedReadSSLObject`).

    Returns False where the C library is not glibc (nothing is changed).
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


class ServerGc:
    """Garbage collection for a message-heavy server.

    A proxy allocates a few hundred small objects per transaction and keeps
    some of them for the transaction's life (32 s on UDP).  The cyclic
    collector would walk every one of them at least once, and a full
    collection of a large heap stalls the loop long enough to overflow socket
    buffers: measured at 3,000 transactions/s, young-generation collections
    alone took 15% of the proxy's time.  The SIP core frees its objects by
    reference counting (the proxy breaks its one cycle when a transaction
    ends; a test checks that a proxied transaction leaves no cyclic garbage),
    so this schedule turns automatic collection off and, every
    ``freeze_every`` seconds, moves what survived into the permanent
    generation (:func:`gc.freeze`, which costs nothing).  Every
    ``full_every`` seconds (``None``: never) everything is unfrozen and
    collected once, to reclaim any stray cycle; that pause grows with the
    number of live objects.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        freeze_every: float = 2.0,
        full_every: float | None = 3600.0,
    ) -> None:
        self._loop = loop
        self.freeze_every = freeze_every
        self.full_every = full_every
        self._handle: asyncio.TimerHandle | None = None
        self._next_full = 0.0

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        gc.disable()
        if self.full_every is not None:
            self._next_full = self._loop.time() + self.full_every
        self._handle = self._loop.call_later(self.freeze_every, self._tick)

    def _tick(self) -> None:
        if self.full_every is not None and self._loop.time() >= self._next_full:
            gc.unfreeze()
            gc.collect()
            self._next_full = self._loop.time() + self.full_every
        gc.freeze()
        self._handle = self._loop.call_later(self.freeze_every, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        gc.unfreeze()
        gc.enable()
