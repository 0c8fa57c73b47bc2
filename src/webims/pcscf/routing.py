"""Requests other than REGISTER through the eP-CSCF (SPEC.md §1.4 C and D).

From a WIC (TS 24.229 5.2.6.3; TS 33.203 X.3 binding; SPEC §8 items 46–50):

* the connection must hold a registration, else 403 (item 49); identities bound to
  another connection never count (item 50, §9.6 item 21);
* ``P-Preferred-Identity``, when present, must be one of the IMPUs bound to this
  connection and becomes the ``P-Asserted-Identity`` (item 46); without it the
  asserted identity is the default IMPU (item 47).  Outside a dialog the From URI must
  also be bound (item 48).  Anything else: 403, never forwarded;
* the WIC's P-Asserted-Identity, P-Preferred-Identity, P-Visited-Network-ID,
  P-Charging-* and Bearer credentials are removed (24.371 7.2.1 has the WIC send its
  token on every request; the core never sees one), a new P-Charging-Vector added;
* the token a WIC sends on a later request outside a dialog (24.371 7.2.1) is checked
  again (``[pcscf] revalidate_tokens``, SPEC §1.4 C): no longer valid, 401 (or what
  a REGISTER with it would get); another subscriber's, 403.  The connection's binding,
  made by a validated REGISTER, is what authorises the request, with a token or
  without one; requests inside a dialog are not checked again (a call can always end);
* outside a dialog, Route is replaced by the stored Service-Route (RFC 3608) and
  dialog-forming requests are record-routed with the flow token; inside one, the
  request must come through our Record-Route for this very connection, in a dialog
  the eP-CSCF saw this connection make (``dialogs.py``), and it goes along that
  dialog's route set, not along Route values of the UE's own making (TS 24.229
  5.2.6.3.3): anything else gets 403.

From the core (SPEC §1.4 D, RFC 5626 §5.3): a request whose consumed Route (the Path
of the registration, or our Record-Route) carries a flow token goes to that flow; a
token that no longer resolves (forged, or the connection gone) gets 430 Flow Failed.
P-Charging-* is removed; dialog-forming requests are record-routed with the same
token, and the UE's answer to one makes a dialog of that connection.  A NOTIFY of our
reg event subscription is ours (``regevent.py``); an OPTIONS to us is answered 200;
anything else is not for the eP-CSCF (404 or 403).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..sip.errors import ParseError
from ..sip.headers import header_key
from ..sip.message import Response
from ..sip.proxy import ProxyContext, Target
from ..sip.uri import SipURI
from ..transport.flow import Flow
from . import gm, regevent
from .bindings import Registration, impu_key
from .dialogs import DialogKey, UeDialog
from .register import refuse
from .token import CALL_SCOPE, InsufficientScope, TokenError, UnreadableBearer, bearer_token

if TYPE_CHECKING:
    from .app import EpCscf

__all__ = ["CHARGING_HEADERS", "from_core", "from_wic", "on_ue_response"]

log = logging.getLogger(__name__)

#: Removed from whatever goes to a WIC (TS 24.229 5.2.2.2, 5.2.6.3, 5.2.7).
CHARGING_HEADERS = ("P-Charging-Vector", "P-Charging-Function-Addresses")

#: Requests that create a dialog, and so are record-routed (RFC 3261 §16.6 step 4).
DIALOG_FORMING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})

#: ``ProxyContext.data`` keys: a dialog-forming request of a UE (a mark), one the
#: core sent a UE (the flow and the Record-Route it came with), a BYE of a dialog.
_ORIGINATING = "pcscf.dialog.originating"
_TERMINATING = "pcscf.dialog.terminating"
_ENDING = "pcscf.dialog.ending"

#: Removed from every request of a WIC (its own values are set where needed).
_UNTRUSTED = (
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "P-Visited-Network-ID",
    *CHARGING_HEADERS,
)

_UNTRUSTED_KEYS = frozenset(header_key(name) for name in _UNTRUSTED)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, SUBSCRIBE, NOTIFY, MESSAGE, UPDATE, PRACK, REFER"


def _is_bearer(value: str) -> bool:
    scheme = value.split(None, 1)
    return bool(scheme) and scheme[0].lower() == "bearer"


def _strip_bearer(ctx: ProxyContext) -> None:
    """Every Bearer credential out (contract item 2: no token reaches the core)."""
    h = ctx.request.headers
    for name in ("Authorization", "Proxy-Authorization"):
        values = h.get_all(name)
        if values and any(_is_bearer(v) for v in values):
            h.remove(name)
            for v in values:
                if not _is_bearer(v):
                    h.add(name, v)


def from_wic(app: EpCscf, ctx: ProxyContext, now: float) -> None:
    req = ctx.request
    if req.method == "OPTIONS" and not req.routes and app.cscf.endpoint.is_local(req.uri):
        ctx.respond(200, headers=[("Allow", ALLOW)], now=now)  # a probe of the eP-CSCF itself
        return
    reg = app.bindings.for_flow(ctx.source)
    if reg is None:
        ctx.respond(403, "Not registered on this connection", now=now)
        return
    in_dialog = req.to_tag is not None
    used = ctx.route_used
    dialog: UeDialog | None = None
    if in_dialog:
        key: DialogKey = (req.call_id, req.from_tag or "", req.to_tag or "")
        dialog = app.dialogs.get(key)
        ours = isinstance(used, SipURI) and used.user == reg.flow_token
        if not ours or dialog is None or dialog.flow != ctx.source:
            ctx.respond(403, "Not a dialog of this connection", now=now)
            return
        if req.method == "BYE":
            ctx.data[_ENDING] = key
    try:
        preferred = req.p_preferred_identity
        from_key = impu_key(req.from_.uri)
    except ParseError:
        ctx.respond(400, "Bad identity header", now=now)
        return
    if preferred:
        if len(preferred) != 1 or impu_key(preferred[0].uri) not in reg.impus:
            ctx.respond(403, "Preferred identity not registered on this connection", now=now)
            return
        asserted = str(preferred[0].uri)
    else:
        if not in_dialog and from_key not in reg.impus:
            ctx.respond(403, "From identity not registered on this connection", now=now)
            return
        asserted = reg.default_impu
    token = None
    if dialog is None and app.config.revalidate_tokens and req.method not in ("ACK", "CANCEL"):
        try:
            token = bearer_token(req)
        except UnreadableBearer as err:
            ctx.respond(400, str(err), now=now)
            return
    if token is not None:
        app.cscf.spawn(_revalidated(app, ctx, token, reg, asserted))
        return
    _relay(app, ctx, reg, dialog, asserted=asserted, now=now)


async def _revalidated(
    app: EpCscf, ctx: ProxyContext, token: str, reg: Registration, asserted: str
) -> None:
    """TS 24.371 7.2.1: the token a WIC sends with a request outside a dialog is
    checked again (SPEC §1.4 C): one that is no longer valid gets the answer of a
    REGISTER with it (401 ``invalid_token``, 403, 503), one of another subscriber
    403, one sent with an INVITE must allow calls too (``ims:call``: else 403
    ``insufficient_scope``); the connection's binding is what the request is
    asserted by all the same."""
    try:
        info = await app.validator.validate(token)
        if ctx.request.method == "INVITE" and CALL_SCOPE not in info.scopes:
            raise InsufficientScope(f"token scope lacks {CALL_SCOPE}", CALL_SCOPE)
    except TokenError as err:
        refuse(app, ctx, err)
        return
    if info.impi != reg.impi:
        ctx.respond(403, "Token of another subscriber", now=app.cscf.now())
        return
    current = app.bindings.for_flow(ctx.source)  # the binding may have gone meanwhile
    if current is None or current.impi != reg.impi:
        ctx.respond(403, "Not registered on this connection", now=app.cscf.now())
        return
    _relay(app, ctx, current, None, asserted=asserted, now=app.cscf.now())


def _relay(
    app: EpCscf,
    ctx: ProxyContext,
    reg: Registration,
    dialog: UeDialog | None,
    *,
    asserted: str,
    now: float,
) -> None:
    """A UE's request, checked: into the core with the asserted identity, along its
    dialog's route set or the registration's Service-Route."""
    req = ctx.request
    h = req.headers
    _strip_bearer(ctx)
    for name in _UNTRUSTED_KEYS.intersection(h.keys()):
        h.remove(name)
    h.add("P-Asserted-Identity", f"<{asserted}>")
    h.add("P-Charging-Vector", app.icid.vector())
    if dialog is None and not reg.service_route:
        ctx.respond(403, "No Service-Route for this registration", now=now)
        return
    h.remove("Route")
    for route in dialog.routes if dialog is not None else reg.service_route:
        h.add("Route", route)
    record_route = None
    if dialog is None and req.method in DIALOG_FORMING:
        record_route = reg.record_route
        ctx.data[_ORIGINATING] = True
    ctx.forward(record_route=record_route, now=now)


def from_core(app: EpCscf, ctx: ProxyContext, now: float) -> None:
    req = ctx.request
    used = ctx.route_used
    token = used.user if isinstance(used, SipURI) else None
    if token:
        flow = app.transport.resolve_token(token)
        if flow is None:
            ctx.respond(430, now=now)
            return
        dialog_forming = req.method in DIALOG_FORMING and req.to_tag is None
        record_route = app.flow_uri(token) if dialog_forming else None
        if dialog_forming:
            try:
                routes = tuple(str(r) for r in req.record_routes)
            except ParseError:
                ctx.respond(400, "Bad Record-Route", now=now)
                return
            ctx.data[_TERMINATING] = (flow, routes)
        elif req.method == "BYE" and req.to_tag and req.from_tag:
            ctx.data[_ENDING] = (req.call_id, req.to_tag, req.from_tag)
        ue_side = gm.record_route_towards_ue(flow, token) if dialog_forming else []
        for name in CHARGING_HEADERS:
            req.headers.remove(name)
        target = Target(req.uri, dest=flow, headers_first=ue_side)  # RFC 5658, gm.py
        ctx.forward([target], record_route=record_route, now=now)
        return
    if req.method == "NOTIFY" and app.bindings.subscription(req.call_id) is not None:
        regevent.handle_notify(app, ctx, now)
        return
    if not req.routes and app.cscf.endpoint.is_local(req.uri):
        if req.method == "OPTIONS":
            ctx.respond(200, headers=[("Allow", ALLOW)], now=now)
        elif req.method == "NOTIFY":
            ctx.respond(481, now=now)
        elif req.method != "ACK":
            ctx.respond(404, now=now)
        return
    ctx.respond(403, "Not relayed by this eP-CSCF", now=now)


def on_ue_response(app: EpCscf, ctx: ProxyContext, response: Response) -> None:
    """The dialogs a response makes or ends (``dialogs.py``): an answer to a
    dialog-forming request of a UE, or a UE's answer to one from the core; a
    2xx to a BYE."""
    data = ctx.data
    if not data:
        return
    source = ctx.source
    if data.get(_ORIGINATING) and isinstance(source, Flow):
        app.dialogs.note_originating(source, ctx.request, response, app.cscf.endpoint.is_local)
    terminating = data.get(_TERMINATING)
    if isinstance(terminating, tuple):
        flow, routes = terminating
        app.dialogs.note_terminating(flow, ctx.request, response, routes)
    ending = data.get(_ENDING)
    if isinstance(ending, tuple) and 200 <= response.status < 300:
        app.dialogs.remove(ending)
