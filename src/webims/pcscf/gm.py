"""Ordinary SIP UEs on Gm at the eP-CSCF (TS 24.229 5.2.2, SIP Digest without TLS;
TS 33.203 Annex N; RFC 3327; RFC 5626 §5).

Besides WICs on WebSocket, the eP-CSCF is the P-CSCF of plain SIP phones that reach
its UDP/TCP port.  That port is also its Mw side, so the source tells them apart:

* a request from a core peer (:func:`core_peers`: the I-CSCF and S-CSCFs of the
  topology and the addresses the other CSCFs trust) is the core's (``routing.from_core``);
* a REGISTER from anywhere else is a UE's registration (:func:`handle_register`),
  whatever Route it carries (it goes to the I-CSCF, never to a flow);
* any other request from anywhere else is a UE's originating or in-dialog request,
  under the same rules as a WIC's (``routing.from_wic``): the flow it came on must
  hold a registration (else 403), P-Preferred-Identity / From are checked against
  the IMPUs bound to that flow, P-Asserted-Identity is set, Route is the
  Service-Route, and an in-dialog request must come through the Record-Route of
  this very flow.  So a request from outside the core that names another UE's flow
  token in its Route is refused, never relayed to that UE (RFC 3325 §5, TS 24.229
  4.4: a P-Asserted-Identity reaches a UE only from within the trust domain).  An
  OPTIONS for the eP-CSCF itself is answered 200 (a phone's keep-alive probe).

The REGISTER of a UE (TS 24.229 5.2.2.1) goes to the I-CSCF with ``Route:
<icscf_uri>``, ``Path`` naming the flow it came on (RFC 5626 §5.2 flow token of the
TCP connection or of the UDP 5-tuple; ``ob`` when the UE asked for outbound with a
``reg-id``, RFC 5626 §5.1), ``Require: path``, P-Visited-Network-ID and a new
P-Charging-Vector.  The UE's Digest credentials go through for the S-CSCF to check
(TS 24.229 5.4.1.2.1B), less any ``integrity-protected`` and ``authorization-entity``
parameter: only the P-CSCF can tell how a UE was protected, and a UE that claims
``auth-done`` must never have the S-CSCF skip authentication (TS 24.229 5.2.2.1,
TS 33.203 U.1).  With SIP Digest without TLS the P-CSCF knows of no protection, so
no ``integrity-protected`` value is sent.  Anything a UE may not assert
(P-Asserted-Identity, P-Preferred-Identity, P-Visited-Network-ID, P-Charging-*,
Path, Route, Proxy-Authorization, non-Digest credentials) is removed.

Project choice for RFC 3261 phones: TS 24.229 5.1.1.2.1 has the UE name its private
user identity in the Authorization of its first REGISTER; a phone that sends none
(most do) would have the I-CSCF derive a private identity from the To IMPU
(TS 24.229 5.3.1.2), which fails whenever the two differ.  Such a REGISTER is
answered by the eP-CSCF with a 401 in the home realm whose nonce no S-CSCF issued:
the phone answers with its username, the S-CSCF does not know that nonce and
challenges again with ``stale=true`` (RFC 2617 §3.2.1), which the phone answers
without asking its user.  Nothing is authenticated at the eP-CSCF.

The 2xx binds the IMPI (Digest username) and the registered IMPUs (To and
P-Associated-URI) to the flow and stores the Service-Route, exactly as a WIC's
(``register.on_register_response``); the charging headers are removed from every
response the UE gets (TS 24.229 5.2.2.2).  A 401 goes back as it came.

Dialogs of a UE are double record-routed (RFC 5658): the Mw-side entry names the
eP-CSCF's host over TCP as for a WIC, the Gm-side one (:func:`ue_record_route`) the
address and transport the phone reached it on, both with the flow token, so that a
phone that cannot resolve the eP-CSCF's host name still sends its in-dialog requests
on its own flow.

Limit: a flow holds one registration, as a WIC's connection does (a phone with two
accounts on one socket keeps the last one registered).
"""

from __future__ import annotations

import logging
import math
import secrets
from typing import TYPE_CHECKING

