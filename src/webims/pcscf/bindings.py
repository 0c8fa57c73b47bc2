"""The eP-CSCF's registrations: which identities are bound to which connection.

TS 33.203 X.3 step 7.1 and TS 24.371 A.3.2 step 7: on the 200 (OK) to a REGISTER
the eP-CSCF associates the IMPI and every successfully registered IMPU with the TLS
session of the WIC.  A WSS connection is one TLS session, so the key here is the
connection's :class:`~webims.transport.flow.Flow` (its ``conn_id`` is never reused).

A :class:`Registration` holds what TS 24.229 5.2.2.2 has the P-CSCF keep from that
200: the Service-Route (RFC 3608), the P-Associated-URI list (the first is the default
public user identity), the contact with its RFC 5626 instance and reg-id, the
registration's expiry and the access token's.  :class:`Bindings` indexes them by flow,
by IMPU, and by (IMPI, instance, reg-id) for the RFC 5626 flow replacement, keeps the
eP-CSCF's reg event subscriptions (one per IMPU, by Call-ID), and expires registrations
on a heap the element arms one loop timer for.  Nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..sip.errors import ParseError
from ..sip.uri import URI, SipURI, TelURI, parse_uri
from ..transport.flow import Flow

__all__ = ["Bindings", "RegSubscription", "Registration", "impu_key", "shared", "shared_routes"]


@functools.lru_cache(maxsize=4096)
def _text_key(text: str) -> str:
    try:
        uri = parse_uri(text.strip())
    except ParseError:
        return "?" + text
    return impu_key(uri)


def shared(text: str) -> str:
    """One copy of a text most registrations hold alike (the authorization entity,
    P-Charging-Function-Addresses, the S-CSCF's Contact): 20,000 idle WICs would
    otherwise keep 20,000 equal strings each."""
    return sys.intern(text)


@functools.lru_cache(maxsize=256)
def shared_routes(routes: tuple[str, ...]) -> tuple[str, ...]:
    """One copy of a route list (a Service-Route of RFC 3608, a reg event dialog's
    route set): the same few S-CSCFs give every registration the same one."""
    return tuple(sys.intern(route) for route in routes)


def impu_key(uri: URI | str) -> str:
    """The form two public user identities are compared in.

    A SIP URI is reduced to scheme, user, host (lower case) and port: URI parameters
    and header parameters do not name another identity.  A tel URI to its digits
    (RFC 3966 §4: visual separators are not significant).  An unparsable text is
    compared as it is written, and so never matches a parsed identity by accident.
    """
    if isinstance(uri, str):
        return _text_key(uri)  # token claims and reginfo AORs: the same few texts
    if isinstance(uri, SipURI):
        port = f":{uri.port}" if uri.port is not None else ""
        user = f"{uri.user}@" if uri.user is not None else ""
        return f"{uri.scheme}:{user}{uri.host_bare}{port}"
    if isinstance(uri, TelURI):
        return "tel:" + uri.digits
    return str(uri)


@dataclass(slots=True, eq=False)
class RegSubscription:
    """The eP-CSCF's subscription to the reg event package (RFC 3680, TS 24.229 5.2.3).

    One per IMPU, shared by every registration of this eP-CSCF whose default IMPU it is
    (several connections, or a connection replaced by another): a subscription per
    registration would have the S-CSCF notify each of them on every change.
    """

    call_id: str
    from_tag: str
    #: The subscribed IMPU (Request-URI and To) and its ``impu_key``.
    impu: str
    key: str
    #: The notifier's tag, known from the 200 (or from the first NOTIFY).
    to_tag: str | None = None
    active: bool = False
    #: The dialog (RFC 3261 §12.1.2): CSeq of our last request, the notifier's
    #: Contact, the route set (the 200's Record-Route, reversed).
    cseq: int = 1
    remote_target: str | None = None
    route_set: tuple[str, ...] = ()
    #: Loop time the subscription lapses at unless refreshed (None: not granted yet).
    expires_at: float | None = None


@dataclass(slots=True, eq=False)
class Registration:
    """One WIC's registration, bound to the connection it registered on."""

    flow: Flow
    #: The RFC 5626 flow token naming ``flow`` (Path and Record-Route user part).
    flow_token: str
    impi: str
    #: The To URI of the REGISTER that made it.
    registered_impu: str
    #: ``impu_key`` of every registered IMPU: To plus P-Associated-URI.
    impus: set[str]
    #: The default public user identity (first P-Associated-URI, else To), as a URI.
    default_impu: str
    #: The Service-Route of the 200, as Route header values, in order.
    service_route: tuple[str, ...]
    #: The Record-Route URI of dialogs through this flow.
    record_route: str
    contact: str
    instance: str | None
    reg_id: str | None
    #: Loop time at which the registration lapses unless refreshed.
    expires_at: float
    #: The access token's ``exp`` (seconds since the epoch).
    token_expires_at: float
    authorization_entity: str
    charging_function_addresses: str | None = None
    subscription: RegSubscription | None = None
    #: The connection is gone (RFC 5626 §5.3: requests for it get 430).
    dead: bool = False
    _gone: bool = field(default=False, repr=False)

    @property
    def flow_key(self) -> tuple[str, str | None, str | None]:
        """RFC 5626 §4.2: a registrar binding is (AOR, instance, reg-id); here the IMPI."""
        return (self.impi, self.instance, self.reg_id)


class Bindings:
    """Every registration of this eP-CSCF, by flow, by IMPU, by instance, by subscription."""

    def __init__(self) -> None:
        self._by_flow: dict[Flow, Registration] = {}
        self._by_impu: dict[str, list[Registration]] = {}
        self._by_instance: dict[tuple[str, str | None, str | None], Registration] = {}
        self._subscriptions: dict[str, RegSubscription] = {}
        self._subscription_of: dict[str, RegSubscription] = {}
        self._expiries: list[tuple[float, int, Registration]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._by_flow)

    # -- lookups ----------------------------------------------------------------------
    def for_flow(self, flow: object) -> Registration | None:
        """The registration made on this connection, if any."""
        return self._by_flow.get(flow) if isinstance(flow, Flow) else None

    def for_impu(self, impu: str) -> list[Registration]:
        """The registrations an IMPU (an ``impu_key``) is bound to, on any connection."""
        return list(self._by_impu.get(impu, ()))

    def registrations(self) -> list[Registration]:
        """Every registration held, one per connection (read by the metrics)."""
        return list(self._by_flow.values())

    @property
    def impu_count(self) -> int:
        """How many IMPUs are bound, over every registration."""
        return len(self._by_impu)

    @property
    def subscription_count(self) -> int:
        """Reg event subscriptions held (one per IMPU), pending or active."""
        return len(self._subscriptions)

    # -- reg event subscriptions ----------------------------------------------------------
    def subscription(self, call_id: str) -> RegSubscription | None:
        """The subscription of this dialog (its Call-ID), if it is still ours."""
        return self._subscriptions.get(call_id)

    def subscription_for(self, impu: str) -> RegSubscription | None:
        """The subscription for an IMPU (an ``impu_key``), pending or active."""
        return self._subscription_of.get(impu)

    def add_subscription(self, sub: RegSubscription) -> None:
        self._subscriptions[sub.call_id] = sub
        self._subscription_of[sub.key] = sub

    def end_subscription(self, sub: RegSubscription) -> list[Registration]:
        """Forget a subscription; returns the registrations it watched (now unwatched)."""
        if self._subscriptions.get(sub.call_id) is sub:
            del self._subscriptions[sub.call_id]
        if self._subscription_of.get(sub.key) is sub:
            del self._subscription_of[sub.key]
        sub.active = False
        watched = self.watched_by(sub)
        for reg in watched:
            reg.subscription = None
        return watched

    def watched_by(self, sub: RegSubscription) -> list[Registration]:
        """The bound registrations this subscription reports on."""
        return [r for r in self._by_impu.get(sub.key, ()) if r.subscription is sub]

    # -- changes ----------------------------------------------------------------------
    def bind(self, reg: Registration) -> list[Registration]:
        """Add ``reg``; returns the registrations it replaces.

        It replaces the registration of its own connection (a re-REGISTER) and the one
        with the same IMPI, instance and reg-id on another connection (RFC 5626 §4.2.1
        and SPEC §9.1 item 4: a re-REGISTER on a new flow replaces the old flow).
        """
        replaced: list[Registration] = []
        for old in (self._by_flow.get(reg.flow), self._by_instance.get(reg.flow_key)):
            if old is not None and old is not reg and old not in replaced:
                replaced.append(old)
                self.remove(old)
        self._by_flow[reg.flow] = reg
        for impu in reg.impus:
            self._by_impu.setdefault(impu, []).append(reg)
        if reg.instance is not None:
            self._by_instance[reg.flow_key] = reg
        self.schedule(reg)
        return replaced

    def schedule(self, reg: Registration) -> None:
        """(Re)arm the expiry of ``reg`` at ``reg.expires_at``.

        Entries of replaced registrations stay in the heap until their time; when they
        outnumber the live ones the heap is rebuilt, so that refreshes neither grow it
        without bound nor keep replaced registrations alive for an hour.
        """
        heap = self._expiries
        if len(heap) > 2 * len(self._by_flow) + 1024:
            heap[:] = [(r.expires_at, next(self._seq), r) for r in self._by_flow.values()]
            heapq.heapify(heap)
            if self._by_flow.get(reg.flow) is reg:
                return  # just put back with the others
        heapq.heappush(heap, (reg.expires_at, next(self._seq), reg))

    def remove(self, reg: Registration) -> bool:
        """Delete a registration and every identity bound by it; False if already gone."""
        if reg._gone:
            return False
        reg._gone = True
        if self._by_flow.get(reg.flow) is reg:
            del self._by_flow[reg.flow]
        for impu in reg.impus:
            regs = self._by_impu.get(impu)
            if regs is not None and reg in regs:
                regs.remove(reg)
                if not regs:
                    del self._by_impu[impu]
        if self._by_instance.get(reg.flow_key) is reg:
            del self._by_instance[reg.flow_key]
        return True

    def unbind_impus(self, reg: Registration, impus: Iterable[str]) -> bool:
        """Remove some IMPUs from ``reg`` (SPEC §1.4 G); the whole registration goes
        when none remains.  Returns True when it went."""
        for impu in impus:
            if impu in reg.impus:
                reg.impus.discard(impu)
                regs = self._by_impu.get(impu)
                if regs is not None and reg in regs:
                    regs.remove(reg)
                    if not regs:
                        del self._by_impu[impu]
        if not reg.impus:
            return self.remove(reg)
        return False

    # -- expiry -----------------------------------------------------------------------
    def next_expiry(self) -> float | None:
        """The earliest pending expiry (stale heap entries are dropped on the way)."""
        heap = self._expiries
        while heap and (heap[0][2]._gone or heap[0][2].expires_at != heap[0][0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def expire(self, now: float) -> list[Registration]:
        """Remove and return every registration whose time has come."""
        out: list[Registration] = []
        heap = self._expiries
        while heap and heap[0][0] <= now:
            when, _, reg = heapq.heappop(heap)
            if reg._gone or reg.expires_at != when:
                continue
            self.remove(reg)
            out.append(reg)
        return out
