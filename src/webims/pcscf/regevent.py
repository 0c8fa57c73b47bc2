"""The eP-CSCF's subscription to the reg event package (TS 24.229 5.2.3, RFC 3680, RFC 6665).

After an initial registration the eP-CSCF subscribes for the default public user
identity (contract item 5): Request-URI and To the IMPU, From and P-Asserted-Identity
its own URI, Route the stored Service-Route, ``Event: reg``, ``Expires: 600000``.  Each
NOTIFY on that dialog is answered 200 and applied (SPEC §1.4 G): an IMPU whose
registration, or whose contact of this WIC, is ``terminated`` (``deactivated``,
``rejected``, ``expired``, ``unregistered``) is unbound; with none left the whole
registration goes.  ``Subscription-State: terminated`` ends the subscription.  A NOTIFY
for no subscription of ours gets 481 (RFC 6665 §4.1.3), which ends it at the notifier.
Re-subscribing before the subscription's expiry is not done: the S-CSCF grants at most
the registration's lifetime and every re-registration keeps the subscription.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..sip.checks import new_tag
from ..sip.errors import ParseError
from ..sip.message import Response
from ..sip.proxy import ProxyContext
from ..sip.uac import new_call_id, new_request
from ..sip.uri import SipURI, parse_uri
from .bindings import Registration, RegSubscription, impu_key
from .reginfo import ReginfoError, ReginfoRegistration, parse_reginfo

if TYPE_CHECKING:
    from .app import EpCscf

__all__ = ["handle_notify", "subscribe"]

log = logging.getLogger(__name__)

REGINFO = "application/reginfo+xml"


def subscribe(app: EpCscf, reg: Registration, now: float) -> None:
    """Send the SUBSCRIBE of TS 24.229 5.2.3 for ``reg``'s default IMPU."""
    config = app.config
    me = f"sip:{config.host}"
    sub = RegSubscription(call_id=new_call_id(config.host), from_tag=new_tag())
    request = new_request(
        "SUBSCRIBE",
        reg.default_impu,
        from_=f"<{me}>;tag={sub.from_tag}",
        to=f"<{reg.default_impu}>",
        call_id=sub.call_id,
        cseq=1,
        contact=f"<sip:{config.host}:{config.port};transport=tcp>",
        route=list(reg.service_route),
        extra=[
            ("Event", "reg"),
            ("Expires", str(config.reg_event_expires)),
            ("Accept", REGINFO),
            ("P-Asserted-Identity", f"<{me}>"),
            ("P-Charging-Vector", app.icid.vector()),
        ],
    )
    app.bindings.subscribe(reg, sub)

    def on_response(resp: Response, now: float) -> None:
        if resp.status < 200:
            return
        if resp.status < 300:
            sub.active = True
            sub.to_tag = sub.to_tag or resp.to_tag
        else:
            log.warning("eP-CSCF: reg event SUBSCRIBE for %s: %d", reg.default_impu, resp.status)

    app.core.originate(request, on_response, now=now)


def handle_notify(app: EpCscf, ctx: ProxyContext, now: float) -> None:
    """A NOTIFY from the S-CSCF for the eP-CSCF's own subscription."""
    req = ctx.request
    reg = app.bindings.for_subscription(req.call_id)
    sub = reg.subscription if reg is not None else None
    if reg is None or sub is None or req.to_tag != sub.from_tag:
        ctx.respond(481, now=now)
        return
    if (req.headers.get("Event") or "").split(";", 1)[0].strip().lower() != "reg":
        ctx.respond(489, now=now)
        return
    sub.to_tag = sub.to_tag or req.from_tag
    state = (req.headers.get("Subscription-State") or "").split(";", 1)[0].strip().lower()
    registrations: tuple[ReginfoRegistration, ...] = ()
    if req.body:
        if req.content_type != REGINFO:
            ctx.respond(415, headers=[("Accept", REGINFO)], now=now)
            return
        try:
            registrations = parse_reginfo(req.body)
        except ReginfoError as err:
            log.warning("eP-CSCF: reg event NOTIFY unreadable: %s", err)
            ctx.respond(400, now=now)
            return
    ctx.respond(200, now=now)
    if state == "terminated":
        sub.active = False
    gone = [impu_key(r.aor) for r in registrations if _ends_for(reg, r)]
    if gone and app.bindings.unbind_impus(reg, gone):
        log.info("eP-CSCF: %s unbound from %s by the reg event", reg.impi, reg.flow)


def _ends_for(reg: Registration, registration: ReginfoRegistration) -> bool:
    """Whether this ``<registration>`` ends the IMPU for the WIC of ``reg``: it is
    terminated, or the contacts of this WIC in it all are."""
    if registration.state == "terminated":
        return True
    mine = [c for c in registration.contacts if _same_contact(c.uri, reg.contact)]
    return bool(mine) and all(c.state == "terminated" for c in mine)


def _same_contact(text: str, contact: str) -> bool:
    if text == contact:
        return True
    try:
        a, b = parse_uri(text), parse_uri(contact)
    except ParseError:
        return False
    return isinstance(a, SipURI) and a.equivalent(b)
