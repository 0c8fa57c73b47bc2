"""The WIC's REGISTER at the eP-CSCF (SPEC.md §1.4 A, B, F; TS 24.371 A.3.2 steps 3–8;
TS 33.203 X.3; TS 24.229 5.2.2).

1. The Bearer token is taken from ``Authorization`` (both syntaxes of SPEC §0.3).
   None: 401 with the RFC 8898 challenge.  An ``Authorization: Bearer`` that cannot
   be read, or two tokens: 400 (RFC 6750 ``invalid_request``).  Any other credentials
   the WIC sends (a Digest with ``integrity-protected="auth-done"`` included) are no
   token: they get the 401 like no credentials at all, and never reach the core.
   Unless ``[pcscf] ims_auth`` lets WICs use IMS credentials (TS 24.371 scenario 1,
   TS 33.203 X.2): then the 401 also offers a Digest challenge, and a REGISTER with
   Digest credentials and no token goes the way of a SIP phone's (``gm.py``), over
   TLS marked ``integrity-protected="tls-pending"`` (TS 24.229 5.2.2.1), for the
   S-CSCF to challenge; a WIC's own ``auth-done`` never goes through.
2. The token is validated (``TokenValidator``, the one await of the procedure):
   401 ``invalid_token``, 403 ``insufficient_scope``, 503 when the WAF cannot be asked.
   Project choice (SPEC §1.4 F): a deregistration may go with an *expired* token when
   it comes on the connection that holds the registration of its To IMPU; it is then
   sent with the IMPI of that registration.
3. To and From must be IMPUs of the token: else 403, nothing forwarded.
4. The REGISTER goes to the I-CSCF rewritten as the contract's item 2: the WIC's
   credentials, Route, Path and P- headers out; Route to the I-CSCF, Path with the
   flow token and ``ob``, ``Require: path``, ``Supported: path, outbound``,
   P-Visited-Network-ID, P-Charging-Vector with orig-ioi, and the Digest
   ``auth-done`` Authorization of TS 24.371 Table A.3.2-2.
5. On the 2xx the identities are bound to the connection (``bindings.py``) and
   watched by the reg event subscription for the default IMPU, made now when this
   eP-CSCF holds none for it yet (``regevent.py``); a 2xx to a deregistration deletes
   the binding.  A non-2xx binds nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..sip import grammar as g
from ..sip.address import Address
from ..sip.auth import DigestCredentials
from ..sip.checks import new_tag
from ..sip.errors import ParseError
from ..sip.headers import header_key
from ..sip.message import Request, Response
from ..sip.proxy import ProxyContext
from ..sip.uac import new_call_id, new_request
from ..transport.flow import Flow
from . import regevent
from .bindings import Registration, impu_key, shared, shared_routes
from .token import ExpiredToken, TokenError, UnreadableBearer, bearer_token, www_authenticate

if TYPE_CHECKING:
    from .app import EpCscf

__all__ = [
    "RegisterAttempt",
    "deregister_on_behalf",
    "handle_register",
    "on_register_response",
]

log = logging.getLogger(__name__)

#: What a WIC or a UE may not assert, and what the eP-CSCF sets itself, on a
#: REGISTER (TS 24.229 5.2.2.1; SPEC §1.4 A.5, §8 items 20 and 23).
_REPLACED = (
    "Authorization",
    "Proxy-Authorization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "P-Visited-Network-ID",
    "P-Charging-Vector",
    "P-Charging-Function-Addresses",
    "Path",
    "Route",
)
REPLACED_KEYS = frozenset(header_key(name) for name in _REPLACED)


@dataclass(slots=True)
class RegisterAttempt:
    """A REGISTER on its way to the core: what its 2xx is bound with."""

    flow: Flow
    flow_token: str
    impi: str
    authorization_entity: str
    token_expires_at: float
    deregistration: bool
    contact: Address | None


# -- 1. credentials ------------------------------------------------------------------------


def is_deregistration(req: Request) -> bool:
    """RFC 3261 §10.2.2: ``Contact: *``, or every contact with an expiry of zero."""
    if req.contact_star:
        return True
    contacts = req.contacts
    if not contacts:
        return False
    default = req.expires
    for contact in contacts:
        value = contact.params.get("expires")
        expires = int(value) if value is not None and g.is_digits(value) else default
        if expires != 0:
            return False
    return True


def handle_register(app: EpCscf, ctx: ProxyContext, now: float) -> None:
    """SPEC §1.4 A.1–A.2 and B: answer at once without a usable token, else validate."""
    req = ctx.request
    config = app.config
    try:
        token = bearer_token(req)
        deregistration = is_deregistration(req)
        to_key, from_key = impu_key(req.to.uri), impu_key(req.from_.uri)
    except UnreadableBearer as err:
        challenge = www_authenticate(config.domain, config.authz_server, error="invalid_request")
        ctx.respond(400, str(err), headers=[("WWW-Authenticate", challenge)], now=now)
        return
    except (ParseError, ValueError) as err:
        ctx.respond(400, "Bad Request", now=now)
        log.debug("eP-CSCF: unreadable REGISTER: %s", err)
        return
    if token is None:
        if config.ims_auth and any(isinstance(c, DigestCredentials) for c in req.authorization):
            app.ims_auth_register(ctx, now)
            return
        challenges = [("WWW-Authenticate", www_authenticate(config.domain, config.authz_server))]
        if config.ims_auth:
            challenges.append(("WWW-Authenticate", app.ims_auth_challenge()))
        ctx.respond(401, headers=challenges, now=now)
        return
    app.cscf.spawn(
        _validate_and_forward(
            app, ctx, token, deregistration=deregistration, to_key=to_key, from_key=from_key
        )
    )


# -- 2.–4. validation and the REGISTER to the I-CSCF -------------------------------------------


async def _validate_and_forward(
    app: EpCscf,
    ctx: ProxyContext,
    token: str,
    *,
    deregistration: bool,
    to_key: str,
    from_key: str,
) -> None:
    flow = ctx.source
    assert isinstance(flow, Flow)
    try:
        info = await app.validator.validate(token)
    except ExpiredToken as err:
        reg = app.bindings.for_flow(flow)
        if deregistration and reg is not None and {to_key, from_key} <= reg.impus:
            _forward(
                app,
                ctx,
                flow,
                impi=reg.impi,
                entity=reg.authorization_entity,
                token_expires_at=reg.token_expires_at,
                deregistration=True,
            )
            return
        refuse(app, ctx, err)
        return
    except TokenError as err:
        refuse(app, ctx, err)
        return
    allowed = {impu_key(impu) for impu in info.impus}
    if to_key not in allowed or from_key not in allowed:
        ctx.respond(403, "Public identity not authorised by the token", now=app.cscf.now())
        return
    if not app.is_live(flow):
        return  # the WIC left while its token was checked: nothing to register
    _forward(
        app,
        ctx,
        flow,
        impi=info.impi,
        entity=info.authorization_entity,
        token_expires_at=info.expires_at,
        deregistration=deregistration,
    )


def refuse(app: EpCscf, ctx: ProxyContext, err: TokenError) -> None:
    """The answer of SPEC §1.4 B for a token that is not accepted (on a REGISTER, or
    on a later request that carried one)."""
    challenge = err.www_authenticate(app.config.domain, app.config.authz_server)
    headers = [("WWW-Authenticate", challenge)] if challenge is not None else []
    if err.status == 503:
        headers.append(("Retry-After", "5"))
    log.debug("eP-CSCF: %s from %s refused: %s", ctx.request.method, ctx.source, err.reason)
    ctx.respond(err.status, headers=headers, now=app.cscf.now())


def _digest(app: EpCscf, request_uri: str, impi: str, entity: str) -> str:
    """TS 24.371 Table A.3.2-2 / TS 24.229 5.2.2.1: the credentials of a trusted node."""
    value = (
        f"Digest username={g.quote(impi)}, realm={g.quote(app.config.domain)}, "
        f'uri={g.quote(request_uri)}, nonce="", response="", integrity-protected="auth-done"'
    )
    if app.config.send_authorization_entity:
        value += f", authorization-entity={g.quote(entity)}"
    return value


def _forward(
    app: EpCscf,
    ctx: ProxyContext,
    flow: Flow,
    *,
    impi: str,
    entity: str,
    token_expires_at: float,
    deregistration: bool,
) -> None:
    req = ctx.request
    h = req.headers
    now = app.cscf.now()
    try:
        require = [t for t in req.require if t != "path"]
        supported = req.supported
        contacts = req.contacts
        digest = _digest(app, req.uri_text, impi, entity)
        for name in REPLACED_KEYS.intersection(h.keys()):
            h.remove(name)
        token = app.transport.make_token(flow)
        h.set("Require", ", ".join([*require, "path"]))
        h.set(
            "Supported",
            ", ".join([*supported, *(t for t in ("path", "outbound") if t not in supported)]),
        )
        for name, value in _towards_core(app, token, digest):
            h.add(name, value)
    except (ParseError, ValueError) as err:  # e.g. a claim with a control character
        log.warning("eP-CSCF: REGISTER from %s not forwarded: %s", flow, err)
        ctx.respond(403, now=now)
        return
    ctx.data["register"] = RegisterAttempt(
        flow=flow,
        flow_token=token,
        impi=impi,
        authorization_entity=entity,
        token_expires_at=token_expires_at,
        deregistration=deregistration,
        contact=contacts[0] if contacts else None,
    )
    ctx.forward(now=now)


def _towards_core(app: EpCscf, flow_token: str, digest: str) -> list[tuple[str, str]]:
    """The headers of a REGISTER the eP-CSCF sends the I-CSCF (contract item 2)."""
    config = app.config
    return [
        ("Route", f"<{config.icscf_uri}>"),
        ("Path", f"<{app.flow_uri(flow_token)};ob>"),
        ("P-Visited-Network-ID", g.quote(config.network_id)),
        ("P-Charging-Vector", app.icid.vector(config.network_id)),
        ("Authorization", digest),
    ]


def deregister_on_behalf(app: EpCscf, reg: Registration, now: float) -> None:
    """SPEC §9.6 item 22 (project option, ``[pcscf] deregister_on_close``): the WIC's
    WebSocket closed, so the eP-CSCF deregisters its contact as the WIC would (RFC 3261
    §10.2.2, expires 0; RFC 5626 instance and reg-id), with the same trusted-node
    credentials.  The binding goes on the 2xx; the S-CSCF's NOTIFY follows."""
    request_uri = f"sip:{app.config.domain}"
    contact = f"<{reg.contact}>"
    if reg.instance is not None:
        contact += f";+sip.instance={g.quote(reg.instance)}"
    if reg.reg_id is not None:
        contact += f";reg-id={reg.reg_id}"
    digest = _digest(app, request_uri, reg.impi, reg.authorization_entity)
    request = new_request(
        "REGISTER",
        request_uri,
        from_=f"<{reg.registered_impu}>;tag={new_tag()}",
        to=f"<{reg.registered_impu}>",
        call_id=new_call_id(app.config.host),
        cseq=1,
        contact=contact + ";expires=0",
        extra=[
            ("Expires", "0"),
            ("Require", "path"),
            ("Supported", "path, outbound"),
            *_towards_core(app, reg.flow_token, digest),
        ],
    )

    def on_response(resp: Response, now: float) -> None:
        if 200 <= resp.status < 300:
            app.drop(reg, "deregistered on its behalf")
        elif resp.status >= 300:
            log.warning("eP-CSCF: deregistration of %s on its behalf: %d", reg.impi, resp.status)

    app.core.originate(request, on_response, now=now)