from ..ims.topology import Topology, parse_hostport
from ..ims.trust import TrustedPeers
from ..sip import grammar as g
from ..sip.auth import AuthParams, DigestCredentials
from ..sip.errors import ParseError
from ..sip.message import Request
from ..sip.proxy import ProxyContext
from ..sip.uri import SipURI, parse_uri
from ..transport.flow import Address, Flow
from . import register, routing

if TYPE_CHECKING:
    from .app import EpCscf

__all__ = [
    "GM_TRANSPORTS",
    "UE_SIDE",
    "core_peers",
    "forwarded_credentials",
    "from_ue",
    "handle_register",
    "identity_challenge",
    "record_route_towards_ue",
    "ue_record_route",
]

log = logging.getLogger(__name__)

#: Transports a SIP UE reaches the eP-CSCF's Gm/Mw port on (no TLS listener: SIP
#: Digest without TLS, TS 33.203 N).
GM_TRANSPORTS = frozenset({"udp", "tcp"})

#: ``ctx.data`` key marking a request of a UE on Gm: its responses are the UE side's.
UE_SIDE = "gm"

#: Parameters of the Digest credentials only the P-CSCF may set (TS 24.229 5.2.2.1,
#: TS 24.371 Table A.3.2-2): a UE's own values are dropped.
_NODE_ONLY_PARAMS = ("integrity-protected", "authorization-entity")


# -- who is who ------------------------------------------------------------------------------


def _address_of(uri_text: str, hosts: dict[str, str]) -> Address | None:
    """(ip, port) of a SIP URI of the topology, None if its host is not an address
    the topology knows (no DNS is asked)."""
    try:
        uri = parse_uri(uri_text)
    except ParseError:
        return None
    if not isinstance(uri, SipURI):
        return None
    port = uri.port if uri.port is not None else (5061 if uri.scheme == "sips" else 5060)
    try:
        return parse_hostport(f"{uri.host_bare}:{port}", hosts)
    except ValueError:
        return None


def core_peers(topology: Topology) -> TrustedPeers:
    """The Mw peers of this eP-CSCF: the I-CSCF it registers through, the S-CSCFs
    the I-CSCF may select (their Server-Names), and every peer the I-CSCF and the
    S-CSCF trust (SPEC §2.2, contract items 3–4).  Everything else on the SIP port
    is a UE."""
    peers = set(topology.icscf_trusted | topology.scscf_trusted)
    for uri in (topology.icscf_uri, topology.scscf_server_name, *topology.scscfs):
        address = _address_of(uri, topology.hosts)
        if address is not None:
            peers.add(address)
    return TrustedPeers(peers)


def from_ue(app: EpCscf, ctx: ProxyContext, now: float) -> bool:
    """Handle a request that came on UDP/TCP from a UE; False when it is not one
    (then it is the core's, ``routing.from_core``)."""
    source = ctx.source
    if (
        not isinstance(source, Flow)
        or source.transport not in GM_TRANSPORTS
        or source in app.core_peers
    ):
        return False
    ctx.data[UE_SIDE] = True
    req = ctx.request
    if req.method == "REGISTER":
        handle_register(app, ctx, now)
        return True
    reg = app.bindings.for_flow(source)
    if reg is not None and req.method in routing.DIALOG_FORMING and req.to_tag is None:
        # Below the Mw-side entry ``from_wic`` has the core put on top (RFC 5658).
        for name, value in record_route_towards_ue(source, reg.flow_token):
            req.headers.add_first(name, value)
    routing.from_wic(app, ctx, now)
    return True


def ue_record_route(flow: Flow, token: str) -> str | None:
    """The Gm-side half of the eP-CSCF's double Record-Route (RFC 5658) for a dialog
    of the UE on ``flow``: the address and transport the UE reaches us on, with the
    flow token.  The Mw-side half (``EpCscf.flow_uri``) names the eP-CSCF's host
    and TCP, which a phone may be unable to resolve or use.  None for a WIC's flow,
    and for a listener on an unspecified address (no address to give the UE)."""
    if flow.transport not in GM_TRANSPORTS:
        return None
    host, port = flow.local
    if host in ("0.0.0.0", "::"):
        return None
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    transport = ";transport=tcp" if flow.transport == "tcp" else ""
    return f"sip:{token}@{hostport}{transport};lr"


