"""The registrar's state (TS 24.229 5.4.1.2.2, RFC 3261 §10.3, RFC 5626 §6).

One :class:`Registration` per implicit registration set (IRS, TS 23.228
4.3.3.4): the IMPI that registered it, every IMPU of the set with its barring
indication, the default IMPU, the contacts bound to the set, the
authorisation entity the eP-CSCF named (TS 33.203 X.3), and what the HSS
downloaded in the SAA (User-Data, Charging-Information,
Allowed-WAF-WWSF-Identities).  Registering any IMPU of a set registers all of
them (TS 24.229 5.4.1.2.2 step 5), so every IMPU of the set finds the same
registration.

The store is an interface (:class:`RegistrarStore`) with awaitable methods so
that a shared store (Redis, say) fits behind it; :class:`MemoryRegistrar` is
the in-process one.  Registrations are values: a procedure reads one, builds
the changed copy and puts it back.

Times (``expires_at``) are on the element's clock (``Cscf.now()``, the event
loop's monotonic time).  A store shared by several processes would keep wall
clock times instead; the procedures only ever compare them with ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Protocol

from ..sip.address import parse_address
from ..sip.errors import SipError
from ..sip.uri import URI, SipURI, TelURI, parse_uri

__all__ = [
    "Contact",
    "MemoryRegistrar",
    "RegistrarStore",
    "Registration",
    "impu_key",
    "impu_key_text",
]


def impu_key(uri: URI) -> str:
    """The form an IMPU is looked up by: scheme, user and host (case-folded),
    no port or parameters (TS 23.003 13.4; RFC 3261 §10.3 step 5 compares
    address-of-record URIs the same way)."""
    if isinstance(uri, SipURI):
        if uri.user is None:
            return f"{uri.scheme}:{uri.host_bare}"
        return f"{uri.scheme}:{uri.user_unescaped}@{uri.host_bare}"
    if isinstance(uri, TelURI):
        return f"tel:{uri.digits}"
    return str(uri)


@lru_cache(maxsize=65536)
def impu_key_text(text: str) -> str:
    """:func:`impu_key` of an IMPU written as text (from the HSS's User-Data)."""
    try:
        return impu_key(parse_uri(text.strip()))
    except SipError:
        return text.strip()


@dataclass(frozen=True, slots=True)
class Contact:
    """One binding of the set (RFC 3261 §10.3; RFC 5626 §6 flow by instance and reg-id)."""

    uri: str
    expires_at: float
    #: When the contact was first bound (RFC 3680 ``duration-registered``).
    registered_at: float
    instance: str | None = None
    reg_id: int | None = None
    #: The Path the REGISTER carried (RFC 3327): the Route of a terminating request.
    path: tuple[str, ...] = ()
    call_id: str = ""
    cseq: int = 0
    #: The RFC 3680 event that put the contact in its current (active) state:
    #: ``registered``, ``created``, ``refreshed`` or ``shortened``.
    event: str = "registered"

    def same_binding(self, uri: str, instance: str | None, reg_id: int | None) -> bool:
        """RFC 5626 §6: with an instance and a reg-id the flow is the binding's
        identity; without them, the Contact URI (compared as text, which is
        how the same UA rewrites its own Contact)."""
        if instance is not None and reg_id is not None:
            return self.instance == instance and self.reg_id == reg_id
        if self.instance is not None and self.reg_id is not None:
            return False
        return self.uri == uri

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


@dataclass(frozen=True, slots=True)
class Registration:
    """The registration of one implicit registration set."""

    impi: str
    #: Every IMPU of the set, as the HSS listed them (the default one first).
    impus: tuple[str, ...]
    barred: frozenset[str] = frozenset()
    contacts: tuple[Contact, ...] = ()
    #: The ``authorization-entity`` of the registering REGISTER (TS 33.203 X.3).
    authorization_entity: str | None = None
    user_data: bytes | None = None
    allowed_waf: tuple[str, ...] = ()
    allowed_wwsf: tuple[str, ...] = ()
    ccf: tuple[str, ...] = ()
    ecf: tuple[str, ...] = ()
    #: Digest-authenticated (no trusted node): kept for re-registrations.
    digest: bool = False
    _keys: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    _barred_keys: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keys", frozenset(impu_key_text(i) for i in self.impus))
        object.__setattr__(self, "_barred_keys", frozenset(impu_key_text(i) for i in self.barred))

    @property
    def key(self) -> str:
        """The set's name in the store: its default IMPU."""
        return impu_key_text(self.impus[0]) if self.impus else self.impi

    @property
    def unbarred(self) -> tuple[str, ...]:
        """The IMPUs a P-Associated-URI lists (TS 24.229 5.4.1.2.2), in order."""
        return tuple(i for i in self.impus if i not in self.barred)

    @property
    def default_impu(self) -> str | None:
        """The first non-barred IMPU (TS 24.229 5.4.1.2.2: the default one)."""
        unbarred = self.unbarred
        return unbarred[0] if unbarred else None

    @property
    def keys(self) -> frozenset[str]:
        return self._keys

    def has(self, key: str) -> bool:
        return key in self._keys

    def is_barred(self, key: str) -> bool:
        return key in self._barred_keys

    def live_contacts(self, now: float) -> tuple[Contact, ...]:
        return tuple(c for c in self.contacts if c.expires_at > now)

    def next_expiry(self) -> float | None:
        return min((c.expires_at for c in self.contacts), default=None)

    def remaining(self, now: float) -> int:
        """Seconds until the last contact expires."""
        return max((c.remaining(now) for c in self.contacts), default=0)

    def path_hosts(self) -> frozenset[str]:
        """The hosts of the Path URIs of every contact (the P-CSCFs on the path)."""
        hosts: set[str] = set()
        for contact in self.contacts:
            for entry in contact.path:
                uri = _path_uri(entry)
                if uri is not None:
                    hosts.add(uri.host_bare)
        return frozenset(hosts)

    def with_contacts(self, contacts: Iterable[Contact]) -> Registration:
        return replace(self, contacts=tuple(contacts))


def _path_uri(entry: str) -> SipURI | None:
    try:
        uri = parse_address(entry).uri
    except SipError:
        return None
    return uri if isinstance(uri, SipURI) else None


class RegistrarStore(Protocol):
    """Where the registrations live.  Every method may wait (a remote store)."""

    async def get(self, impu_key: str) -> Registration | None:
        """The registration of the set ``impu_key`` (see :func:`impu_key`) belongs to."""

    async def by_impi(self, impi: str) -> list[Registration]:
        """The registrations the IMPI made."""

    async def put(self, registration: Registration) -> None:
        """Store (or replace) the registration of its set."""

    async def remove(self, key: str) -> Registration | None:
        """Delete the registration named ``key`` (its :attr:`Registration.key`)."""

    async def keys(self) -> list[str]:
        """The names of every registration (for the expiry timers after a restart)."""


class MemoryRegistrar:
    """A :class:`RegistrarStore` in this process: a dict by set and an index by IMPU."""

    def __init__(self) -> None:
        self._by_key: dict[str, Registration] = {}
        #: IMPU (lookup form) -> registration key; IMPI -> registration keys.
        self._index: dict[str, str] = {}
        self._by_impi: dict[str, set[str]] = {}

    async def get(self, impu_key: str) -> Registration | None:
        key = self._index.get(impu_key)
        return self._by_key.get(key) if key is not None else None

    async def by_impi(self, impi: str) -> list[Registration]:
        return [self._by_key[k] for k in self._by_impi.get(impi, ())]

    async def put(self, registration: Registration) -> None:
        key = registration.key
        old = self._by_key.get(key)
        if old is not None:
            for k in old.keys - registration.keys:
                self._index.pop(k, None)
            if old.impi != registration.impi:
                self._unlink_impi(old.impi, key)
        self._by_key[key] = registration
        for k in registration.keys:
            self._index[k] = key
        self._by_impi.setdefault(registration.impi, set()).add(key)

    async def remove(self, key: str) -> Registration | None:
        old = self._by_key.pop(key, None)
        if old is not None:
            for k in old.keys:
                if self._index.get(k) == key:
                    del self._index[k]
            self._unlink_impi(old.impi, key)
        return old

    def _unlink_impi(self, impi: str, key: str) -> None:
        keys = self._by_impi.get(impi)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_impi[impi]

    async def keys(self) -> list[str]:
        return list(self._by_key)

    def registrations(self) -> list[Registration]:
        """Every registration held (read by the metrics, without a round trip)."""
        return list(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)
