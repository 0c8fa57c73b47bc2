"""REGISTER at the S-CSCF: trusted-node ``auth-done`` (SPEC §8 31–41), the 200
OK of SPEC §2.4, the authorisation-entity checks, 423, re-registration (§9.1
1) and user deregistration (§9.2 7), over TCP against the real HSS."""

from __future__ import annotations

import asyncio
import socket

import pytest

from webims.diameter.cxdefs import ServerAssignmentType
from webims.hss.model import RegistrationState

from .conftest import (
    BARRED_WAF,
    CCF,
    ECF,
    IRS_BARRED,
    IRS_IMPI,
    IRS_IMPUS,
    NO_LIST_IMPI,
    NO_LIST_IMPU,
    OTHER_WAF_IMPI,
    OTHER_WAF_IMPU,
    USER1_IMPI,
    USER1_IMPU,
    Deployment,
    StartScscf,
)
from .messages import INSTANCE, PCSCF_PATH, register


async def hss_state(dep: Deployment, name: str) -> tuple[set[RegistrationState], object]:
    sub = await dep.hss.raw_store.get(name)
    assert sub is not None
    return {p.state for p in sub.publics}, sub.assignment


async def test_s8_31_auth_done_skips_mar_and_challenge(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI)
    resp = await dep.trusted.response()
    assert resp.status == 200, resp.start_line()
    assert dep.spy.mars == []
    assert dep.spy.kinds() == [ServerAssignmentType.REGISTRATION]
    states, assignment = await hss_state(dep, "user1")
    assert states == {RegistrationState.REGISTERED}
    assert assignment is not None


async def test_s8_32_auth_done_from_untrusted_source_403_nothing_in_hss(
    deployment: Deployment,
) -> None:
    dep = deployment
    register(dep.untrusted, dep.route, USER1_IMPU, USER1_IMPI)
    resp = await dep.untrusted.response()
    assert resp.status == 403
    assert "WWW-Authenticate" not in resp.headers  # no silent fall-back to Digest
    assert dep.spy.sars == [] and dep.spy.mars == []
    states, assignment = await hss_state(dep, "user1")
    assert states == {RegistrationState.NOT_REGISTERED}
    assert assignment is None
    # And nothing was bound: a terminating request finds nobody.
    assert await dep.scscf.scscf.store.get(USER1_IMPU) is None


async def test_s8_33_sar_fields(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI)
    assert (await dep.trusted.response()).status == 200
    [(impus, kind, impi, udaa)] = dep.spy.sars
    assert impus == (USER1_IMPU,)
    assert kind == ServerAssignmentType.REGISTRATION
    assert impi == USER1_IMPI
    assert udaa is False
    sub = await dep.hss.raw_store.get("user1")
    assert sub is not None and sub.assignment is not None
    assert sub.assignment.server_name == dep.scscf.topology.scscf_server_name
    assert sub.assignment.server_name == f"sip:scscf.home1.net:{dep.port};transport=tcp"


async def test_s8_34_saa_failure_403_no_binding(deployment: Deployment) -> None:
    dep = deployment
    # An IMPI that does not own the IMPU: the HSS answers 5002.
    register(dep.trusted, dep.route, USER1_IMPU, "user2_private@home1.net")
    resp = await dep.trusted.response()
    assert resp.status == 403
    assert dep.spy.kinds() == [ServerAssignmentType.REGISTRATION]
    assert await dep.scscf.scscf.store.get(USER1_IMPU) is None
    # Unknown IMPU: 5001.
    register(dep.trusted, dep.route, "sip:nobody@home1.net", "nobody@home1.net")
    assert (await dep.trusted.response()).status == 403
    assert await dep.scscf.scscf.store.get("sip:nobody@home1.net") is None


async def test_s8_35_entity_not_in_allowed_list_403_and_rollback(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, OTHER_WAF_IMPU, OTHER_WAF_IMPI)
    resp = await dep.trusted.response()
    assert resp.status == 403
    assert dep.spy.kinds() == [
        ServerAssignmentType.REGISTRATION,
        ServerAssignmentType.USER_DEREGISTRATION,
    ]
    states, assignment = await hss_state(dep, "user4")
    assert states == {RegistrationState.NOT_REGISTERED}
    assert assignment is None
    assert await dep.scscf.scscf.store.get(OTHER_WAF_IMPU) is None


async def test_s8_36_barred_entity_403_even_when_hss_allows(start_scscf: StartScscf) -> None:
    dep = await start_scscf(barred_auth_entities=[BARRED_WAF, "webrtc_authserver1@thirdparty.net"])
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI)  # the HSS lists this WAF
    resp = await dep.trusted.response()
    assert resp.status == 403
    assert dep.spy.kinds() == [
        ServerAssignmentType.REGISTRATION,
        ServerAssignmentType.USER_DEREGISTRATION,
    ]
    states, _ = await hss_state(dep, "user1")
    assert states == {RegistrationState.NOT_REGISTERED}