def record_route_towards_ue(flow: Flow, token: str) -> list[tuple[str, str]]:
    """``ue_record_route`` as a header to add, if there is one."""
    uri = ue_record_route(flow, token)
    return [("Record-Route", f"<{uri}>")] if uri is not None else []


# -- the REGISTER --------------------------------------------------------------------------


def forwarded_credentials(req: Request, integrity: str | None = None) -> list[DigestCredentials]:
    """The UE's Digest credentials as the S-CSCF gets them: without the parameters
    only a P-CSCF sets, and with ``integrity-protected`` set to ``integrity`` when
    given (copies; the request's parsed values are left alone)."""
    out: list[DigestCredentials] = []
    for creds in req.authorization:
        if not isinstance(creds, DigestCredentials):
            continue
        params = AuthParams(list(creds.params.items))
        for name in _NODE_ONLY_PARAMS:
            params.remove(name)
        if integrity is not None:
            params.set("integrity-protected", integrity)
        out.append(DigestCredentials(params=params))
    return out


def identity_challenge(realm: str) -> str:
    """The eP-CSCF's 401 to a REGISTER without a Digest username (see the module
    notes): a nonce of its own, which the S-CSCF answers with ``stale=true``."""
    nonce = "pcscf-" + secrets.token_urlsafe(18)
    return f'Digest realm={g.quote(realm)}, nonce={g.quote(nonce)}, algorithm=MD5, qop="auth"'


def _impi(credentials: list[DigestCredentials], realm: str) -> str | None:
    """The private user identity: the Digest username for the home realm, else any."""
    named = [c for c in credentials if c.username]
    for creds in named:
        if (creds.realm or "").lower() == realm.lower():
            return creds.username
    return named[0].username if named else None


def handle_register(
    app: EpCscf, ctx: ProxyContext, now: float, *, integrity: str | None = None
) -> None:
    """TS 24.229 5.2.2.1 for a UE using SIP Digest (module notes): without TLS, or,
    for a WIC on WSS with IMS credentials, over TLS with ``integrity`` (tls-pending)."""
    req = ctx.request
    config = app.config
    flow = ctx.source
    assert isinstance(flow, Flow)
    try:
        deregistration = register.is_deregistration(req)
        contacts = req.contacts
        credentials = forwarded_credentials(req, integrity)
        require = [t for t in req.require if t != "path"]
        supported = req.supported
        req.to.uri  # noqa: B018 - a To that does not parse is answered 400 here
    except (ParseError, ValueError) as err:
        log.debug("eP-CSCF: unreadable REGISTER from %s: %s", flow, err)
        ctx.respond(400, "Bad Request", now=now)
        return
    impi = _impi(credentials, config.domain)
    if impi is None:
        challenge = identity_challenge(config.domain)
        ctx.respond(401, headers=[("WWW-Authenticate", challenge)], now=now)
        return
    outbound = any(c.params.get("reg-id") is not None for c in contacts)
    token = app.transport.make_token(flow)
    h = req.headers
    for name in register.REPLACED_KEYS.intersection(h.keys()):
        h.remove(name)
    h.set("Require", ", ".join([*require, "path"]))
    wanted = ("path", "outbound") if outbound else ("path",)
    h.set("Supported", ", ".join([*supported, *(t for t in wanted if t not in supported)]))
    h.add("Route", f"<{config.icscf_uri}>")
    h.add("Path", f"<{app.flow_uri(token)}{';ob' if outbound else ''}>")
    h.add("P-Visited-Network-ID", g.quote(config.network_id))
    h.add("P-Charging-Vector", app.icid.vector(config.network_id))
    for creds in credentials:
        h.add("Authorization", str(creds))
    ctx.data["register"] = register.RegisterAttempt(
        flow=flow,
        flow_token=token,
        impi=impi,
        authorization_entity="",
        token_expires_at=math.inf,
        deregistration=deregistration,
        contact=contacts[0] if contacts else None,
    )
    ctx.forward(now=now)
