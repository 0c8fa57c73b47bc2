"""The S-CSCF as notifier of the reg event package (RFC 3680; TS 24.229
5.4.2.1; RFC 6665 for the subscription dialog).

A subscriber is accepted when it is the user (an asserted identity of the
implicit registration set), or the P-CSCF on the registration's Path (the
asserted identity's host is a Path URI's host), TS 24.229 5.4.2.1.1; there
are no application servers in this deployment.  An asserted identity counts
only when the request came from a trusted Mw peer (the trust domain of RFC
3325).  Anyone else gets 403.

The 200 OK grants at most the registration's remaining lifetime (24.228 R3)
and is followed at once by a NOTIFY with the full state, ``version="0"``; each
later NOTIFY of the subscription has the next version.  NOTIFYs go in the
subscription's dialog: Request-URI the subscriber's Contact, Route the
SUBSCRIBE's Record-Route set (RFC 6665 §4.1.2.4, RFC 3261 §12.1.1).

The body lists one ``<registration>`` per non-barred IMPU of the set (a barred
IMPU is never shown to the UE or the P-CSCF, as in P-Associated-URI; TS
24.229 5.4.2.1.2), each with every contact.  A contact that just went away is
listed once more with ``state="terminated"`` and the event that removed it
(``unregistered``, ``expired``, ``deactivated``, ``rejected``).  When the
registration ends, the NOTIFY carries ``Subscription-State: terminated``.

Subscriptions live in this process (a restart loses them; the subscribers
re-subscribe when their subscription or registration is refreshed).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from ..sip.message import Request, Response
from ..sip.proxy import ProxyContext, ProxyCore
from ..sip.reginfo import REGINFO, REGINFO_NS
from ..sip.uac import new_request
from ..sip.uri import SipURI
from .registrar import Contact, Registration, impu_key

__all__ = ["REGINFO", "RegEventNotifier", "Subscription", "reginfo_xml"]

log = logging.getLogger(__name__)

#: RFC 3680 §3.2: the default subscription duration.
DEFAULT_EXPIRES = 3761
#: Seconds a subscription is kept past its expiry before the ``timeout``
#: NOTIFY: a subscription never outlives its registration, and when both end
#: together the registration's last NOTIFY (``expired``) is the one to send.
EXPIRY_GRACE = 1.0


def _id(*parts: str) -> str:
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=6).hexdigest()


def reginfo_xml(
    registration: Registration,
    version: int,
    now: float,
    *,
    removed: Iterable[tuple[Contact, str]] = (),
    ended: bool = False,
) -> bytes:
    """The full-state ``reginfo`` document (RFC 3680 §5.3) of a registration.

    ``removed`` are contacts that just left, with the event that removed them;
    ``ended`` marks every registration ``terminated``.  Written directly, one
    NOTIFY at a time, in the bytes ElementTree would write for the same tree.
    """
    gone = list(removed)
    live = () if ended else registration.live_contacts(now)
    out = [
        "<?xml version='1.0' encoding='utf-8'?>\n",
        f'<reginfo xmlns="{REGINFO_NS}" version="{version}" state="full"',
    ]
    if not registration.unbarred:
        out.append(" />")
    else:
        out.append(">")
        state = "active" if live else "terminated"
        for impu in registration.unbarred:
            out.append(f'<registration aor="{_attr(impu)}" id="r{_id(impu)}" state="{state}"')
            if not live and not gone:
                out.append(" />")
                continue
            out.append(">")
            for contact in live:
                _contact(out, impu, contact, state="active", event=contact.event, now=now)
            for contact, event in gone:
                _contact(out, impu, contact, state="terminated", event=event, now=now)
            out.append("</registration>")
        out.append("</reginfo>")
    return "".join(out).encode("utf-8")


def _contact(
    out: list[str], impu: str, contact: Contact, *, state: str, event: str, now: float
) -> None:
    cid = _id(impu, contact.instance or contact.uri, str(contact.reg_id))
    out.append(f'<contact id="c{cid}" state="{state}" event="{_attr(event)}"')
    if state == "active":
        out.append(
            f' expires="{contact.remaining(now)}"'
            f' duration-registered="{max(0, int(now - contact.registered_at))}"'
        )
    if contact.call_id:
        out.append(f' callid="{_attr(contact.call_id)}" cseq="{contact.cseq}"')
    out.append(f"><uri>{_text(contact.uri)}</uri>")
    if contact.instance is not None:
        out.append(f'<unknown-param name="+sip.instance">{_text(contact.instance)}</unknown-param>')
    out.append("</contact>")


def _text(value: str) -> str:
    """XML character data (the escaping of ElementTree)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(value: str) -> str:
    """An XML attribute value between double quotes (the escaping of ElementTree)."""
    value = _text(value).replace('"', "&quot;")
    return value.replace("\r", "&#13;").replace("\n", "&#10;").replace("\t", "&#09;")


