"""The eP-CSCF's subscription to the reg event package (TS 24.229 5.2.3, RFC 3680, RFC 6665).

After an initial registration the eP-CSCF subscribes for the default public user
identity (contract item 5): Request-URI and To the IMPU, From and P-Asserted-Identity
its own URI, Route the stored Service-Route, ``Event: reg``, ``Expires: 600000``.  One
subscription per IMPU serves every registration of it through this eP-CSCF (the same
user on several connections, a connection replaced by a new one): one per connection
would cost the S-CSCF a NOTIFY to each on every change.

Each NOTIFY on the dialog is answered 200 and applied to every registration it
watches (SPEC §1.4 G): an IMPU whose registration, or whose contact of that WIC, is
``terminated`` (``deactivated``, ``rejected``, ``expired``, ``unregistered``) is
unbound; with none left the whole registration goes.  ``Subscription-State:
terminated`` ends the subscription.  A NOTIFY for no subscription of ours, or for one
that watches no registration any more, gets 481 (RFC 6665 §4.1.3), which ends it at
the notifier.  The S-CSCF grants at most the registration's remaining lifetime, so the
subscription is refreshed in its dialog (RFC 6665 §4.1.2.1) 600 s before it lapses (at
half-time when granted 1,200 s or less) while it watches a registration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..sip.checks import new_tag
from ..sip.errors import ParseError
from ..sip.message import Response
from ..sip.proxy import ProxyContext
from ..sip.reginfo import REGINFO, ReginfoError, ReginfoRegistration, parse_reginfo
from ..sip.uac import new_call_id, new_request
from ..sip.uri import SipURI, parse_uri
from .bindings import Registration, RegSubscription, impu_key, shared, shared_routes

if TYPE_CHECKING:
    from .app import EpCscf

__all__ = ["handle_notify", "refresh", "refresh_delay", "subscribe"]

log = logging.getLogger(__name__)


def subscribe(app: EpCscf, reg: Registration, now: float) -> None:
    """Have ``reg`` watched by the subscription for its default IMPU: the one this
    eP-CSCF holds already (another connection of the same user), else a new SUBSCRIBE
    (TS 24.229 5.2.3)."""
    key = impu_key(reg.default_impu)
    bindings = app.bindings
    sub = bindings.subscription_for(key)
    if sub is not None:
        reg.subscription = sub
        return
    config = app.config
    sub = RegSubscription(
        call_id=new_call_id(config.host),
        from_tag=new_tag(),
        impu=reg.default_impu,
        key=key,
    )
    request = new_request(
        "SUBSCRIBE",
        sub.impu,
        from_=f"<sip:{config.host}>;tag={sub.from_tag}",
        to=f"<{sub.impu}>",
        call_id=sub.call_id,
        cseq=sub.cseq,
        contact=f"<sip:{config.host}:{config.port};transport=tcp>",
        route=list(reg.service_route),
        extra=_subscribe_headers(app),
    )
    bindings.add_subscription(sub)
    reg.subscription = sub
    app.core.originate(request, _on_answer(app, sub), now=now)


def refresh(app: EpCscf, sub: RegSubscription, now: float) -> None:
    """RFC 6665 §4.1.2.1: refresh the subscription in its dialog before it lapses,
    while a registration it watches is bound; else let it lapse."""
    bindings = app.bindings
    if bindings.subscription(sub.call_id) is not sub or not sub.active:
        return
    if not bindings.watched_by(sub):
        bindings.end_subscription(sub)
        return
    config = app.config
    sub.cseq += 1
    request = new_request(
        "SUBSCRIBE",
        sub.remote_target or sub.impu,
        from_=f"<sip:{config.host}>;tag={sub.from_tag}",
        to=f"<{sub.impu}>;tag={sub.to_tag}",
        call_id=sub.call_id,
        cseq=sub.cseq,
        contact=f"<sip:{config.host}:{config.port};transport=tcp>",
        route=list(sub.route_set),
        extra=_subscribe_headers(app),
    )
    app.core.originate(request, _on_answer(app, sub), now=now)


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


def _on_answer(app: EpCscf, sub: RegSubscription) -> Callable[[Response, float], None]:
    def on_response(resp: Response, now: float) -> None:
        if resp.status < 200:
            return
        if resp.status >= 300:
            # Gone: the next registration of the IMPU subscribes afresh.
            app.cancel_refresh(sub)
            app.bindings.end_subscription(sub)
            log.warning("eP-CSCF: reg event SUBSCRIBE for %s: %d", sub.impu, resp.status)
            return
        sub.active = True
        sub.to_tag = sub.to_tag or resp.to_tag
        try:
            granted = resp.expires
            if sub.cseq == 1:  # the 200 that made the dialog sets its route set and target
                contacts = resp.contacts
                sub.remote_target = shared(str(contacts[0].uri)) if contacts else None
                sub.route_set = shared_routes(tuple(str(a) for a in reversed(resp.record_routes)))
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
    """A NOTIFY from the S-CSCF for one of the eP-CSCF's own subscriptions."""
    req = ctx.request
    bindings = app.bindings
    sub = bindings.subscription(req.call_id)
    if sub is None or req.to_tag != sub.from_tag:
        ctx.respond(481, now=now)
        return
    if (req.headers.get("Event") or "").split(";", 1)[0].strip().lower() != "reg":
        ctx.respond(489, now=now)
        return
    state = (req.headers.get("Subscription-State") or "").split(";", 1)[0].strip().lower()
    watched = bindings.watched_by(sub)
    if not watched:  # nothing of ours left to watch: the subscription ends here
        app.cancel_refresh(sub)
        bindings.end_subscription(sub)
        # Its last NOTIFY is taken; any other is refused, which ends it at the notifier.
        ctx.respond(200 if state == "terminated" else 481, now=now)
        return
    sub.to_tag = sub.to_tag or req.from_tag
    registrations: tuple[ReginfoRegistration, ...] = ()
    if req.body:
        if req.content_type != REGINFO:
            ctx.respond(415, headers=[("Accept", REGINFO)], now=now)
            return
        try:
            registrations = parse_reginfo(req.body).registrations
        except ReginfoError as err:
            log.warning("eP-CSCF: reg event NOTIFY unreadable: %s", err)
            ctx.respond(400, now=now)
            return
    ctx.respond(200, now=now)
    for reg in watched:
        gone = [impu_key(r.aor) for r in registrations if _ends_for(reg, r)]
        if gone and bindings.unbind_impus(reg, gone):
            log.debug("eP-CSCF: %s unbound from %s by the reg event", reg.impi, reg.flow)
    if state == "terminated":
        app.cancel_refresh(sub)
        bindings.end_subscription(sub)


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