async def test_s8_37_checks_skipped_without_entity_or_list(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, entity=None)
    assert (await dep.trusted.response()).status == 200
    register(dep.trusted, dep.route, NO_LIST_IMPU, NO_LIST_IMPI, entity="any_waf@anywhere.net")
    assert (await dep.trusted.response()).status == 200


async def test_s8_38_ok_contents(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, expires=600)
    resp = await dep.trusted.response()
    assert resp.status == 200
    assert resp.headers.get_all("Path") == [PCSCF_PATH.format(n=1)]
    [service_route] = resp.service_routes
    assert service_route.sip_uri.user == "orig"
    assert service_route.sip_uri.lr
    assert service_route.sip_uri.port == dep.port
    assert [str(a.uri) for a in resp.p_associated_uri] == [USER1_IMPU]
    [contact] = resp.contacts
    assert 0 < int(contact.params.get("expires") or 0) <= 600
    assert contact.params.get("+sip.instance") == INSTANCE.format(n=1)
    assert contact.params.get("reg-id") == "1"
    assert "outbound" in resp.require
    assert resp.headers.get("P-Charging-Vector") is not None
    assert 'icid-value="icid-test-1"' in (resp.headers.get("P-Charging-Vector") or "")


async def test_s8_38_charging_function_addresses_from_saa(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, NO_LIST_IMPU, NO_LIST_IMPI)
    resp = await dep.trusted.response()
    assert resp.status == 200
    assert resp.headers.get("P-Charging-Function-Addresses") == f'ccf="{CCF}";ecf="{ECF}"'
    pcv = resp.p_charging_vector
    assert pcv is not None and pcv.get("term-ioi") == "home1.net"


async def test_s8_38_expires_granted_at_most_requested_and_max(start_scscf: StartScscf) -> None:
    dep = await start_scscf(max_expires=1000)
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, expires=5000)
    resp = await dep.trusted.response()
    assert int(resp.contacts[0].params.get("expires") or 0) == 1000
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, expires=300, cseq=2)
    resp = await dep.trusted.response()
    assert int(resp.contacts[0].params.get("expires") or 0) == 300


async def test_s8_38_no_require_outbound_without_reg_id(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, reg_id=False)
    resp = await dep.trusted.response()
    assert resp.status == 200
    assert "outbound" not in resp.require


async def test_s8_39_interval_too_brief(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, expires=10)
    resp = await dep.trusted.response()
    assert resp.status == 423
    assert resp.headers.get("Min-Expires") == "60"
    assert dep.spy.sars == []


async def test_s8_40_implicit_set_registered_at_once(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, IRS_IMPUS[1], IRS_IMPI)
    resp = await dep.trusted.response()
    assert resp.status == 200
    assert [str(a.uri) for a in resp.p_associated_uri] == IRS_IMPUS
    store = dep.scscf.scscf.store
    for impu in IRS_IMPUS:
        registration = await store.get(impu)
        assert registration is not None and registration.impi == IRS_IMPI
    sub = await dep.hss.raw_store.get("user3")
    assert sub is not None
    assert {p.impu: p.state for p in sub.publics}[IRS_IMPUS[2]] == RegistrationState.REGISTERED


async def test_s8_41_barred_impu_never_in_p_associated_uri(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, IRS_IMPUS[0], IRS_IMPI)
    resp = await dep.trusted.response()
    assert resp.status == 200
    assert IRS_BARRED not in [str(a.uri) for a in resp.p_associated_uri]
    assert IRS_IMPUS[0] == str(resp.p_associated_uri[0].uri)  # default first


async def test_s8_41_register_for_barred_impu_403(deployment: Deployment) -> None:
    dep = deployment
    register(dep.trusted, dep.route, IRS_BARRED, IRS_IMPI)
    resp = await dep.trusted.response()
    assert resp.status == 403
    assert dep.spy.kinds() == [
        ServerAssignmentType.REGISTRATION,
        ServerAssignmentType.USER_DEREGISTRATION,
    ]
    assert await dep.scscf.scscf.store.get(IRS_IMPUS[0]) is None
    # While the set is registered, the barred IMPU is refused before any SAR.
    register(dep.trusted, dep.route, IRS_IMPUS[0], IRS_IMPI)
    assert (await dep.trusted.response()).status == 200
    dep.spy.sars.clear()
    register(dep.trusted, dep.route, IRS_BARRED, IRS_IMPI, n=2)
    assert (await dep.trusted.response()).status == 403
    assert dep.spy.sars == []


async def test_s9_1_reregistration_sar_re_registration(deployment: Deployment) -> None:
    dep = deployment
    call_id = register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, expires=600)
    assert (await dep.trusted.response()).status == 200
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, expires=900, call_id=call_id, cseq=2)
    resp = await dep.trusted.response()
    assert resp.status == 200
    assert dep.spy.sars[-1][1:] == (ServerAssignmentType.RE_REGISTRATION, USER1_IMPI, True)
    [contact] = resp.contacts  # the same flow (instance, reg-id) refreshed, not added
    assert 890 <= int(contact.params.get("expires") or 0) <= 900