@dataclass(slots=True, eq=False)
class Subscription:
    """One reg event subscription and its dialog (RFC 6665 §4.1)."""

    registration_key: str
    call_id: str
    local_tag: str
    remote_tag: str
    #: Our From (the SUBSCRIBE's To, with our tag) and To (its From).
    local_header: str
    remote_header: str
    remote_target: str
    route_set: tuple[str, ...]
    expires_at: float
    local_cseq: int = 0
    version: int = 0
    subscriber: str = ""
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def dialog(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)


class RegEventNotifier:
    """The subscriptions to the registrations of this S-CSCF, and their NOTIFYs."""

    def __init__(
        self,
        core: Callable[[], ProxyCore],
        now: Callable[[], float],
        flush: Callable[[], None],
        contact: str,
        lookup: Callable[[str], Awaitable[Registration | None]],
    ) -> None:
        #: The proxy core NOTIFYs are sent through (made after this notifier).
        self._core = core
        self._lookup = lookup
        self._tasks: set[asyncio.Task[None]] = set()
        self._now = now
        self._flush = flush
        #: Our Contact in the dialogs (the S-CSCF's SIP URI).
        self.contact = contact
        self._by_dialog: dict[tuple[str, str, str], Subscription] = {}
        self._by_registration: dict[str, list[Subscription]] = {}
        self._flush_pending = False

    # -- SUBSCRIBE ------------------------------------------------------------------
    @staticmethod
    def authorized(request: Request, registration: Registration, trusted: bool) -> str | None:
        """Who subscribes, if allowed (TS 24.229 5.4.2.1.1): the user or the
        P-CSCF on the Path; None otherwise."""
        if not trusted:
            return None
        path_hosts = registration.path_hosts()
        for asserted in request.p_asserted_identity:
            key = impu_key(asserted.uri)
            if registration.has(key) and not registration.is_barred(key):
                return str(asserted.uri)
            if isinstance(asserted.uri, SipURI) and asserted.uri.host_bare in path_hosts:
                return str(asserted.uri)
        return None

    def subscribe(
        self, ctx: ProxyContext, registration: Registration, subscriber: str, now: float
    ) -> None:
        """Accept a new SUBSCRIBE and send the first NOTIFY."""
        req = ctx.request
        requested = req.expires
        expires = min(
            DEFAULT_EXPIRES if requested is None else requested, registration.remaining(now)
        )
        contacts = req.contacts
        if not contacts:
            ctx.respond(400, "Contact Required", now=now)
            return
        headers = [("Expires", str(expires)), ("Contact", f"<{self.contact}>")]
        headers += [("Record-Route", v) for v in req.headers.get_all("Record-Route")]
        resp = ctx.respond(200, headers=headers, now=now)
        if resp is None or resp.to_tag is None or req.from_tag is None:
            return
        to_value = req.headers.get("To") or ""
        sub = Subscription(
            registration_key=registration.key,
            call_id=req.call_id,
            local_tag=resp.to_tag,
            remote_tag=req.from_tag,
            local_header=f"{to_value};tag={resp.to_tag}",
            remote_header=req.headers.get("From") or "",
            remote_target=str(contacts[0].uri),
            route_set=tuple(f"<{rr.uri}>" for rr in req.record_routes),
            expires_at=now + expires,
            subscriber=subscriber,
        )
        if expires == 0:  # a fetch (RFC 6665 §4.4.3): one NOTIFY, then nothing
            self._send(sub, registration, now, terminated="timeout")
            return
        self._add(sub)
        self._send(sub, registration, now)

    def find(self, req: Request) -> Subscription | None:
        """The subscription whose dialog an in-dialog request belongs to."""
        return self._by_dialog.get((req.call_id, req.to_tag or "", req.from_tag or ""))

    def refresh(self, ctx: ProxyContext, registration: Registration | None, now: float) -> bool:
        """A SUBSCRIBE within an existing dialog (refresh or unsubscribe); False
        if it matches none."""
        sub = self.find(ctx.request)
        if sub is None:
            return False
        requested = ctx.request.expires
        expires = DEFAULT_EXPIRES if requested is None else requested
        if registration is not None:
            expires = min(expires, registration.remaining(now))
        ctx.respond(
            200, headers=[("Expires", str(expires)), ("Contact", f"<{self.contact}>")], now=now
        )
        if registration is None or expires == 0:
            self._drop(sub)
            if registration is not None:
                self._send(sub, registration, now, terminated="timeout")
            return True
        sub.expires_at = now + expires
        self._arm(sub)
        self._send(sub, registration, now)
        return True

    # -- NOTIFY ---------------------------------------------------------------------
    def notify(
        self,
        registration: Registration,
        *,
        removed: Iterable[tuple[Contact, str]] = (),
        terminated: str | None = None,
    ) -> list[asyncio.Future[int]]:
        """Tell every subscriber of ``registration`` its new state.

        ``terminated`` (an RFC 6665 reason: ``noresource``, ``deactivated``,
        ``rejected``) ends the subscriptions.  Returns a future per NOTIFY,
        done with the status of its final response.
        """
        subs = list(self._by_registration.get(registration.key, ()))
        now = self._now()
        gone = list(removed)
        futures = []
        for sub in subs:
            if terminated is not None:
                self._drop(sub)
            futures.append(self._send(sub, registration, now, removed=gone, terminated=terminated))
        return futures

    def rekey(self, old: str, new: str) -> None:
        """The registration's name changed (a PPR gave the set another default IMPU)."""
        subs = self._by_registration.pop(old, None)
        if subs:
            for sub in subs:
                sub.registration_key = new
            self._by_registration.setdefault(new, []).extend(subs)

    def subscriptions(self, registration_key: str) -> list[Subscription]:
        return list(self._by_registration.get(registration_key, ()))

    @property
    def subscription_count(self) -> int:
        """The number of reg event subscriptions (dialogs) held."""
        return len(self._by_dialog)

    def _send(
        self,
        sub: Subscription,
        registration: Registration,
        now: float,
        *,
        removed: Iterable[tuple[Contact, str]] = (),
        terminated: str | None = None,
    ) -> asyncio.Future[int]:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        body = reginfo_xml(
            registration,
            sub.version,
            now,
            removed=removed,
            ended=terminated is not None,
        )
        sub.version += 1
        sub.local_cseq += 1
        if terminated is not None:
            state = f"terminated;reason={terminated}"
        else:
            state = f"active;expires={max(0, int(sub.expires_at - now))}"
        request = new_request(
            "NOTIFY",
            sub.remote_target,
            from_=sub.local_header,
            to=sub.remote_header,
            call_id=sub.call_id,
            cseq=sub.local_cseq,
            contact=f"<{self.contact}>",
            route=list(sub.route_set),
            extra=[("Event", "reg"), ("Subscription-State", state)],
            body=body,
            content_type=REGINFO,
        )

        def on_response(response: Response, now: float) -> None:
            if response.status < 200:
                return
            if response.status >= 300:
                # RFC 6665 §4.2.2: a failure (481 above all) ends the subscription.
                log.info("NOTIFY to %s answered %d", sub.subscriber, response.status)
                self._drop(sub)
            if not done.done():
                done.set_result(response.status)

        self._core().originate(request, on_response, now=now)
        self._schedule_flush()
        return done

    # -- bookkeeping ------------------------------------------------------------------
    def _add(self, sub: Subscription) -> None:
        self._by_dialog[sub.dialog] = sub
        self._by_registration.setdefault(sub.registration_key, []).append(sub)
        self._arm(sub)

    def _drop(self, sub: Subscription) -> None:
        if self._by_dialog.pop(sub.dialog, None) is None:
            return
        if sub.timer is not None:
            sub.timer.cancel()
            sub.timer = None
        subs = self._by_registration.get(sub.registration_key)
        if subs is not None:
            subs.remove(sub)
            if not subs:
                del self._by_registration[sub.registration_key]

    def _arm(self, sub: Subscription) -> None:
        """RFC 6665 §4.2.2: when a subscription runs out, a last NOTIFY
        (``terminated;reason=timeout``)."""
        if sub.timer is not None:
            sub.timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, sub.expires_at + EXPIRY_GRACE - self._now())
        sub.timer = loop.call_later(delay, self._timed_out, sub)

    def _timed_out(self, sub: Subscription) -> None:
        sub.timer = None
        self._drop(sub)

        async def last_notify() -> None:
            registration = await self._lookup(sub.registration_key)
            if registration is not None:
                self._send(sub, registration, self._now(), terminated="timeout")

        task = asyncio.get_running_loop().create_task(last_notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_flush(self) -> None:
        """Send what :meth:`ProxyCore.originate` queued, once the current
        callback is over (safe both inside and outside the core's callbacks)."""
        if self._flush_pending:
            return
        self._flush_pending = True

        def run() -> None:
            self._flush_pending = False
            self._flush()

        asyncio.get_running_loop().call_soon(run)

    def close(self) -> None:
        for sub in list(self._by_dialog.values()):
            self._drop(sub)
        for task in self._tasks:
            task.cancel()
