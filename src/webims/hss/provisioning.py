"""Provisioning: what the ``webims subscriber`` command and the REST API
share.

Both take the same description of a subscription (:class:`NewSubscriber`,
:class:`SubscriberFields`): a web user name, one IMPI with its password, the
IMPUs of one implicit registration set (some of them barred) and the WAF and
WWSF identities allowed to vouch for it.  :meth:`SubscriberFields.build`
turns it into a :class:`~webims.hss.model.Subscriber`, hashing the password
into the Digest HA1s at once; the password itself is never stored, and
:class:`SubscriberView` (what both show) carries neither it nor the HA1s.

The demo subscribers of DESIGN.md are :data:`DEMO_SUBSCRIBERS`;
:func:`seed_demo` provisions those that are missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .model import (
    IdentityType,
    InvalidSubscriber,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    ServiceProfile,
    Subscriber,
)
from .store import SubscriberExists, SubscriberStore
from .userdata import UserDataError, check_xml_text

__all__ = [
    "DEMO_SUBSCRIBERS",
    "NewSubscriber",
    "SubscriberFields",
    "SubscriberView",
    "describe_errors",
    "seed_demo",
]

#: The service profile every provisioned identity uses (no iFC).
DEFAULT_PROFILE = "default"

# A token: no spaces, nothing XML cannot carry (checked in build()).
Token = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^\S+$")]
# A web user name is also a path segment of the API: no "/".
WebUser = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\s/]+$")]


class SubscriberFields(BaseModel):
    """A subscription as provisioned (everything but its name)."""

    model_config = ConfigDict(extra="forbid")

    #: The IMPI's password; turned into its HA1s, never kept.  Required for a
    #: new subscriber, or when the IMPI or realm changes.
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    impi: Token
    #: IMPUs of the implicit registration set, and those of it that are barred.
    impus: list[Token] = Field(min_length=1)
    barred_impus: list[Token] = Field(default_factory=list)
    allowed_waf: list[Token] = Field(default_factory=list)
    allowed_wwsf: list[Token] = Field(default_factory=list)
    #: Digest realm; the IMPI's domain when unset.
    realm: Token | None = None
    #: Display names (User-Data ``<DisplayName>``) by IMPU.
    display_names: dict[str, Annotated[str, StringConstraints(max_length=255)]] = Field(
        default_factory=dict
    )

    def build(self, name: str, existing: Subscriber | None = None) -> Subscriber:
        """The validated subscriber ``name`` these fields describe.

        With ``existing`` (an update), what the fields do not cover is kept:
        the registration state of identities that stay, the S-CSCF
        assignment, service profiles and the other provisioned lists; and the
        HA1s, when no password is given and neither IMPI nor realm changes.
        Raises :class:`InvalidSubscriber`.
        """
        all_impus = [*self.impus, *self.barred_impus]
        for text, what in [
            *((u, "IMPU") for u in all_impus),
            *((w, "WAF identity") for w in self.allowed_waf),
            *((w, "WWSF identity") for w in self.allowed_wwsf),
            *((d, "display name") for d in self.display_names.values()),
        ]:
            try:
                check_xml_text(text, what)
            except UserDataError as err:
                raise InvalidSubscriber(str(err)) from None
        for impu in self.display_names:
            if impu not in all_impus:
                raise InvalidSubscriber(f"display name given for {impu!r}, not an IMPU of it")
        private = self._private(tuple(all_impus), existing)
        before = {p.impu: p for p in existing.publics} if existing else {}
        barred = set(self.barred_impus)
        publics = tuple(
            PublicIdentity(
                impu=impu,
                irs=name,
                service_profile=before[impu].service_profile if impu in before else DEFAULT_PROFILE,
                barred=impu in barred,
                identity_type=_identity_type(impu),
                display_name=self.display_names.get(impu),
                state=before[impu].state if impu in before else RegistrationState.NOT_REGISTERED,
            )
            for impu in all_impus
        )
        if existing is None:
            subscriber = Subscriber(name=name, privates=(private,), publics=publics)
        else:
            profiles = existing.profiles
            if all(p.name != DEFAULT_PROFILE for p in profiles):
                profiles = (*profiles, ServiceProfile(DEFAULT_PROFILE))
            subscriber = replace(existing, privates=(private,), publics=publics, profiles=profiles)
        subscriber = replace(
            subscriber, allowed_waf=tuple(self.allowed_waf), allowed_wwsf=tuple(self.allowed_wwsf)
        )
        subscriber.validate()
        return subscriber

    def _private(self, impus: tuple[str, ...], existing: Subscriber | None) -> PrivateIdentity:
        if self.password is not None:
            return PrivateIdentity.with_password(self.impi, self.password, impus, self.realm)
        old = existing.private(self.impi) if existing else None
        if old is None or (self.realm is not None and self.realm != old.realm):
            raise InvalidSubscriber(f"a password is needed to provision IMPI {self.impi!r}")
        return replace(old, impus=impus)


class NewSubscriber(SubscriberFields):
    """A subscription to add: the fields and the web user name."""

    name: WebUser

    def subscriber(self) -> Subscriber:
        if self.password is None:
            raise InvalidSubscriber(f"subscriber {self.name!r}: a password is required")
        return self.build(self.name)


def _identity_type(impu: str) -> IdentityType:
    """A wildcarded IMPU holds a ``!…!`` regular expression (TS 23.003 §13.5)."""
    return (
        IdentityType.WILDCARDED_IMPU if impu.count("!") >= 2 else IdentityType.PUBLIC_USER_IDENTITY
    )


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """One line out of pydantic's validation errors: ``field: problem; …``."""
    problems = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()))
        problems.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg")))
    return "; ".join(problems) or "invalid request"


