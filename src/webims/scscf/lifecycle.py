"""What changes or ends a registration besides a REGISTER (TS 24.229
5.4.1.5–5.4.1.7, TS 29.228 6.1.3/6.1.4/6.5.2.5):

* expiry: a timer per registration, at its earliest contact expiry; expired
  contacts are dropped with ``event="expired"``, and when none is left the
  registration ends with SAR TIMEOUT_DEREGISTRATION (5.4.1.7);
* administrative deregistration: NOTIFY ``deactivated`` (or ``rejected``),
  then SAR ADMINISTRATIVE_DEREGISTRATION (5.4.1.5, 24.228 R5);
* HSS-initiated deregistration (RTR): NOTIFY ``rejected`` for
  PERMANENT_TERMINATION, ``deactivated`` for the others, the subscribers'
  answers awaited (a bounded time), then RTA success (5.4.1.6, 24.228 R6);
* profile push (PPR): the stored User-Data, charging information and allowed
  WAF/WWSF identities replaced by those the PPR carries (an absent part is
  unchanged, TS 29.228 6.1.4); the next re-registration is checked against
  them (SPEC §9.4 15: the registration is not ended at once, a local choice);
* a failed flow (430 from the edge proxy, RFC 5626 §5.3): that contact is
  dropped (``event="deactivated"``); the last one ends the registration like
  an expiry.

Every change to one IMPI's registrations holds that IMPI's lock, so a
REGISTER and an expiry or an RTR never interleave their store updates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from ..diameter.cx import PpRequest, RtRequest
from ..diameter.cxdefs import (
    DIAMETER_SUCCESS,
    CxResult,
    DeregistrationReason,
    ExperimentalResult,
    ServerAssignmentType,
)
from ..diameter.errors import RequestFailed
from ..diameter.node import Peer
from ..hss.userdata import UserDataError, parse_user_data
from .regevent import RegEventNotifier
from .registrar import Contact, RegistrarStore, Registration, impu_key_text

if TYPE_CHECKING:
    from ..ims.element import Cscf

__all__ = ["KeyedLocks", "Lifecycle"]

log = logging.getLogger(__name__)

#: How long an RTR or an administrative deregistration waits for the
#: subscribers' answers to the NOTIFY before going on.
NOTIFY_WAIT = 2.0


class KeyedLocks:
    """One :class:`asyncio.Lock` per key, forgotten when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]


