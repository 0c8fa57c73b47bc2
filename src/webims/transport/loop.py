"""uvloop when it is installed, asyncio's own loop otherwise."""

from __future__ import annotations

import asyncio
import logging

__all__ = ["install_event_loop_policy"]

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