# -- what is shown ---------------------------------------------------------------


class PrivateView(BaseModel):
    impi: str
    realm: str
    impus: list[str]


class PublicView(BaseModel):
    impu: str
    irs: str
    service_profile: str
    barred: bool
    identity_type: str
    display_name: str | None
    state: str


class AssignmentView(BaseModel):
    server_name: str
    diameter_host: str


class SubscriberView(BaseModel):
    """A subscriber as the API and ``show --json`` present it: no password,
    no HA1."""

    name: str
    privates: list[PrivateView]
    publics: list[PublicView]
    allowed_waf: list[str]
    allowed_wwsf: list[str]
    barred_auth_entities: list[str]
    assignment: AssignmentView | None

    @classmethod
    def of(cls, sub: Subscriber) -> SubscriberView:
        return cls(
            name=sub.name,
            privates=[
                PrivateView(impi=p.impi, realm=p.realm, impus=list(p.impus)) for p in sub.privates
            ],
            publics=[
                PublicView(
                    impu=p.impu,
                    irs=p.irs,
                    service_profile=p.service_profile,
                    barred=p.barred,
                    identity_type=p.identity_type.name.lower(),
                    display_name=p.display_name,
                    state=p.state.name.lower(),
                )
                for p in sub.publics
            ],
            allowed_waf=list(sub.allowed_waf),
            allowed_wwsf=list(sub.allowed_wwsf),
            barred_auth_entities=list(sub.barred_auth_entities),
            assignment=(
                AssignmentView(
                    server_name=sub.assignment.server_name,
                    diameter_host=sub.assignment.diameter_host,
                )
                if sub.assignment
                else None
            ),
        )


# -- demo data -------------------------------------------------------------------

DEMO_WAF = "webrtc_authserver1@thirdparty.net"

#: The demo subscribers of DESIGN.md (home domain home1.net).
DEMO_SUBSCRIBERS: tuple[NewSubscriber, ...] = tuple(
    NewSubscriber(
        name=f"user{n}",
        password=f"user{n}-secret",
        impi=f"user{n}_private@home1.net",
        impus=[f"sip:user{n}_public1@home1.net"],
        allowed_waf=[DEMO_WAF],
    )
    for n in (1, 2)
)


async def seed_demo(store: SubscriberStore) -> list[tuple[str, bool]]:
    """Provision the demo subscribers that are missing; already provisioned
    ones are left as they are.  Returns ``(name, added)`` for each."""
    outcome = []
    for demo in DEMO_SUBSCRIBERS:
        added = False
        if await store.get(demo.name) is None:
            try:
                await store.add(demo.subscriber())
                added = True
            except SubscriberExists:
                # Added meanwhile under that name: fine.  Anything else taken
                # (an IMPI or IMPU under another name) is a real conflict.
                if await store.get(demo.name) is None:
                    raise
        outcome.append((demo.name, added))
    return outcome
