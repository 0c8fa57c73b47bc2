"""What ends or changes a registration besides a REGISTER: expiry (SPEC §9.3
10, 11), administrative deregistration (§9.4 12), the HSS's RTR (§9.4 13)
and PPR (§9.4 15)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from webims.diameter.cxdefs import DeregistrationReason, ServerAssignmentType
from webims.hss.model import RegistrationState
from webims.hss.procedures import RtrRequest

from .conftest import IRS_IMPI, IRS_IMPUS, USER1_IMPI, USER1_IMPU, Deployment, StartScscf
from .messages import contacts, reginfo, register, registrations, request, subscribe

PCSCF = "sip:pcscf.home1.net"


async def registered_and_subscribed(dep: Deployment, expires: int = 600) -> str:
    call_id = register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, expires=expires)
    assert (await dep.trusted.response()).status == 200
    subscribe(dep.trusted, dep.orig_route, USER1_IMPU, asserted=PCSCF)
    assert (await dep.trusted.response()).status == 200
    assert reginfo((await dep.trusted.request()).body).get("version") == "0"
    return call_id


def last_contact_event(body: bytes) -> tuple[str | None, str | None, str | None]:
    reg = registrations(reginfo(body))[USER1_IMPU]
    [contact] = contacts(reg)
    return reg.get("state"), contact.get("state"), contact.get("event")


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def test_s9_10_expiry_sar_timeout_and_notify_expired(start_scscf: StartScscf) -> None:
    dep = await start_scscf(min_expires=1)
    await registered_and_subscribed(dep, expires=2)
    notify = await dep.trusted.request(timeout=5)
    assert (notify.headers.get("Subscription-State") or "").startswith("terminated")
    assert last_contact_event(notify.body) == ("terminated", "terminated", "expired")

    async def deregistered() -> bool:
        sub = await dep.hss.raw_store.get("user1")
        return sub is not None and sub.assignment is None

    await wait_for(deregistered)
    assert dep.spy.kinds()[-1] == ServerAssignmentType.TIMEOUT_DEREGISTRATION
    assert await dep.scscf.scscf.store.get(USER1_IMPU) is None


async def test_s9_11_after_expiry_terminating_request_480(start_scscf: StartScscf) -> None:
    dep = await start_scscf(min_expires=1)
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, expires=1)
    assert (await dep.trusted.response()).status == 200
    await asyncio.sleep(1.3)
    request(dep.trusted, "MESSAGE", USER1_IMPU, route=dep.route)
    assert (await dep.trusted.response()).status == 480


async def test_expiry_of_one_contact_keeps_the_other(start_scscf: StartScscf) -> None:
    dep = await start_scscf(min_expires=1)
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, n=1, expires=1)
    await dep.trusted.response()
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, n=2, expires=600)
    await dep.trusted.response()
    await asyncio.sleep(1.3)
    registration = await dep.scscf.scscf.store.get(USER1_IMPU)
    assert registration is not None and len(registration.contacts) == 1
    assert ServerAssignmentType.TIMEOUT_DEREGISTRATION not in dep.spy.kinds()


async def test_s9_12_administrative_deregistration_notify_then_sar(
    deployment: Deployment,
) -> None:
    dep = deployment
    await registered_and_subscribed(dep)
    dep.trusted.answer_notify = None  # answer by hand, to see what comes before the SAR
    task = asyncio.create_task(dep.scscf.administrative_deregistration(USER1_IMPU))
    notify = await dep.trusted.request()
    assert last_contact_event(notify.body) == ("terminated", "terminated", "deactivated")
    assert (notify.headers.get("Subscription-State") or "").startswith("terminated")
    assert ServerAssignmentType.ADMINISTRATIVE_DEREGISTRATION not in dep.spy.kinds()
    dep.trusted.reply(notify, 200)
    assert await asyncio.wait_for(task, 5) is True
    assert dep.spy.kinds()[-1] == ServerAssignmentType.ADMINISTRATIVE_DEREGISTRATION
    sub = await dep.hss.raw_store.get("user1")
    assert sub is not None and sub.assignment is None
    assert await dep.scscf.scscf.store.get(USER1_IMPU) is None
    assert await dep.scscf.administrative_deregistration(USER1_IMPU) is False


async def test_s9_13_rtr_permanent_termination_notify_rejected(deployment: Deployment) -> None:
    dep = deployment
    await registered_and_subscribed(dep)
    await dep.hss.store.remove("user1")  # the HSS sends RTR PERMANENT_TERMINATION
    notify = await dep.trusted.request()
    assert last_contact_event(notify.body) == ("terminated", "terminated", "rejected")
    assert "reason=rejected" in (notify.headers.get("Subscription-State") or "")
    await dep.hss.store.drain()
    assert dep.hss.cx.undelivered == 0
    assert await dep.scscf.scscf.store.get(USER1_IMPU) is None


async def test_s9_13_rtr_server_change_notify_deactivated(deployment: Deployment) -> None:
    dep = deployment
    await registered_and_subscribed(dep)
    result = await dep.hss.cx.send_rtr(
        RtrRequest(
            destination_host="scscf.home1.net",
            impi=USER1_IMPI,
            associated_impis=(),
            impus=(USER1_IMPU,),
            reason=DeregistrationReason.SERVER_CHANGE,
        )
    )
    assert result.success  # RTA DIAMETER_SUCCESS, after the NOTIFY was answered
    notify = await dep.trusted.request()
    assert last_contact_event(notify.body) == ("terminated", "terminated", "deactivated")
    assert await dep.scscf.scscf.store.get(USER1_IMPU) is None


async def test_s9_13_rta_after_the_notify_is_answered(deployment: Deployment) -> None:
    dep = deployment
    await registered_and_subscribed(dep)
    dep.trusted.answer_notify = None
    rtr = RtrRequest(
        destination_host="scscf.home1.net",
        impi=USER1_IMPI,
        associated_impis=(),
        impus=(),
        reason=DeregistrationReason.NEW_SERVER_ASSIGNED,
    )
    rta = asyncio.create_task(dep.hss.cx.send_rtr(rtr))
    notify = await dep.trusted.request()
    assert last_contact_event(notify.body)[2] == "deactivated"
    await asyncio.sleep(0.3)
    assert not rta.done()
    dep.trusted.reply(notify, 200)
    assert (await asyncio.wait_for(rta, 5)).success


async def test_s9_15_ppr_removing_the_waf_refuses_next_reregistration(
    deployment: Deployment,
) -> None:
    dep = deployment
    call_id = register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI)
    assert (await dep.trusted.response()).status == 200
    sub = await dep.hss.store.get("user1")
    assert sub is not None
    await dep.hss.store.replace(replace(sub, allowed_waf=("another_waf@thirdparty.net",)))
    await dep.hss.store.drain()  # the PPR has been answered
    assert dep.hss.cx.undelivered == 0
    registration = await dep.scscf.scscf.store.get(USER1_IMPU)
    assert registration is not None
    assert registration.allowed_waf == ("another_waf@thirdparty.net",)  # updated, still registered
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, call_id=call_id, cseq=2)
    resp = await dep.trusted.response()
    assert resp.status == 403
    assert dep.spy.kinds()[-2:] == [
        ServerAssignmentType.RE_REGISTRATION,
        ServerAssignmentType.USER_DEREGISTRATION,
    ]
    assert await dep.scscf.scscf.store.get(USER1_IMPU) is None
    after = await dep.hss.raw_store.get("user1")
    assert after is not None
    assert {p.state for p in after.publics} == {RegistrationState.NOT_REGISTERED}


async def test_ppr_barring_an_impu_updates_the_set(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, IRS_IMPUS[0], IRS_IMPI)
    assert (await dep.trusted.response()).status == 200
    await dep.hss.store.set_barred(IRS_IMPUS[1], True)
    await dep.hss.store.drain()
    registration = await dep.scscf.scscf.store.get(IRS_IMPUS[0])
    assert registration is not None
    assert IRS_IMPUS[1] not in registration.unbarred
    request(dep.trusted, "MESSAGE", IRS_IMPUS[1], route=dep.route)
    assert (await dep.trusted.response()).status == 404
