"""The header section: an ordered list of raw header fields.

Every field keeps the text it had on the wire, so a message that is parsed and
serialised again comes out byte for byte the same, unknown headers included.
Names are matched case-insensitively and through their compact forms
(RFC 3261 §7.3.3, and the registered ones of later RFCs): ``v`` is Via, ``i``
is Call-ID.  Typed values are parsed by the accessors of
:class:`webims.sip.message.Message`, on demand.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import grammar as g
from .errors import ParseError

__all__ = ["COMPACT_FORMS", "Headers", "canonical_name", "header_key"]

#: Compact form -> lower-case full name.
COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Canonical spelling for the names we write ourselves.
_CANONICAL: dict[str, str] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "p-asserted-identity": "P-Asserted-Identity",
    "p-preferred-identity": "P-Preferred-Identity",
    "p-associated-uri": "P-Associated-URI",
    "p-visited-network-id": "P-Visited-Network-ID",
    "p-charging-vector": "P-Charging-Vector",
    "p-charging-function-addresses": "P-Charging-Function-Addresses",
    "mime-version": "MIME-Version",
}

# Cache of wire names already validated: name as written -> key.
_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_MAX = 4096


def header_key(name: str) -> str:
    """The lookup key of a header name: lower-case full name.

    Raises :class:`ParseError` if ``name`` is not a token.
    """
    key = _KEY_CACHE.get(name)
    if key is not None:
        return key
    if g.TOKEN.fullmatch(name) is None:
        raise ParseError(f"invalid header name {name!r}")
    lower = name.lower()
    key = COMPACT_FORMS.get(lower, lower)
    if len(_KEY_CACHE) < _KEY_CACHE_MAX:
        _KEY_CACHE[name] = key
    return key


def canonical_name(key: str) -> str:
    """The spelling we use when we write a header (``via`` -> ``Via``)."""
    known = _CANONICAL.get(key)
    if known is not None:
        return known
    return "-".join(part.capitalize() for part in key.split("-"))


# A field: (key, name as written, value, raw line or None once rewritten).
Field = tuple[str, str, str, str | None]


class Headers:
    """Ordered header fields with case-insensitive, compact-aware lookup.

    Reads go through an index (lookup key -> values in order), built on the
    first read and kept in step by every write, so that ``get``, ``get_all``
    and ``in`` do not scan the fields.  The lists in the index are never
    changed in place (a write puts a new list there), so a copy shares them.
    """

    __slots__ = ("_fields", "_index", "changed", "version")

    def __init__(self, fields: list[Field] | None = None) -> None:
        self._fields: list[Field] = fields if fields is not None else []
        #: Key -> values, in order; None until the first read.
        self._index: dict[str, list[str]] | None = None
        #: Bumped on every change; lets messages invalidate cached views.
        self.version = 0
        #: Header key -> :attr:`version` of the last change to that header
        #: (read it through :meth:`stamp`; only the writing methods change it).
        self.changed: dict[str, int] = {}

    def stamp(self, key: str) -> int:
        """When the header with lookup key ``key`` last changed (0: never).

        A value parsed from a header stays valid while its stamp is the same,
        whatever else happens to the other headers (adding a Via leaves the
        parsed Contacts alone).
        """
        return self.changed.get(key, 0)

    def _touch(self, key: str) -> None:
        self.version += 1
        self.changed[key] = self.version

    def _lookup(self) -> dict[str, list[str]]:
        """The index (built now if this is the first read).  Its lists are
        shared: read them, never change them."""
        index = self._index
        if index is None:
            index = {}
            for key, _, value, _ in self._fields:
                if key in index:
                    index[key].append(value)
                else:
                    index[key] = [value]
            self._index = index
        return index

    def _replace_first(self, key: str, value: str | None) -> None:
        """In the index: the first field of ``key`` now has ``value``, or is
        gone (None)."""
        index = self._index
        if index is not None:
            values = index[key][1:]
            if value is not None:
                values.insert(0, value)
            if values:
                index[key] = values
            else:
                del index[key]

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> Headers:
        return cls([(header_key(n), n, v, None) for n, v in pairs])

    # -- reading ---------------------------------------------------------
    def get(self, name: str) -> str | None:
        """The value of the first field called ``name``, or None."""
        values = self._lookup().get(header_key(name))
        return None if values is None else values[0]

    def _first(self, key: str) -> str | None:
        """:meth:`get` by lookup key, without building the index for it."""
        index = self._index
        if index is not None:
            values = index.get(key)
            return None if values is None else values[0]
        for f in self._fields:
            if f[0] == key:
                return f[2]
        return None

    def get_all(self, name: str) -> list[str]:
        """The values of every field called ``name``, in order (not split)."""
        values = self._lookup().get(header_key(name))
        return [] if values is None else values.copy()

    def values(self, name: str) -> list[str]:
        """Every element of a comma-separated list header, across fields."""
        out: list[str] = []
        for value in self._lookup().get(header_key(name), ()):
            out.extend(g.split_list(value))
        return out

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return header_key(name) in self._lookup()

    def count(self, name: str) -> int:
        return len(self._lookup().get(header_key(name), ()))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for f in self._fields:
            yield f[1], f[2]

    def __len__(self) -> int:
        return len(self._fields)

    def keys(self) -> list[str]:
        return [f[0] for f in self._fields]

    # -- writing ---------------------------------------------------------
    def _field(self, name: str, value: str) -> Field:
        if "\r" in value or "\n" in value:
            raise ValueError("header values may not contain CR or LF")
        key = header_key(name)
        return (key, name if name != key else canonical_name(key), value, None)

    def add(self, name: str, value: str) -> None:
        """Append a field at the end of the header section."""
        f = self._field(name, value)
        key = f[0]
        self._fields.append(f)
        index = self._index
        if index is not None:
            old = index.get(key)
            index[key] = [value] if old is None else [*old, value]
        self._touch(key)

    def add_first(self, name: str, value: str) -> None:
        """Insert a field above the first one of the same name (or at the top)."""
        f = self._field(name, value)
        key = f[0]
        fields = self._fields
        index = self._index
        old = None if index is None else index.get(key)
        if index is not None and old is None:
            fields.insert(0, f)  # the index says there is none
        else:
            for i, existing in enumerate(fields):
                if existing[0] == key:
                    fields.insert(i, f)
                    break
            else:
                fields.insert(0, f)
        if index is not None:
            index[key] = [value] if old is None else [value, *old]
        self._touch(key)

    def set(self, name: str, value: str) -> None:
        """Replace every field called ``name`` by one, where the first one was."""
        f = self._field(name, value)
        key = f[0]
        fields = self._fields
        index = self._index
        if index is not None:
            index[key] = [value]
        positions = [i for i, existing in enumerate(fields) if existing[0] == key]
        if len(positions) < 2:
            if positions:
                fields[positions[0]] = f
            else:
                fields.append(f)
            self._touch(key)
            return
        out: list[Field] = []
        placed = False
        for existing in self._fields:
            if existing[0] == key:
                if not placed:
                    out.append(f)
                    placed = True
            else:
                out.append(existing)
        if not placed:
            out.append(f)
        self._fields = out
        self._touch(key)

    def remove(self, name: str) -> int:
        """Remove every field called ``name``; return how many were removed."""
        key = header_key(name)
        before = len(self._fields)
        self._fields = [f for f in self._fields if f[0] != key]
        removed = before - len(self._fields)
        if removed:
            if self._index is not None:
                self._index.pop(key, None)
            self._touch(key)
        return removed

    def pop_first_value(self, name: str) -> str | None:
        """Remove the first element of a list header (top Via, top Route).

        When one field carries several comma-separated elements, the field is
        rewritten with the remaining ones.  Empty fields met on the way are
        removed too.
        """
        key = header_key(name)
        fields = self._fields
        i = 0
        while i < len(fields):
            f = fields[i]
            if f[0] != key:
                i += 1
                continue
            value = f[2]
            parts = g.split_list(value) if "," in value else ([value] if value else [])
            self._touch(key)
            if not parts:
                del fields[i]
                self._replace_first(key, None)
                continue
            if len(parts) == 1:
                del fields[i]
                self._replace_first(key, None)
            else:
                rest = ", ".join(parts[1:])
                fields[i] = (key, f[1], rest, None)
                self._replace_first(key, rest)
            return parts[0]
        return None

    def replace_first_value(self, name: str, value: str) -> None:
        """Rewrite the first element of a list header (e.g. add ``received`` to Via)."""
        key = header_key(name)
        for i, f in enumerate(self._fields):
            if f[0] == key:
                parts = g.split_list(f[2])
                parts[0] = value
                joined = ", ".join(parts)
                self._fields[i] = (key, f[1], joined, None)
                self._replace_first(key, joined)
                self._touch(key)
                return
        raise KeyError(name)

    def copy(self) -> Headers:
        """A copy with the same fields and the same change stamps, so values
        parsed from the original stay valid for the copy (see :meth:`stamp`)."""
        new = Headers(list(self._fields))
        if self._index is not None:
            new._index = dict(self._index)
        new.version = self.version
        new.changed = dict(self.changed)
        return new

    # -- wire ------------------------------------------------------------
    def render(self) -> str:
        """The header lines joined by CRLF (no trailing CRLF)."""
        return "\r\n".join(
            [f"{name}: {value}" if line is None else line for _, name, value, line in self._fields]
        )

    def __repr__(self) -> str:
        return f"Headers({[(f[1], f[2]) for f in self._fields]!r})"
