"""P-Charging-Vector values (RFC 7315 §4.6, TS 24.229 7.2A.4)."""

from __future__ import annotations

import itertools
import os
import time

__all__ = ["IcidGenerator"]


class IcidGenerator:
    """Globally unique ``icid-value``s: a random per-process prefix, the start
    time and a counter (no clock read or random draw per request)."""

    def __init__(self, node: str) -> None:
        self._prefix = f"{node}-{os.urandom(6).hex()}-{int(time.time()):x}-"
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"

    def vector(self, orig_ioi: str | None = None) -> str:
        """A P-Charging-Vector header value with a new icid."""
        value = f'icid-value="{self.next()}"'
        if orig_ioi:
            value += f";orig-ioi={orig_ioi}"
        return value