async def test_s9_39_out_of_order_register_fails_and_changes_nothing(
    deployment: Deployment,
) -> None:
    dep = deployment
    call_id = register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, cseq=5, expires=600)
    assert (await dep.trusted.response()).status == 200
    before = await dep.scscf.scscf.store.get(USER1_IMPU)
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, call_id=call_id, cseq=4, expires=0)
    assert (await dep.trusted.response()).status == 500
    assert await dep.scscf.scscf.store.get(USER1_IMPU) is before
    assert dep.spy.kinds() == [ServerAssignmentType.REGISTRATION]


async def udp_answer(udp: socket.socket, timeout: float = 5.0) -> bytes:
    async with asyncio.timeout(timeout):
        while True:
            try:
                return udp.recv(65535)
            except BlockingIOError:
                await asyncio.sleep(0.02)


async def test_s9_38_retransmitted_register_absorbed(deployment: Deployment) -> None:
    """Over UDP the server transaction absorbs the retransmission (RFC 3261
    §17.2.2); over TCP nothing is retransmitted, and a copy is a new request
    that §10.3 step 7 refuses (CSeq not higher): either way, one SAR."""
    dep = deployment
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", dep.trusted.local_port))
        udp.setblocking(False)
        register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI)
        await dep.trusted.response()  # (the TCP copy registered the user first)
        text = dep.trusted.last_sent.replace(b"SIP/2.0/TCP", b"SIP/2.0/UDP")
        text = text.replace(b"CSeq: 1 REGISTER", b"CSeq: 7 REGISTER")
        answers = []
        for _ in range(2):
            udp.sendto(text, ("127.0.0.1", dep.port))
            answers.append((await udp_answer(udp)).split(b" ", 2)[1])
        assert answers == [b"200", b"200"]
    assert dep.spy.kinds() == [
        ServerAssignmentType.REGISTRATION,
        ServerAssignmentType.RE_REGISTRATION,
    ]
    # The TCP copy again (another branch, or it would match the UDP transaction):
    # a new request, and a stale one.
    dep.trusted.send(dep.trusted.last_sent.replace(b"branch=z9hG4bK-t", b"branch=z9hG4bK-x"))
    assert (await dep.trusted.response()).status == 500
    assert len(dep.spy.sars) == 2


async def test_too_many_flows_403(deployment: Deployment) -> None:
    dep = deployment
    dep.scscf.scscf.registrar.max_contacts = 2
    for n in (1, 2):
        register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, n=n)
        assert (await dep.trusted.response()).status == 200
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, n=3)
    assert (await dep.trusted.response()).status == 403
    registration = await dep.scscf.scscf.store.get(USER1_IMPU)
    assert registration is not None and len(registration.contacts) == 2
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, n=2, cseq=2)  # a refresh is fine
    assert (await dep.trusted.response()).status == 200


@pytest.mark.parametrize("star", [False, True])
async def test_s9_7_user_deregistration(deployment: Deployment, star: bool) -> None:
    dep = deployment
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI)
    assert (await dep.trusted.response()).status == 200
    if star:
        register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, expires=0, contact="*", cseq=2)
    else:
        register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, expires=0, cseq=2)
    resp = await dep.trusted.response()
    assert resp.status == 200
    assert resp.contacts == []
    assert dep.spy.kinds() == [
        ServerAssignmentType.REGISTRATION,
        ServerAssignmentType.USER_DEREGISTRATION,
    ]
    assert await dep.scscf.scscf.store.get(USER1_IMPU) is None
    states, assignment = await hss_state(dep, "user1")
    assert states == {RegistrationState.NOT_REGISTERED}
    assert assignment is None


async def test_s9_7_deregistering_one_of_two_contacts_keeps_the_set(
    deployment: Deployment,
) -> None:
    dep = deployment
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, n=1)
    await dep.trusted.response()
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, n=2)
    await dep.trusted.response()
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, n=1, contact_expires=0, cseq=2)
    resp = await dep.trusted.response()
    assert resp.status == 200
    assert len(resp.contacts) == 1
    assert ServerAssignmentType.USER_DEREGISTRATION not in dep.spy.kinds()
    assert await dep.scscf.scscf.store.get(USER1_IMPU) is not None


async def test_s9_37_hss_unreachable_500_retry_after_no_state(deployment: Deployment) -> None:
    dep = deployment
    await dep.hss.close()
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI)
    resp = await dep.trusted.response(timeout=10)
    assert resp.status == 500
    assert resp.headers.get("Retry-After") is not None
    assert await dep.scscf.scscf.store.get(USER1_IMPU) is None
