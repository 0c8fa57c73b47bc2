"""The Cx User-Data document (TS 29.228 §7.7 and Annex E): ``IMSSubscription``.

The HSS sends it in the SAA (and a PPR) for the implicit registration set of
the identity being registered.  Its shape, as the Annex E schema has it (only
the parts webims fills in)::

    IMSSubscription
     ├── PrivateID                       the IMPI
     └── ServiceProfile (1..n)           one per profile the set uses
          ├── PublicIdentity (1..n)
          │    ├── BarringIndication     present (1) only when barred
          │    ├── Identity              the IMPU, PSI or wildcard
          │    └── Extension
          │         ├── IdentityType     0 IMPU, 1 distinct PSI, 2 wildcarded PSI,
          │         │                    3 non-distinct IMPU, 4 wildcarded IMPU
          │         ├── WildcardedPSI    for a wildcarded PSI
          │         └── Extension
          │              ├── DisplayName
          │              └── Extension
          │                   └── WildcardedIMPU   for a wildcarded IMPU
          └── InitialFilterCriteria (0..n)   the profile's iFC fragment

The fields added in later releases sit in nested ``Extension`` elements so
that an older S-CSCF can stop reading at the depth it knows.

The document is built as an element tree, never by pasting text together:
every value is escaped by the serializer, and a value XML 1.0 cannot carry at
all (NUL, most C0 controls, lone surrogates, and CR, which a parser turns into
LF) is refused with :class:`UserDataError` rather than sent damaged.

:func:`parse_user_data` is the matching reader.  It refuses any document
type declaration, so no entity can be declared, expanded or fetched; only
the five predefined entities and character references are understood.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pyexpat import ExpatError, ParserCreate
from typing import Any, NoReturn

from .model import IdentityType, PublicIdentity, Subscriber

__all__ = [
    "MAX_USER_DATA",
    "ParsedIdentity",
    "ParsedProfile",
    "UserData",
    "UserDataError",
    "check_ifc_xml",
    "check_xml_text",
    "parse_user_data",
    "user_data_xml",
]

#: The largest document :func:`parse_user_data` reads (bytes).
MAX_USER_DATA = 1 << 20

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

#: IdentityType values of the Annex E schema (tIdentityType).
XML_PUBLIC_USER_IDENTITY = 0
XML_DISTINCT_PSI = 1
XML_WILDCARDED_PSI = 2
XML_NON_DISTINCT_IMPU = 3
XML_WILDCARDED_IMPU = 4

# The model's enumeration and the schema's numbers are kept apart on purpose:
# the wire value is fixed by TS 29.228, whatever the model numbers its members.
_XML_IDENTITY_TYPE = {
    IdentityType.PUBLIC_USER_IDENTITY: XML_PUBLIC_USER_IDENTITY,
    IdentityType.DISTINCT_PSI: XML_DISTINCT_PSI,
    IdentityType.WILDCARDED_PSI: XML_WILDCARDED_PSI,
    IdentityType.WILDCARDED_IMPU: XML_WILDCARDED_IMPU,
}

# Characters XML 1.0 cannot carry, plus CR (a parser reads it back as LF).
_NOT_XML_TEXT = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class UserDataError(ValueError):
    """User-Data that cannot be written or read: a value XML cannot carry, a
    bad iFC fragment, or a document that is not an IMSSubscription."""


# -- writing ------------------------------------------------------------------


def user_data_xml(subscriber: Subscriber, impu: str, *, impi: str | None = None) -> bytes:
    """The ``IMSSubscription`` document for the implicit registration set of
    ``impu`` (which may fall under a wildcarded identity), UTF-8 encoded.

    ``<PrivateID>`` is ``impi`` when given (it must belong to the subscriber),
    otherwise the first IMPI linked to an identity of the set.
    """
    irs = subscriber.implicit_set(impu)
    if not irs:
        raise UserDataError(f"{impu!r} is not an identity of subscriber {subscriber.name!r}")
    root = ET.Element("IMSSubscription")
    _text(root, "PrivateID", _private_id(subscriber, irs, impi))
    profiles: dict[str, list[PublicIdentity]] = {}
    for pub in irs:
        profiles.setdefault(pub.service_profile, []).append(pub)
    for profile_name, publics in profiles.items():
        profile = ET.SubElement(root, "ServiceProfile")
        for pub in publics:
            _public_identity(profile, pub)
        try:
            ifc_xml = subscriber.profile(profile_name).ifc_xml
        except KeyError:
            raise UserDataError(
                f"subscriber {subscriber.name!r} has no service profile {profile_name!r}"
            ) from None
        profile.extend(_ifc_elements(ifc_xml))
    return _DECLARATION + ET.tostring(root, encoding="unicode").encode()


def _private_id(subscriber: Subscriber, irs: tuple[PublicIdentity, ...], impi: str | None) -> str:
    if impi is not None:
        if subscriber.private(impi) is None:
            raise UserDataError(f"{impi!r} is not a private identity of {subscriber.name!r}")
        return impi
    members = {pub.impu for pub in irs}
    for priv in subscriber.privates:
        if members.intersection(priv.impus):
            return priv.impi
    if not subscriber.privates:
        raise UserDataError(f"subscriber {subscriber.name!r} has no private identity")
    return subscriber.privates[0].impi


def _public_identity(profile: ET.Element, pub: PublicIdentity) -> None:
    elem = ET.SubElement(profile, "PublicIdentity")
    if pub.barred:
        _text(elem, "BarringIndication", "1")
    _text(elem, "Identity", pub.impu)
    ext = ET.SubElement(elem, "Extension")
    _text(ext, "IdentityType", str(_XML_IDENTITY_TYPE[pub.identity_type]))
    if pub.identity_type == IdentityType.WILDCARDED_PSI:
        _text(ext, "WildcardedPSI", pub.impu)
    wildcard_impu = pub.identity_type == IdentityType.WILDCARDED_IMPU
    if pub.display_name is not None or wildcard_impu:
        ext2 = ET.SubElement(ext, "Extension")
        if pub.display_name is not None:
            _text(ext2, "DisplayName", pub.display_name)
        if wildcard_impu:
            _text(ET.SubElement(ext2, "Extension"), "WildcardedIMPU", pub.impu)


def _text(parent: ET.Element, tag: str, value: str) -> None:
    check_xml_text(value, f"<{tag}>")
    ET.SubElement(parent, tag).text = value


def check_xml_text(value: str, what: str) -> None:
    """Raise :class:`UserDataError` if ``value`` holds a character the
    User-Data document could not carry unchanged."""
    bad = _NOT_XML_TEXT.search(value)
    if bad is not None:
        raise UserDataError(f"{what} {value!r} holds {bad.group()!r}, which XML cannot carry")


def _ifc_elements(ifc_xml: str) -> list[ET.Element]:
    """The ``<InitialFilterCriteria>`` elements of a profile's fragment."""
    if not ifc_xml.strip():
        return []
    if _NOT_XML_TEXT.search(ifc_xml.replace("\r", "")):
        raise UserDataError("the iFC fragment holds characters XML cannot carry")
    wrapper = _parse(("<iFC>" + ifc_xml + "</iFC>").encode(), "iFC fragment")
    children = list(wrapper)
    for child in children:
        if child.tag != "InitialFilterCriteria":
            raise UserDataError(
                f"the iFC fragment holds <{child.tag}>; only <InitialFilterCriteria> may appear"
            )
    if (wrapper.text or "").strip() or any((c.tail or "").strip() for c in children):
        raise UserDataError("the iFC fragment holds text outside its elements")
    return children


