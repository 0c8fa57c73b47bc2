"""The eP-CSCF's subscription to the reg event package (TS 24.229 5.2.3, RFC 3680, RFC 6665).

After an initial registration the eP-CSCF subscribes for the default public user
identity (contract item 5): Request-URI and To the IMPU, From and P-Asserted-Identity
its own URI, Route the stored Service-Route, ``Event: reg``, ``Expires: 600000``.  Each
NOTIFY on that dialog is answered 200 and applied (SPEC §1.4 G): an IMPU whose
registration, or whose contact of this WIC, is ``terminated`` (``deactivated``,
``rejected``, ``expired``, ``unregistered``) is unbound; with none left the whole
registration goes.  ``Subscription-State: terminated`` ends the subscription.  A NOTIFY
for no subscription of ours gets 481 (RFC 6665 §4.1.3), which ends it at the notifier.
The S-CSCF grants at most the registration's remaining lifetime, so the subscription is
refreshed in its dialog (RFC 6665 §4.1.2.1) 600 s before it lapses (at half-time when
granted 1,200 s or less), as long as the registration it watches is bound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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

__all__ = ["handle_notify", "refresh", "refresh_delay", "subscribe"]

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
        cseq=sub.cseq,
        contact=f"<sip:{config.host}:{config.port};transport=tcp>",
        route=list(reg.service_route),
        extra=_subscribe_headers(app),
    )
    app.bindings.subscribe(reg, sub)
    app.core.originate(request, _on_answer(app, reg, sub), now=now)


def refresh(app: EpCscf, sub: RegSubscription, now: float) -> None:
    """RFC 6665 §4.1.2.1: refresh the subscription in its dialog before it lapses,
    while a registration it watches is bound (the one that made it, or the one that
    replaced it on a new connection)."""
    reg = app.bindings.for_subscription(sub.call_id)
    if reg is None or reg.subscription is not sub or not sub.active:
        return
    config = app.config
    sub.cseq += 1
    request = new_request(
        "SUBSCRIBE",
        sub.remote_target or reg.default_impu,
        from_=f"<sip:{config.host}>;tag={sub.from_tag}",
        to=f"<{reg.default_impu}>;tag={sub.to_tag}",
        call_id=sub.call_id,
        cseq=sub.cseq,
        contact=f"<sip:{config.host}:{config.port};transport=tcp>",
        route=list(sub.route_set),
        extra=_subscribe_headers(app),
    )
    app.core.originate(request, _on_answer(app, reg, sub), now=now)


def _subscribe_headers(app: EpCscf) -> list[tuple[str, str]]:
    return [
        ("Event", "reg"),
        ("Expires", str(app.config.reg_event_expires)),
        ("Accept", REGINFO),
        ("P-Asserted-Identity", f"<sip:{app.config.host}>"),
        ("P-Charging-Vector", app.icid.vector()),
    ]


def refresh_delay(granted: int) -> float:
    """When to refresh a subscription granted for ``granted`` seconds: 600 s before its
    end when it is longer than 1,200 s, at half-time otherwise (the WIC's rule for its
    registration, SPEC §9.1 item 3)."""
    return granted - 600.0 if granted > 1200 else granted / 2


def _on_answer(
    app: EpCscf, reg: Registration, sub: RegSubscription
) -> Callable[[Response, float], None]:
    def on_response(resp: Response, now: float) -> None:
        if resp.status < 200:
            return
        if resp.status >= 300:
            sub.active = False
            app.cancel_refresh(sub)
            log.warning("eP-CSCF: reg event SUBSCRIBE for %s: %d", reg.default_impu, resp.status)
            return
        sub.active = True
        sub.to_tag = sub.to_tag or resp.to_tag
        try:
            granted = resp.expires
            if sub.cseq == 1:  # the 200 that made the dialog sets its route set and target
                contacts = resp.contacts
                sub.remote_target = str(contacts[0].uri) if contacts else None
                sub.route_set = tuple(str(a) for a in reversed(resp.record_routes))
        except ParseError as err:
            log.warning("eP-CSCF: reg event 200 unreadable: %s", err)
            return
        if granted is None:
            granted = app.config.reg_event_expires
        sub.expires_at = now + granted
        if granted > 0:
            app.schedule_refresh(sub, now + refresh_delay(granted))

    return on_response


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
        app.cancel_refresh(sub)
    gone = [impu_key(r.aor) for r in registrations if _ends_for(reg, r)]
    if gone and app.bindings.unbind_impus(reg, gone):
        app.forget(reg)
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
