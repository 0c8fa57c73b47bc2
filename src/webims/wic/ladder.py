"""The WIC's side of an exchange as a ladder: what it sent to the eP-CSCF and
what came back, in order, with the time since the first message.

:class:`WireLog` is a :data:`~webims.wic.client.MessageHook`; ``webims
register`` prints :meth:`WireLog.ladder` (and the core's ladder from
``webims.observe.trace`` when the deployment records one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..sip import Message, Request, Response

__all__ = ["WireLog", "summary"]

_ARROW = 48


def summary(message: Message) -> str:
    """The start line, short: ``REGISTER sip:home1.net (Expires 600)`` or ``200 OK``."""
    if isinstance(message, Request):
        expires = message.headers.get("Expires") if message.method == "REGISTER" else None
        tail = f" (Expires {expires})" if expires is not None else ""
        return f"{message.method} {message.uri_text}{tail}"
    assert isinstance(message, Response)
    return f"{message.status} {message.reason}"


@dataclass
class WireLog:
    """Every message the WIC sent (``out``) or received (``in``), timed."""

    entries: list[tuple[str, Message, float]] = field(default_factory=list)

    def __call__(self, direction: str, message: Message, at: float) -> None:
        self.entries.append((direction, message, at))

    def ladder(self, left: str = "WIC", right: str = "eP-CSCF") -> list[str]:
        """One line per message, the WIC on the left: ``─ REGISTER sip:home1.net ──>``."""
        if not self.entries:
            return []
        start = self.entries[0][2]
        lines = [f"{'':13}{left:>7} {'':{_ARROW}} {right}"]
        for n, (direction, message, at) in enumerate(self.entries, start=1):
            text = summary(message)
            if len(text) > _ARROW - 8:
                text = text[: _ARROW - 9] + "…"
            label = f" {text} "
            fill = max(_ARROW - len(label) - 3, 2)
            if direction == "out":
                arrow = f"─{label}{'─' * fill}─>"
            else:
                arrow = f"<─{'─' * fill}{label}─"
            ms = (at - start) * 1000
            lines.append(f"{n:>2} {ms:>7.1f}ms {'':8}{arrow:<{_ARROW}}|")
        return lines
