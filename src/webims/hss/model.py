"""What the HSS knows about a subscriber (TS 23.228 §5.2, TS 29.228 §6 and Annex B).

A :class:`Subscriber` is one IMS subscription with everything the Cx
procedures read about it in a single look-up::

    Subscriber
     ├── name                      provisioning key (the demo's web user, "user1")
     ├── privates: PrivateIdentity IMPI, SIP Digest HA1 per realm (never a password),
     │                             the IMPUs it may register
     ├── publics:  PublicIdentity  IMPU (sip:, sips:, tel:, or a wildcard), its
     │                             implicit registration set, service profile,
     │                             barring and registration state
     ├── profiles: ServiceProfile  initial filter criteria (XML, may be empty)
     ├── allowed WAF / WWSF        Allowed-WAF-WWSF-Identities (AVP 656/657/658)
     ├── barred_auth_entities      authorisation entities refused (TS 33.203 X.3 6.2)
     ├── capabilities              for S-CSCF selection by the I-CSCF
     └── assignment                the S-CSCF serving it (Server-Name and its
                                   Diameter identity), or None

The objects are immutable values; the store changes them in transactions.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import IntEnum

__all__ = [
    "IdentityType",
    "InvalidSubscriber",
    "PrivateIdentity",
    "PublicIdentity",
    "RegistrationState",
    "ServerAssignment",
    "ServiceProfile",
    "Subscriber",
    "digest_ha1",
]


class InvalidSubscriber(ValueError):
    """Provisioning data that breaks a rule of the model."""


class RegistrationState(IntEnum):
    """Registration state of a public identity in the HSS (TS 29.228 §6.1.2)."""

    NOT_REGISTERED = 0
    REGISTERED = 1
    UNREGISTERED = 2  # unregistered but served (terminating services)


class IdentityType(IntEnum):
    """Identity-Type of the User-Data XML (TS 29.228 Annex E)."""

    PUBLIC_USER_IDENTITY = 0
    DISTINCT_PSI = 1
    WILDCARDED_PSI = 2
    WILDCARDED_IMPU = 3


def digest_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username ":" realm ":" password) in hex (RFC 3261 §22.4, RFC 7616 §3.4.2)."""
    data = f"{username}:{realm}:{password}".encode()
    if algorithm.upper() == "MD5":
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    if algorithm.upper() == "SHA-256":
        return hashlib.sha256(data).hexdigest()
    raise InvalidSubscriber(f"unsupported digest algorithm {algorithm!r}")


_IMPI = re.compile(r"^[^@\s]+@[A-Za-z0-9.-]+$")
_IMPU = re.compile(r"^(sip|sips|tel):\S+$", re.IGNORECASE)
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True, slots=True)
class ServiceProfile:
    """A service profile: its name and zero or more ``<InitialFilterCriteria>``
    elements of the TS 29.228 User-Data schema, as XML text."""

    name: str
    ifc_xml: str = ""


@dataclass(frozen=True, slots=True)
class PrivateIdentity:
    """An IMPI (NAI form, ``user@realm``) and its SIP Digest credentials.

    ``ha1`` is the MD5 HA1 for ``realm``; ``ha1_sha256`` the RFC 7616 SHA-256
    one, when provisioned.  ``impus`` are the public identities this IMPI may
    register (TS 23.228 §4.3.3.4: an IMPU may be shared by several IMPIs).
    """

    impi: str
    realm: str
    ha1: str
    impus: tuple[str, ...]
    ha1_sha256: str | None = None

    def validate(self) -> None:
        if not _IMPI.match(self.impi):
            raise InvalidSubscriber(f"IMPI {self.impi!r} is not of the form user@realm")
        if not self.realm:
            raise InvalidSubscriber(f"IMPI {self.impi!r} has no Digest realm")
        if len(self.ha1) != 32 or not _HEX.match(self.ha1):
            raise InvalidSubscriber(f"IMPI {self.impi!r}: HA1 must be 32 lower-case hex digits")
        if self.ha1_sha256 is not None and (
            len(self.ha1_sha256) != 64 or not _HEX.match(self.ha1_sha256)
        ):
            raise InvalidSubscriber(f"IMPI {self.impi!r}: SHA-256 HA1 must be 64 hex digits")
        if not self.impus:
            raise InvalidSubscriber(f"IMPI {self.impi!r} is linked to no IMPU")

    @classmethod
    def with_password(
        cls, impi: str, password: str, impus: tuple[str, ...], realm: str | None = None
    ) -> PrivateIdentity:
        """The IMPI with HA1s computed from ``password`` (which is not kept).

        The realm defaults to the IMPI's domain part, as TS 24.229 §5.1.1.2 has
        the UE derive its home domain from it.
        """
        realm = realm or impi.rpartition("@")[2]
        return cls(
            impi=impi,
            realm=realm,
            ha1=digest_ha1(impi, realm, password),
            impus=impus,
            ha1_sha256=digest_ha1(impi, realm, password, "SHA-256"),
        )


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """An IMPU (or PSI) of the subscription.

    ``irs`` names its implicit registration set: all IMPUs with the same
    ``irs`` are registered and deregistered together.  A wildcarded identity
    keeps its TS 23.003 §13.5 form (``sip:chatroom-!.*!@home1.net``) in
    ``impu``.
    """

    impu: str
    irs: str
    service_profile: str
    barred: bool = False
    identity_type: IdentityType = IdentityType.PUBLIC_USER_IDENTITY
    display_name: str | None = None
    state: RegistrationState = RegistrationState.NOT_REGISTERED

    @property
    def is_wildcard(self) -> bool:
        return self.identity_type in (IdentityType.WILDCARDED_PSI, IdentityType.WILDCARDED_IMPU)

    def matches(self, uri: str) -> bool:
        """Whether ``uri`` is this identity, or falls under its wildcard."""
        if not self.is_wildcard:
            return uri == self.impu
        return wildcard_regex(self.impu).fullmatch(uri) is not None

    def validate(self) -> None:
        if not _IMPU.match(self.impu):
            raise InvalidSubscriber(f"IMPU {self.impu!r} is not a sip:, sips: or tel: URI")
        if not self.irs:
            raise InvalidSubscriber(f"IMPU {self.impu!r} has no implicit registration set")
        if self.is_wildcard:
            try:
                wildcard_regex(self.impu)
            except re.error as err:
                raise InvalidSubscriber(f"IMPU {self.impu!r}: bad wildcard: {err}") from None