def check_ifc_xml(ifc_xml: str) -> None:
    """Raise :class:`UserDataError` unless ``ifc_xml`` is zero or more
    well-formed ``<InitialFilterCriteria>`` elements (checked at provisioning
    so that a bad fragment never reaches a Cx answer)."""
    _ifc_elements(ifc_xml)


# -- reading ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedIdentity:
    """One ``<PublicIdentity>`` as read back."""

    identity: str
    barred: bool
    identity_type: int  # the schema's tIdentityType value
    display_name: str | None = None
    wildcarded: str | None = None  # WildcardedPSI or WildcardedIMPU


@dataclass(frozen=True, slots=True)
class ParsedProfile:
    """One ``<ServiceProfile>``: its identities and iFC elements (as XML text)."""

    identities: tuple[ParsedIdentity, ...]
    ifcs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UserData:
    """What an S-CSCF needs from an ``IMSSubscription`` document."""

    private_id: str
    profiles: tuple[ParsedProfile, ...]

    @property
    def identities(self) -> tuple[ParsedIdentity, ...]:
        return tuple(i for p in self.profiles for i in p.identities)

    @property
    def impus(self) -> tuple[str, ...]:
        """Every identity of the set, in document order."""
        return tuple(i.identity for i in self.identities)

    @property
    def barred(self) -> frozenset[str]:
        return frozenset(i.identity for i in self.identities if i.barred)

    @property
    def unbarred(self) -> tuple[str, ...]:
        """The identities a P-Associated-URI may list (TS 24.229 §5.4.1.2.2)."""
        return tuple(i.identity for i in self.identities if not i.barred)