# -- 5. the answer -------------------------------------------------------------------------------


def on_register_response(app: EpCscf, attempt: RegisterAttempt, resp: Response, now: float) -> None:
    """TS 24.229 5.2.2.2 / SPEC §1.4 A.6–A.7: bind on 2xx, nothing otherwise."""
    if not 200 <= resp.status < 300:
        return
    bindings = app.bindings
    flow = attempt.flow
    old = bindings.for_flow(flow)
    if attempt.deregistration:
        if old is not None:
            app.drop(old, "deregistered")
        return
    if attempt.contact is None or not app.is_live(flow):
        return  # a query of the bindings, or the WIC is already gone
    try:
        expires = _granted_expiry(attempt.contact, resp)
        associated = resp.p_associated_uri
        service_route = shared_routes(tuple(str(a) for a in resp.service_routes))
        to_uri = resp.to.uri
    except (ParseError, ValueError) as err:
        log.warning("eP-CSCF: 2xx to REGISTER unreadable, nothing bound: %s", err)
        return
    if expires == 0:
        if old is not None:
            app.drop(old, "contact removed")
        return
    impus = {impu_key(to_uri), *(impu_key(a.uri) for a in associated)}
    contact = attempt.contact
    charging = resp.headers.get("P-Charging-Function-Addresses")
    reg = Registration(
        flow=flow,
        flow_token=attempt.flow_token,
        impi=attempt.impi,
        registered_impu=str(to_uri),
        impus=impus,
        default_impu=str(associated[0].uri) if associated else str(to_uri),
        service_route=service_route,
        record_route=app.flow_uri(attempt.flow_token),
        contact=str(contact.uri),
        instance=contact.params.get("+sip.instance"),
        reg_id=contact.params.get("reg-id"),
        expires_at=now + expires,
        token_expires_at=attempt.token_expires_at,
        authorization_entity=shared(attempt.authorization_entity),
        charging_function_addresses=None if charging is None else shared(charging),
    )
    bindings.bind(reg)
    app.bound(reg)
    log.debug("eP-CSCF: %s bound to %s for %d s", reg.impi, flow, expires)
    if app.config.subscribe_reg_event:
        regevent.subscribe(app, reg, now)


def _granted_expiry(contact: Address, resp: Response) -> int:
    """The registrar's expiry for our contact (RFC 3261 §10.2.4): its ``expires`` in the
    2xx, else the Expires header; a contact the 2xx no longer lists is gone (0)."""
    instance = contact.params.get("+sip.instance")
    reg_id = contact.params.get("reg-id")
    for c in resp.contacts:
        same = (
            instance is not None
            and c.params.get("+sip.instance") == instance
            and c.params.get("reg-id") == reg_id
        ) or str(c.uri) == str(contact.uri)
        if same:
            value = c.params.get("expires")
            if value is not None:
                return int(value)
            break
    else:
        if resp.contacts:
            return 0
    expires = resp.expires
    return expires if expires is not None else 3600