def wildcard_regex(impu: str) -> re.Pattern[str]:
    """The regular expression of a wildcarded identity: the text between a
    pair of ``!`` is a regular expression, the rest is literal (TS 23.003 §13.5)."""
    parts = impu.split("!")
    if len(parts) % 2 == 0:
        raise re.error("unbalanced '!' in wildcarded identity")
    pattern = "".join(re.escape(p) if i % 2 == 0 else p for i, p in enumerate(parts))
    return re.compile(pattern)


@dataclass(frozen=True, slots=True)
class ServerAssignment:
    """The S-CSCF assigned to a subscription: its SIP Server-Name and the
    Diameter identity (Origin-Host) it used in the SAR, where RTR/PPR go."""

    server_name: str
    diameter_host: str


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One IMS subscription, with everything Cx answers are made of."""

    name: str
    privates: tuple[PrivateIdentity, ...]
    publics: tuple[PublicIdentity, ...]
    profiles: tuple[ServiceProfile, ...] = (ServiceProfile("default"),)
    allowed_waf: tuple[str, ...] = ()
    allowed_wwsf: tuple[str, ...] = ()
    barred_auth_entities: tuple[str, ...] = ()
    mandatory_capabilities: tuple[int, ...] = ()
    optional_capabilities: tuple[int, ...] = ()
    #: Visited networks (Visited-Network-Identifier values) besides the home
    #: network where this subscription may register; ``"*"`` allows any.
    roaming_networks: tuple[str, ...] = ()
    #: Charging-Information: CCF and ECF names (Diameter URIs), primary first.
    ccf: tuple[str, ...] = ()
    ecf: tuple[str, ...] = ()
    assignment: ServerAssignment | None = None

    # -- look-ups ---------------------------------------------------------

    def public(self, uri: str) -> PublicIdentity | None:
        """The public identity ``uri`` names: an exact match first, then a wildcard."""
        for pub in self.publics:
            if pub.impu == uri:
                return pub
        for pub in self.publics:
            if pub.is_wildcard and pub.matches(uri):
                return pub
        return None

    def private(self, impi: str) -> PrivateIdentity | None:
        for priv in self.privates:
            if priv.impi == impi:
                return priv
        return None

    def profile(self, name: str) -> ServiceProfile:
        for prof in self.profiles:
            if prof.name == name:
                return prof
        raise KeyError(name)

    def implicit_set(self, impu: str) -> tuple[PublicIdentity, ...]:
        """Every identity of the implicit registration set ``impu`` is in."""
        pub = self.public(impu)
        if pub is None:
            return ()
        return tuple(p for p in self.publics if p.irs == pub.irs)

    def linked(self, impi: str, impu: str) -> bool:
        """Whether IMPI and IMPU are associated (UAR/MAR/SAR: else 5002)."""
        priv = self.private(impi)
        pub = self.public(impu)
        return priv is not None and pub is not None and pub.impu in priv.impus

    def registered(self) -> Iterator[PublicIdentity]:
        return (p for p in self.publics if p.state == RegistrationState.REGISTERED)

    def with_public(self, pub: PublicIdentity) -> Subscriber:
        return replace(self, publics=tuple(pub if p.impu == pub.impu else p for p in self.publics))

    # -- rules -------------------------------------------------------------

    def validate(self) -> None:
        """Raise :class:`InvalidSubscriber` unless the subscription is coherent."""
        if not self.name or any(c.isspace() for c in self.name):
            raise InvalidSubscriber(f"subscriber name {self.name!r} is empty or has spaces")
        if not self.privates:
            raise InvalidSubscriber(f"subscriber {self.name!r} has no private identity")
        if not self.publics:
            raise InvalidSubscriber(f"subscriber {self.name!r} has no public identity")
        impus = [p.impu for p in self.publics]
        if len(set(impus)) != len(impus):
            raise InvalidSubscriber(f"subscriber {self.name!r} lists an IMPU twice")
        impis = [p.impi for p in self.privates]
        if len(set(impis)) != len(impis):
            raise InvalidSubscriber(f"subscriber {self.name!r} lists an IMPI twice")
        profiles = {p.name for p in self.profiles}
        for pub in self.publics:
            pub.validate()
            if pub.service_profile not in profiles:
                raise InvalidSubscriber(
                    f"IMPU {pub.impu!r} names an unknown service profile {pub.service_profile!r}"
                )
        for priv in self.privates:
            priv.validate()
            for impu in priv.impus:
                if impu not in impus:
                    raise InvalidSubscriber(
                        f"IMPI {priv.impi!r} is linked to {impu!r}, not an IMPU of this subscriber"
                    )