def parse_user_data(xml: bytes | str) -> UserData:
    """Read an ``IMSSubscription`` document; raise :class:`UserDataError` if it
    is not one, or if it has a document type declaration."""
    data = xml.encode() if isinstance(xml, str) else xml
    root = _parse(data, "User-Data")
    if root.tag != "IMSSubscription":
        raise UserDataError(f"User-Data root is <{root.tag}>, not <IMSSubscription>")
    private_id = _required_text(root, "PrivateID")
    profiles = tuple(_read_profile(p) for p in root.findall("ServiceProfile"))
    if not profiles:
        raise UserDataError("User-Data has no <ServiceProfile>")
    return UserData(private_id=private_id, profiles=profiles)


def _read_profile(elem: ET.Element) -> ParsedProfile:
    identities = tuple(_read_identity(p) for p in elem.findall("PublicIdentity"))
    if not identities:
        raise UserDataError("a <ServiceProfile> has no <PublicIdentity>")
    ifcs = tuple(
        ET.tostring(i, encoding="unicode").strip() for i in elem.findall("InitialFilterCriteria")
    )
    return ParsedProfile(identities=identities, ifcs=ifcs)


def _read_identity(elem: ET.Element) -> ParsedIdentity:
    identity = _required_text(elem, "Identity")
    barring = elem.findtext("BarringIndication")
    barred = barring is not None and _boolean(barring, "BarringIndication")
    ext = elem.find("Extension")
    kind = XML_PUBLIC_USER_IDENTITY
    display_name: str | None = None
    wildcarded: str | None = None
    if ext is not None:
        raw = ext.findtext("IdentityType")
        if raw is not None:
            if raw.strip() not in {"0", "1", "2", "3", "4"}:
                raise UserDataError(f"<IdentityType> {raw!r} is not 0 to 4")
            kind = int(raw)
        wildcarded = ext.findtext("WildcardedPSI")
        ext2 = ext.find("Extension")
        if ext2 is not None:
            display_name = ext2.findtext("DisplayName")
            ext3 = ext2.find("Extension")
            if ext3 is not None and wildcarded is None:
                wildcarded = ext3.findtext("WildcardedIMPU")
    return ParsedIdentity(identity, barred, kind, display_name, wildcarded)


def _boolean(value: str, tag: str) -> bool:
    v = value.strip()
    if v in {"1", "true"}:
        return True
    if v in {"0", "false"}:
        return False
    raise UserDataError(f"<{tag}> {value!r} is not an xs:boolean")


def _required_text(elem: ET.Element, tag: str) -> str:
    value = elem.findtext(tag)
    if value is None or not value.strip():
        raise UserDataError(f"<{elem.tag}> has no <{tag}>")
    return value.strip()


def _parse(data: bytes, what: str) -> ET.Element:
    """Parse with expat, building an element tree, with every DTD feature
    refused: a document type declaration, entity or notation declarations.
    Undeclared entity references are then errors of expat itself."""
    if len(data) > MAX_USER_DATA:
        raise UserDataError(f"{what} is larger than {MAX_USER_DATA} bytes")
    builder = ET.TreeBuilder()
    parser = ParserCreate()

    def refuse(*_: Any) -> NoReturn:
        raise UserDataError(f"{what} has a document type declaration; none is allowed")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.NotationDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except ExpatError as err:
        raise UserDataError(f"{what} is not well-formed XML: {err}") from None
    return builder.close()