class Lifecycle:
    """The registrations' timers and every deregistration not made by REGISTER."""

    def __init__(
        self,
        cscf: Cscf,
        store: RegistrarStore,
        notifier: RegEventNotifier,
        server_name: str,
    ) -> None:
        self.cscf = cscf
        self.store = store
        self.notifier = notifier
        self.server_name = server_name
        self.locks = KeyedLocks()
        self._timers: dict[str, asyncio.TimerHandle] = {}

    # -- storing ---------------------------------------------------------------------
    async def commit(self, registration: Registration, previous_key: str | None = None) -> None:
        """Store a registration that has contacts and arm its expiry timer."""
        if previous_key is not None and previous_key != registration.key:
            await self.store.remove(previous_key)
            self._disarm(previous_key)
            self.notifier.rekey(previous_key, registration.key)
        await self.store.put(registration)
        self._arm(registration)

    async def drop(self, registration: Registration) -> None:
        await self.store.remove(registration.key)
        self._disarm(registration.key)

    def notify_end(
        self, registration: Registration, event: str, reason: str
    ) -> list[asyncio.Future[int]]:
        """The last NOTIFY: every contact terminated with ``event``, the
        subscriptions ended with ``reason``."""
        removed = [(c, event) for c in registration.contacts]
        return self.notifier.notify(registration, removed=removed, terminated=reason)

    async def sar(self, registration: Registration, kind: ServerAssignmentType) -> CxResult | None:
        """A deregistration SAR for the set (the HSS deregisters the whole IRS
        from one of its IMPUs); None when the HSS could not be asked."""
        return await self.deregistration_sar(registration.impi, registration.impus[0], kind)

    async def deregistration_sar(
        self, impi: str, impu: str, kind: ServerAssignmentType
    ) -> CxResult | None:
        cx = self.cscf.cx
        if cx is None:
            return None
        try:
            answer = await cx.sar([impu], self.server_name, kind, impi=impi)
        except RequestFailed as err:
            log.warning("SAR %s for %s not answered: %s", kind.name, impi, err)
            return None
        if not answer.result.success:
            log.warning("SAR %s for %s answered %s", kind.name, impi, answer.result)
        return answer.result

    # -- expiry (5.4.1.7) ------------------------------------------------------------
    def _arm(self, registration: Registration) -> None:
        when = registration.next_expiry()
        self._disarm(registration.key)
        if when is None:
            return
        loop = asyncio.get_running_loop()
        key = registration.key
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _disarm(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.cscf.spawn(self.expire(key))

    async def expire(self, key: str) -> None:
        """Drop the contacts of registration ``key`` that have expired."""
        registration = await self.store.get(key)
        if registration is None:
            return
        async with self.locks.hold(registration.impi):
            registration = await self.store.get(key)
            if registration is None:
                return
            now = self.cscf.now()
            expired = [c for c in registration.contacts if c.expires_at <= now]
            live = registration.live_contacts(now)
            if not expired:
                self._arm(registration)
                return
            if live:
                changed = registration.with_contacts(live)
                await self.commit(changed)
                self.notifier.notify(changed, removed=[(c, "expired") for c in expired])
                return
            await self.drop(registration)
            self.notify_end(registration, "expired", "noresource")
            await self.sar(registration, ServerAssignmentType.TIMEOUT_DEREGISTRATION)

    # -- a failed flow (RFC 5626 §5.3) ----------------------------------------------
    async def flow_failed(self, key: str, contact: Contact) -> None:
        registration = await self.store.get(key)
        if registration is None:
            return
        async with self.locks.hold(registration.impi):
            registration = await self.store.get(key)
            if registration is None:
                return
            rest = [c for c in registration.contacts if c != contact]
            if len(rest) == len(registration.contacts):
                return
            if rest:
                changed = registration.with_contacts(rest)
                await self.commit(changed)
                self.notifier.notify(changed, removed=[(contact, "deactivated")])
                return
            await self.drop(registration)
            self.notify_end(registration, "deactivated", "deactivated")
            await self.sar(registration, ServerAssignmentType.TIMEOUT_DEREGISTRATION)

    # -- network-initiated (5.4.1.5, 5.4.1.6) ---------------------------------------
    async def administrative_deregistration(self, impu: str, event: str = "deactivated") -> bool:
        """Deregister the set ``impu`` belongs to: NOTIFY ``event``
        (``deactivated``: re-register; ``rejected``: do not), then SAR
        ADMINISTRATIVE_DEREGISTRATION.  False if it is not registered here."""
        registration = await self.store.get(impu_key_text(impu))
        if registration is None:
            return False
        async with self.locks.hold(registration.impi):
            registration = await self.store.get(registration.key)
            if registration is None:
                return False
            await self.drop(registration)
            await self._await_notifies(self.notify_end(registration, event, event))
            await self.sar(registration, ServerAssignmentType.ADMINISTRATIVE_DEREGISTRATION)
        return True

    async def on_rtr(self, rtr: RtRequest, peer: Peer) -> CxResult:
        """Registration-Termination-Request (TS 29.228 6.1.3)."""
        event = (
            "rejected"
            if rtr.reason == DeregistrationReason.PERMANENT_TERMINATION
            else "deactivated"
        )
        found: dict[str, Registration] = {}
        for impu in rtr.public_identities:
            registration = await self.store.get(impu_key_text(impu))
            if registration is not None:
                found[registration.key] = registration
        if not rtr.public_identities:
            for impi in (rtr.user_name, *rtr.associated_identities):
                for registration in await self.store.by_impi(impi):
                    found[registration.key] = registration
        waits: list[asyncio.Future[int]] = []
        for registration in found.values():
            async with self.locks.hold(registration.impi):
                current = await self.store.get(registration.key)
                if current is None:
                    continue
                await self.drop(current)
                waits += self.notify_end(current, event, event)
        await self._await_notifies(waits)
        log.info(
            "RTR %s for %s: %d registration(s) ended", rtr.reason.name, rtr.user_name, len(found)
        )
        return CxResult.base(DIAMETER_SUCCESS)

    async def on_ppr(self, ppr: PpRequest, peer: Peer) -> CxResult:
        """Push-Profile-Request (TS 29.228 6.1.4): new User-Data, charging
        information or allowed WAF/WWSF identities for the IMPI's registrations."""
        registrations = await self.store.by_impi(ppr.user_name)
        if not registrations:
            return CxResult.exp(ExperimentalResult.DIAMETER_ERROR_USER_UNKNOWN)
        parsed = None
        if ppr.user_data is not None:
            try:
                parsed = parse_user_data(ppr.user_data)
            except UserDataError as err:
                log.warning("PPR for %s: %s", ppr.user_name, err)
                return CxResult.exp(ExperimentalResult.DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA)
        for registration in registrations:
            async with self.locks.hold(registration.impi):
                current = await self.store.get(registration.key)
                if current is None:
                    continue
                changed = current
                if parsed is not None and changed.has(impu_key_text(parsed.impus[0])):
                    changed = replace(
                        changed,
                        impus=parsed.impus,
                        barred=parsed.barred,
                        user_data=ppr.user_data,
                    )
                if ppr.allowed_waf or ppr.allowed_wwsf:
                    changed = replace(
                        changed, allowed_waf=ppr.allowed_waf, allowed_wwsf=ppr.allowed_wwsf
                    )
                if ppr.charging is not None:
                    changed = replace(changed, ccf=ppr.charging.ccf, ecf=ppr.charging.ecf)
                await self.commit(changed, previous_key=current.key)
                if changed.unbarred != current.unbarred:
                    self.notifier.notify(changed)
        return CxResult.base(DIAMETER_SUCCESS)

    async def _await_notifies(self, futures: list[asyncio.Future[int]]) -> None:
        if futures:
            await asyncio.wait(futures, timeout=NOTIFY_WAIT)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
