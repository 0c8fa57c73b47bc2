"""Ordered, case-insensitive parameter lists (``;name=value`` and the like)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from .errors import ParseError
from .grammar import TOKEN, TOKEN_CHARS, iter_params, quote

__all__ = ["Params"]

# One ``;``-separated parameter with no whitespace: a token name, then nothing,
# a plain value, or a quoted-string without quoted-pairs (``+sip.instance="<urn:...>"``).
_QUOTED_PARAM = re.compile(rf'([{TOKEN_CHARS}]+)(?:=(?:"([^"\\\r\n]*)"|([^;"\s]+)))?(?:;(?=.)|\Z)')


# ``;``-separated parameters that the plain split below takes without an
# error: token names, values of anything but ``;`` (no quotes, no whitespace:
# checked before).
_PLAIN_PARAMS = re.compile(rf"[{TOKEN_CHARS}]+(?:=[^;]+)?(?:;[{TOKEN_CHARS}]+(?:=[^;]+)?)*")


class Params:
    """Parameters in wire order; names compare case-insensitively.

    A value of ``None`` is a flag parameter (``;lr``).  Whether a value was
    quoted on the wire is kept, so that re-serialising keeps its meaning
    (``+sip.instance="<urn:uuid:...>"`` must stay quoted).
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str | None, bool]] | None = None) -> None:
        self._items: list[tuple[str, str | None, bool]] = items if items is not None else []

    @classmethod
    def parse(cls, text: str, sep: str = ";") -> Params:
        """Parse the text after the first separator (``a=1;b;c="x"``)."""
        if not text:
            return cls()
        if '"' in text or " " in text or "\t" in text:
            if sep == ";" and " " not in text and "\t" not in text and "\\" not in text:
                quoted = _quoted_items(text)
                if quoted is not None:
                    return cls(quoted)
            return cls(list(iter_params(text, sep)))
        # Fast path: no quoting and no whitespace, so a plain split is exact.
        if sep == ";" and _PLAIN_PARAMS.fullmatch(text) is not None:
            return cls(_split_plain(text))
        items: list[tuple[str, str | None, bool]] = []
        for piece in text.split(sep):
            name, eq, value = piece.partition("=")
            if TOKEN.fullmatch(name) is None:
                raise ParseError(f"invalid parameter name {name!r}")
            if eq and not value:
                raise ParseError(f"empty value for parameter {name!r}")
            items.append((name, value if eq else None, False))
        return cls(items)

    @classmethod
    def from_matched(cls, text: str) -> Params:
        """Parameters a grammar regex has already matched (``;a=1;b``):
        no quoting, no whitespace, names and values known to be valid."""
        return cls(_split_plain(text[1:]) if text else [])

    def _find(self, name: str) -> int:
        items = self._items
        for i, item in enumerate(items):
            if item[0] == name:
                return i
        lname = name.lower()
        for i, item in enumerate(items):
            if item[0].lower() == lname:
                return i
        return -1

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) >= 0

    def get(self, name: str, default: str | None = None) -> str | None:
        i = self._find(name)
        return self._items[i][1] if i >= 0 else default

    def set(self, name: str, value: str | None = None, *, quoted: bool = False) -> None:
        i = self._find(name)
        if i >= 0:
            self._items[i] = (self._items[i][0], value, quoted)
        else:
            self._items.append((name, value, quoted))

    def remove(self, name: str) -> None:
        i = self._find(name)
        if i >= 0:
            del self._items[i]

    def items(self) -> Iterator[tuple[str, str | None]]:
        for name, value, _ in self._items:
            yield name, value

    def copy(self) -> Params:
        return Params(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Params):
            return NotImplemented
        mine = {(n.lower(), v) for n, v, _ in self._items}
        theirs = {(n.lower(), v) for n, v, _ in other._items}
        return mine == theirs

    __hash__ = None  # type: ignore[assignment]

    def render(self, sep: str = ";", lead: bool = True) -> str:
        parts = []
        for name, value, quoted in self._items:
            if value is None:
                parts.append(name)
            elif quoted:
                parts.append(f"{name}={quote(value)}")
            else:
                parts.append(f"{name}={value}")
        if not parts:
            return ""
        body = sep.join(parts)
        return sep + body if lead else body

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"Params({self.render(lead=False)!r})"


def _split_plain(text: str) -> list[tuple[str, str | None, bool]]:
    """``a=1;b`` as items, when it is known to be valid (see from_matched)."""
    items: list[tuple[str, str | None, bool]] = []
    for piece in text.split(";"):
        name, eq, value = piece.partition("=")
        items.append((name, value if eq else None, False))
    return items


def _quoted_items(text: str) -> list[tuple[str, str | None, bool]] | None:
    """What :func:`iter_params` yields for ``;``-separated parameters without
    whitespace or quoted-pairs, one regex match each; None when a parameter
    has another shape (the full scanner then decides, errors included)."""
    items: list[tuple[str, str | None, bool]] = []
    i = 0
    n = len(text)
    match = _QUOTED_PARAM.match
    while i < n:
        m = match(text, i)
        if m is None:
            return None
        name, quoted, plain = m.groups()
        items.append((name, quoted, True) if quoted is not None else (name, plain, False))
        i = m.end()
    return items
