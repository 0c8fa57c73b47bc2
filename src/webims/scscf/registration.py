"""REGISTER at the S-CSCF (TS 24.229 5.4.1; TS 33.203 Annex U and X.3;
RFC 3261 §10.3; RFC 3327; RFC 5626 §6).

Which procedure (5.4.1.1): a REGISTER whose Authorization has
``integrity-protected="auth-done"`` was authenticated by a trusted node (the
eP-CSCF, TS 24.371 6.1); it is believed only from a trusted Mw peer
(``topology.scscf_trusted``) and gets 403, with nothing asked of the HSS,
from anywhere else; it never falls back to a challenge.  Every other REGISTER
is authenticated with SIP Digest (5.4.1.2.1B): a 401 with a nonce, then the
response checked with the H(A1) of the MAA (:mod:`.digest`).

Then (5.4.1.2.2): SAR REGISTRATION with User-Data-Already-Available 0 for an
initial registration, RE_REGISTRATION with 1 for a re-registration, both with
``Server-Name = topology.scscf_server_name``.  A failed SAA (5001, 5002 or
anything else) is answered 403 and binds nothing.  The User-Data gives the
implicit registration set and its barring; the registered IMPU must be in it
and not barred (403).  The authorisation entity (TS 33.203 X.3 step 6.2), when
the eP-CSCF named one, must be in Allowed-WAF-WWSF-Identities when the HSS
sent a list, and never in ``[scscf] barred_auth_entities`` (the HSS sends no
barred list on Cx).  A failed check is answered 403 and rolled back with SAR
USER_DEREGISTRATION; on a re-registration it ends the registration (NOTIFY
``rejected``), since the entity that vouched for the user is no longer
accepted.

Choices where the specifications leave room:

* The HSS not answering (timeout, no connection) is answered **500** with
  ``Retry-After`` (RFC 3261 §21.5.1): the registrar could not complete the
  request, and 480 would speak of the user.
* A requested expiry below ``[scscf] min_expires`` (other than 0) is answered
  423 with Min-Expires; a granted one is at most the requested one and at most
  ``max_expires``.
* A failed Digest response is answered 403 (and SAR AUTHENTICATION_FAILURE
  when the user was not registered), not a new challenge.
* A REGISTER whose Call-ID matches a binding's and whose CSeq is not higher
  is answered 500 (RFC 3261 §10.3 step 7: "the request fails"; SPEC §9.10 39)
  and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..config import ScscfSettings
from ..diameter.cx import SaAnswer
from ..diameter.cxdefs import ServerAssignmentType
from ..diameter.errors import RequestFailed
from ..hss.userdata import UserDataError, parse_user_data
from ..ims.charging import IcidGenerator
from ..ims.trust import TrustedPeers
from ..sip import grammar as g
from ..sip.auth import DigestCredentials
from ..sip.checks import check_register
from ..sip.errors import SipError
from ..sip.message import Request
from ..sip.proxy import ProxyContext
from .digest import DigestNonces, Verdict, challenge, verify
from .lifecycle import Lifecycle
from .registrar import Contact, Registration, impu_key

if TYPE_CHECKING:
    from ..ims.element import Cscf

__all__ = ["Binding", "RegisterProcedure", "StaleCSeq", "merge_contacts"]

log = logging.getLogger(__name__)

AUTH_DONE = "auth-done"
#: Contacts (flows) one registration may hold at once; one more is refused
#: with 403 (TS 24.229 5.4.1.2.2: the operator's maximum of registration flows).
MAX_CONTACTS = 10
#: Seconds a REGISTER refused for an unreachable HSS is told to wait.
RETRY_AFTER = 30


@dataclass(frozen=True, slots=True)
class Binding:
    """One Contact of a REGISTER, with the expiry it asks for."""

    uri: str
    expires: int
    instance: str | None
    reg_id: int | None


class StaleCSeq(Exception):
    """RFC 3261 §10.3 step 7: same Call-ID, CSeq not higher."""


def requested_bindings(req: Request, default_expires: int) -> list[Binding]:
    """The Contacts of a REGISTER and their expiries (contact ``expires``, else
    the Expires header, else the default; RFC 3261 §10.3 step 6)."""
    header = req.expires
    out = []
    for contact in req.contacts:
        value = contact.params.get("expires")
        expires = int(value) if value is not None else header
        reg_id = contact.params.get("reg-id")
        instance = contact.params.get("+sip.instance")
        out.append(
            Binding(
                uri=str(contact.uri),
                expires=default_expires if expires is None else expires,
                instance=instance,
                reg_id=int(reg_id) if reg_id is not None and g.is_digits(reg_id) else None,
            )
        )
    return out


def merge_contacts(
    current: tuple[Contact, ...],
    bindings: list[Binding],
    *,
    call_id: str,
    cseq: int,
    path: tuple[str, ...],
    now: float,
    max_expires: int,
    initial: bool,
) -> tuple[list[Contact], list[tuple[Contact, str]]]:
    """The contacts after a REGISTER, and those it removed (with the RFC 3680
    event ``unregistered``).  Raises :class:`StaleCSeq`."""
    contacts = [c for c in current if c.expires_at > now]
    removed: list[tuple[Contact, str]] = []
    for b in bindings:
        index = next(
            (i for i, c in enumerate(contacts) if c.same_binding(b.uri, b.instance, b.reg_id)),
            None,
        )
        old = contacts[index] if index is not None else None
        if old is not None and old.call_id == call_id and cseq <= old.cseq:
            raise StaleCSeq(b.uri)
        if b.expires == 0:
            if old is not None and index is not None:
                del contacts[index]
                removed.append((old, "unregistered"))
            continue
        granted = min(b.expires, max_expires)
        expires_at = now + granted
        if old is None:
            contacts.append(
                Contact(
                    uri=b.uri,
                    expires_at=expires_at,
                    registered_at=now,
                    instance=b.instance,
                    reg_id=b.reg_id,
                    path=path,
                    call_id=call_id,
                    cseq=cseq,
                    event="registered" if initial else "created",
                )
            )
        else:
            assert index is not None
            event = "shortened" if expires_at < old.expires_at else "refreshed"
            contacts[index] = replace(
                old,
                uri=b.uri,
                expires_at=expires_at,
                path=path,
                call_id=call_id,
                cseq=cseq,
                event=event,
            )
    return contacts, removed


@dataclass(slots=True)
class _Register:
    """What a REGISTER asks, as read before any Cx request."""

    ctx: ProxyContext
    #: The To IMPU as the HSS is asked about it, and as the store looks it up
    #: (the same text: scheme, user, host; see :func:`impu_key`).
    impu: str
    impu_key: str
    creds: DigestCredentials | None
    trusted_node: bool
    bindings: list[Binding]
    star: bool
    path: tuple[str, ...]

    @property
    def impi(self) -> str | None:
        return self.creds.username if self.creds is not None else None

    @property
    def removes_all(self) -> bool:
        return self.star or (bool(self.bindings) and all(b.expires == 0 for b in self.bindings))


class RegisterProcedure:
    """The S-CSCF's registrar."""

    def __init__(
        self,
        cscf: Cscf,
        lifecycle: Lifecycle,
        settings: ScscfSettings,
        *,
        trusted: TrustedPeers,
        service_route: str,
        icid: IcidGenerator,
        nonces: DigestNonces | None = None,
        max_contacts: int = MAX_CONTACTS,
    ) -> None:
        self.cscf = cscf
        self.lifecycle = lifecycle
        self.store = lifecycle.store
        self.settings = settings
        self.trusted = trusted
        self.service_route = service_route
        self.server_name = cscf.topology.scscf_server_name
        self.domain = cscf.topology.domain
        self.icid = icid
        self.nonces = nonces or DigestNonces()
        self.max_contacts = max_contacts
        self.barred_entities = frozenset(settings.barred_auth_entities)

    # -- before any Cx request --------------------------------------------------------
    def on_register(self, ctx: ProxyContext, now: float) -> None:
        req = ctx.request
        try:
            check_register(req)
            to_uri = req.to.uri
            bindings = requested_bindings(req, self.settings.default_expires)
            path = tuple(str(p) for p in req.paths)
        except (SipError, ValueError) as err:
            ctx.respond(400, str(err)[:80] or None, now=now)
            return
        too_brief = [b for b in bindings if 0 < b.expires < self.settings.min_expires]
        if too_brief:
            ctx.respond(423, headers=[("Min-Expires", str(self.settings.min_expires))], now=now)
            return
        creds = next((c for c in req.authorization if isinstance(c, DigestCredentials)), None)
        trusted_node = creds is not None and creds.integrity_protected == AUTH_DONE
        if trusted_node and ctx.source not in self.trusted:
            # TS 33.203 U.1: auth-done is believed from the trusted Mw peers
            # only; never answered with a challenge instead.
            log.warning("auth-done REGISTER from untrusted %s refused", ctx.source)
            ctx.respond(403, "Forbidden (auth-done from an untrusted peer)", now=now)
            return
        if trusted_node and not (creds and creds.username):
            ctx.respond(403, "Forbidden (no private user identity)", now=now)
            return
        impu = impu_key(to_uri)
        info = _Register(
            ctx=ctx,
            impu=impu,
            impu_key=impu,
            creds=creds,
            trusted_node=trusted_node,
            bindings=bindings,
            star=req.contact_star,
            path=path,
        )
        self.cscf.spawn(self._register(info))

    # -- the procedure ----------------------------------------------------------------
    async def _register(self, info: _Register) -> None:
        async with self.lifecycle.locks.hold(info.impi or info.impu_key):
            try:
                await self._locked(info)
            except RequestFailed as err:
                log.warning("REGISTER for %s: HSS unavailable: %s", info.impu, err)
                self._respond(
                    info, 500, "HSS Unavailable", headers=[("Retry-After", str(RETRY_AFTER))]
                )
            except Exception:
                log.exception("REGISTER for %s failed", info.impu)
                self._respond(info, 500)

    async def _locked(self, info: _Register) -> None:
        existing = await self.store.get(info.impu_key)
        if existing is not None and existing.is_barred(info.impu_key):
            self._respond(info, 403, "Forbidden (barred public identity)")
            return
        if not info.trusted_node and not await self._digest(info, existing):
            return
        impi = info.impi
        assert impi is not None, "set by auth-done or Digest"
        if existing is not None and existing.impi != impi:
            existing = None  # another IMPI's registration of a shared IMPU
        if not info.bindings and not info.star:
            # A query (RFC 3261 §10.2.3): the current bindings, nothing asked of the HSS.
            if existing is None:
                self._respond(info, 200)
            else:
                self._ok(info, existing)
            return
        if info.removes_all:
            await self._deregister(info, impi, existing)
            return
        await self._bind(info, impi, existing)

    async def _bind(self, info: _Register, impi: str, existing: Registration | None) -> None:
        now = self.cscf.now()
        req = info.ctx.request
        try:
            contacts, removed = merge_contacts(
                existing.contacts if existing is not None else (),
                info.bindings,
                call_id=req.call_id,
                cseq=req.cseq.seq,
                path=info.path,
                now=now,
                max_expires=self.settings.max_expires,
                initial=existing is None,
            )
        except StaleCSeq:
            self._respond(info, 500, "CSeq Out Of Order")
            return
        if len(contacts) > self.max_contacts:
            self._respond(info, 403, "Forbidden (too many registration flows)")
            return
        cx = self.cscf.cx
        if cx is None:
            raise RequestFailed("no Cx connection yet")
        reregistration = existing is not None
        kind = (
            ServerAssignmentType.RE_REGISTRATION
            if reregistration
            else ServerAssignmentType.REGISTRATION
        )
        saa = await cx.sar(
            [info.impu], self.server_name, kind, impi=impi, user_data_available=reregistration
        )
        if not saa.result.success:
            log.info("SAR %s for %s answered %s", kind.name, info.impu, saa.result)
            self._respond(info, 403, "Forbidden (HSS refused the assignment)")
            return
        base = existing if existing is not None else Registration(impi=impi, impus=(info.impu,))
        registration = self._from_saa(base, saa)
        if registration is None:
            await self._refuse(info, existing, impi, 500, "Server Internal Error (User-Data)")
            return
        if not registration.has(info.impu_key):
            await self._refuse(info, existing, impi, 403, "Forbidden (identity not in the set)")
            return
        if registration.is_barred(info.impu_key):
            await self._refuse(info, existing, impi, 403, "Forbidden (barred public identity)")
            return
        entity = info.creds.authorization_entity if info.trusted_node and info.creds else None
        refusal = self._check_entity(entity, registration)
        if refusal is not None:
            log.info("REGISTER for %s refused: %s", info.impu, refusal)
            await self._refuse(info, existing, impi, 403, f"Forbidden ({refusal})")
            return
        registration = replace(
            registration,
            contacts=tuple(contacts),
            authorization_entity=entity,
            digest=not info.trusted_node,
        )
        await self.lifecycle.commit(registration, previous_key=existing.key if existing else None)
        self._ok(info, registration)
        if existing is not None:
            self.lifecycle.notifier.notify(registration, removed=removed)

    def _from_saa(self, base: Registration, saa: SaAnswer) -> Registration | None:
        """The registration with what the SAA downloaded (TS 29.228 6.1.2)."""
        out = base
        if saa.user_data is not None:
            try:
                data = parse_user_data(saa.user_data)
            except UserDataError as err:
                log.warning("SAA User-Data for %s: %s", base.impi, err)
                return None
            out = replace(out, impus=data.impus, barred=data.barred, user_data=saa.user_data)
        elif base.user_data is None:
            log.warning("SAA for %s without User-Data", base.impi)
            return None
        if saa.allowed_waf or saa.allowed_wwsf:
            out = replace(out, allowed_waf=saa.allowed_waf, allowed_wwsf=saa.allowed_wwsf)
        if saa.charging is not None:
            out = replace(out, ccf=saa.charging.ccf, ecf=saa.charging.ecf)
        return out

    def _check_entity(self, entity: str | None, registration: Registration) -> str | None:
        """TS 33.203 X.3 step 6.2: None if the authorisation entity may vouch
        for this subscription, else why not."""
        if entity is None:
            return None
        if entity in self.barred_entities:
            return "authorization entity barred"
        allowed = (*registration.allowed_waf, *registration.allowed_wwsf)
        if allowed and entity not in allowed:
            return "authorization entity not allowed"
        return None

    async def _refuse(
        self,
        info: _Register,
        existing: Registration | None,
        impi: str,
        status: int,
        reason: str,
    ) -> None:
        """Answer ``status`` and undo the assignment the SAR made."""
        if existing is None:
            await self.lifecycle.deregistration_sar(
                impi, info.impu, ServerAssignmentType.USER_DEREGISTRATION
            )
        else:
            await self.lifecycle.drop(existing)
            await self.lifecycle.sar(existing, ServerAssignmentType.USER_DEREGISTRATION)
            self.lifecycle.notify_end(existing, "rejected", "rejected")
        self._respond(info, status, reason)

    async def _deregister(self, info: _Register, impi: str, existing: Registration | None) -> None:
        """5.4.1.4: the user removes contacts; with none left, SAR
        USER_DEREGISTRATION, 200 OK, then the last NOTIFY (SPEC §9.2 7)."""
        if existing is None:
            await self.lifecycle.deregistration_sar(
                impi, info.impu, ServerAssignmentType.USER_DEREGISTRATION
            )
            self._respond(info, 200)
            return
        now = self.cscf.now()
        req = info.ctx.request
        call_id, cseq = req.call_id, req.cseq.seq
        try:
            if info.star:
                if any(c.call_id == call_id and cseq <= c.cseq for c in existing.contacts):
                    raise StaleCSeq("*")
                remaining: list[Contact] = []
                removed = [(c, "unregistered") for c in existing.contacts]
            else:
                remaining, removed = merge_contacts(
                    existing.contacts,
                    info.bindings,
                    call_id=call_id,
                    cseq=cseq,
                    path=info.path,
                    now=now,
                    max_expires=self.settings.max_expires,
                    initial=False,
                )
        except StaleCSeq:
            self._respond(info, 500, "CSeq Out Of Order")
            return
        if remaining:
            changed = existing.with_contacts(remaining)
            await self.lifecycle.commit(changed)
            self._ok(info, changed)
            self.lifecycle.notifier.notify(changed, removed=removed)
            return
        await self.lifecycle.drop(existing)
        await self.lifecycle.sar(existing, ServerAssignmentType.USER_DEREGISTRATION)
        self._ok(info, existing.with_contacts([]))
        self.lifecycle.notify_end(existing, "unregistered", "noresource")

    # -- SIP Digest (5.4.1.2.1B, 5.4.1.2.2B) ------------------------------------------
    async def _digest(self, info: _Register, existing: Registration | None) -> bool:
        """True when the REGISTER carries a valid Digest response; else it has
        been answered (401 challenge or 403)."""
        creds = info.creds
        now = self.cscf.now()
        state = self.nonces.get(creds.nonce if creds is not None else None, now)
        username = creds.username if creds is not None else None
        cx = self.cscf.cx
        if cx is None:
            raise RequestFailed("no Cx connection yet")
        if creds is None or state is None:
            realm, ha1 = self.domain, None
            if username:
                maa = await cx.mar(username, info.impu, self.server_name)
                if not maa.result.success or not maa.items:
                    log.info("MAR for %s answered %s", username, maa.result)
                    self._respond(info, 403)
                    return False
                realm, ha1 = maa.items[0].realm, maa.items[0].ha1
            nonce = self.nonces.issue(realm, info.impu_key, now, impi=username, ha1=ha1)
            stale = creds is not None and bool(creds.nonce)
            self._respond(
                info, 401, headers=[("WWW-Authenticate", challenge(realm, nonce, stale=stale))]
            )
            return False
        if not username or state.impu != info.impu_key:
            self._respond(info, 403)
            return False
        if state.ha1 is None or state.impi != username:
            maa = await cx.mar(username, info.impu, self.server_name)
            if not maa.result.success or not maa.items:
                self._respond(info, 403)
                return False
            state.impi, state.ha1, state.realm = username, maa.items[0].ha1, maa.items[0].realm
        assert state.ha1 is not None
        verdict = Verdict.WRONG
        if creds.realm == state.realm:
            verdict = verify(creds, state, state.ha1, "REGISTER")
        if verdict is Verdict.REPLAYED:
            log.info("Digest response for %s replayed: challenged again", username)
            nonce = self.nonces.issue(state.realm, info.impu_key, now, impi=username, ha1=state.ha1)
            again = challenge(state.realm, nonce, stale=True)
            self._respond(info, 401, headers=[("WWW-Authenticate", again)])
            return False
        if verdict is not Verdict.VALID:
            log.info("Digest response for %s does not verify", username)
            if existing is None:
                await self.lifecycle.deregistration_sar(
                    username, info.impu, ServerAssignmentType.AUTHENTICATION_FAILURE
                )
            self._respond(info, 403, "Forbidden (authentication failed)")
            return False
        return True

    # -- answers ---------------------------------------------------------------------
    def _respond(
        self,
        info: _Register,
        status: int,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        info.ctx.respond(status, reason, headers=headers, now=self.cscf.now())

    def _ok(self, info: _Register, registration: Registration) -> None:
        """The 200 OK of 5.4.1.2.2F (SPEC §2.4)."""
        req = info.ctx.request
        now = self.cscf.now()
        headers: list[tuple[str, str]] = []
        options = set(req.supported) | set(req.require)
        if info.path and "path" in options:
            headers += [("Path", p) for p in info.path]
        headers.append(("Service-Route", f"<{self.service_route}>"))
        if registration.contacts:
            associated = ", ".join(f"<{u}>" for u in registration.unbarred)
            if associated:
                headers.append(("P-Associated-URI", associated))
        for contact in registration.live_contacts(now):
            value = f"<{contact.uri}>;expires={contact.remaining(now)}"
            if contact.instance is not None:
                value += f";+sip.instance={g.quote(contact.instance)}"
            if contact.reg_id is not None:
                value += f";reg-id={contact.reg_id}"
            headers.append(("Contact", value))
        if any(b.reg_id is not None for b in info.bindings) and registration.contacts:
            headers.append(("Require", "outbound"))
        if registration.ccf or registration.ecf:
            parts = [f"ccf={g.quote(c)}" for c in registration.ccf]
            parts += [f"ecf={g.quote(e)}" for e in registration.ecf]
            headers.append(("P-Charging-Function-Addresses", ";".join(parts)))
        headers.append(("P-Charging-Vector", self._charging_vector(req)))
        info.ctx.respond(200, headers=headers, now=now)

    def _charging_vector(self, req: Request) -> str:
        """The request's icid and orig-ioi with our term-ioi (TS 24.229 5.4.1.2.2F)."""
        try:
            pcv = req.p_charging_vector
        except SipError:
            pcv = None
        if pcv is None:
            return f"{self.icid.vector()};term-ioi={self.domain}"
        value = f'icid-value="{pcv.get("icid-value")}"'
        orig = pcv.get("orig-ioi")
        if orig:
            value += f";orig-ioi={orig}"
        return value + f";term-ioi={self.domain}"
