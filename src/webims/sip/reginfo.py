"""Reading a reg event NOTIFY body (RFC 3680 §5.3, application/reginfo+xml).

What the subscribers act on (the eP-CSCF, TS 24.229 5.2.3; a UE or WIC, 5.1.1.3): the
document's ``version`` and ``state``, for each ``<registration>`` its ``aor`` and
``state``, and for each of its ``<contact>`` elements the ``state``, the ``event`` and
the ``<uri>``.  Unknown elements and attributes are ignored (RFC 3680 §5.4 allows
extensions).  The body is bounded in size before it is parsed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .grammar import is_digits

__all__ = [
    "MAX_REGINFO",
    "REGINFO",
    "REGINFO_NS",
    "Reginfo",
    "ReginfoContact",
    "ReginfoError",
    "ReginfoRegistration",
    "parse_reginfo",
]

#: The body type of the reg event package (RFC 3680 §5.1).
REGINFO = "application/reginfo+xml"
#: Its XML namespace (RFC 3680 §5.4).
REGINFO_NS = "urn:ietf:params:xml:ns:reginfo"
NS = "{" + REGINFO_NS + "}"
#: Largest reginfo document read (octets); an IRS of a few IMPUs is far smaller.
MAX_REGINFO = 64 * 1024


class ReginfoError(ValueError):
    """Not a reginfo document."""


@dataclass(frozen=True, slots=True)
class ReginfoContact:
    uri: str
    state: str
    event: str | None


@dataclass(frozen=True, slots=True)
class ReginfoRegistration:
    aor: str
    state: str
    contacts: tuple[ReginfoContact, ...]

    @property
    def terminated(self) -> bool:
        """The registration, or every one of its contacts, is terminated."""
        return self.state == "terminated" or (
            bool(self.contacts) and all(c.state == "terminated" for c in self.contacts)
        )


@dataclass(frozen=True, slots=True)
class Reginfo:
    """A reginfo document: its version (None when absent or not a number), its
    state (``full`` or ``partial``) and the registrations it reports."""

    version: int | None
    state: str | None
    registrations: tuple[ReginfoRegistration, ...]


def parse_reginfo(body: bytes) -> Reginfo:
    """The reginfo document ``body`` is; ReginfoError if it is none."""
    if len(body) > MAX_REGINFO:
        raise ReginfoError("reginfo document too large")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ReginfoError(f"malformed reginfo: {exc}") from None
    if root.tag != NS + "reginfo":
        raise ReginfoError(f"not a reginfo document: {root.tag}")
    out = []
    for reg in root.iter(NS + "registration"):
        contacts = tuple(
            ReginfoContact(
                uri=(c.findtext(NS + "uri") or "").strip(),
                state=c.get("state", ""),
                event=c.get("event"),
            )
            for c in reg.iter(NS + "contact")
        )
        out.append(ReginfoRegistration(reg.get("aor", ""), reg.get("state", ""), contacts))
    raw = root.get("version")
    version = int(raw) if raw is not None and is_digits(raw) else None
    return Reginfo(version, root.get("state"), tuple(out))
