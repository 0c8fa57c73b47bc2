"""I-CSCF terminating routing (TS 24.229 5.3.2.1) between a real HSS and a
fake S-CSCF: the LIR and where the request goes; loose routing otherwise."""

from __future__ import annotations

from webims.diameter import cx
from webims.diameter.cx import CxClient
from webims.diameter.cxdefs import CxResult, ExperimentalResult, ServerAssignmentType

from .conftest import USER1_IMPI, USER1_IMPU, Hss, StartIcscf, register_at_hss, request


async def test_terminating_request_is_routed_to_the_serving_scscf(
    start_icscf: StartIcscf, hss: Hss, scscf_cx: CxClient
) -> None:
    d = await start_icscf()
    server_name = f"sip:scscf.home1.net:{d.scscf.port};transport=tcp"
    await register_at_hss(scscf_cx, server_name)
    peer = await d.untrusted()  # terminating traffic comes from anywhere
    try:
        resp = await peer.send(request("INVITE", USER1_IMPU, d.port))
    finally:
        await peer.close()
    assert resp.status == 200
    assert [m.text(cx.PUBLIC_IDENTITY) for m in hss.lirs] == [USER1_IMPU]
    got = await d.scscf.next_request()
    assert got.method == "INVITE" and str(got.uri) == USER1_IMPU
    assert [str(r) for r in got.routes] == [f"<{server_name};lr>"]
    assert "Record-Route" not in got.headers


async def test_lir_uses_the_identity_without_uri_parameters(
    start_icscf: StartIcscf, hss: Hss, scscf_cx: CxClient
) -> None:
    d = await start_icscf()
    await register_at_hss(scscf_cx, f"sip:scscf.home1.net:{d.scscf.port};transport=tcp")
    peer = await d.untrusted()
    try:
        resp = await peer.send(request("MESSAGE", USER1_IMPU + ";user=phone", d.port))
    finally:
        await peer.close()
    assert resp.status == 200
    assert [m.text(cx.PUBLIC_IDENTITY) for m in hss.lirs] == [USER1_IMPU]


async def test_unknown_identity_gets_404(start_icscf: StartIcscf, hss: Hss) -> None:
    """LIA Exp 5001."""
    d = await start_icscf()
    peer = await d.untrusted()
    try:
        resp = await peer.send(request("INVITE", "sip:nobody@home1.net", d.port))
    finally:
        await peer.close()
    assert resp.status == 404
    assert d.scscf.received == []


async def test_s9_9_call_to_a_deregistered_identity_gets_480(
    start_icscf: StartIcscf, hss: Hss, scscf_cx: CxClient
) -> None:
    """After deregistration the LIA is Exp 5003 IDENTITY_NOT_REGISTERED."""
    d = await start_icscf()
    server_name = f"sip:scscf.home1.net:{d.scscf.port};transport=tcp"
    await register_at_hss(scscf_cx, server_name)
    saa = await scscf_cx.sar(
        [USER1_IMPU], server_name, ServerAssignmentType.USER_DEREGISTRATION, impi=USER1_IMPI
    )
    assert saa.result.success
    peer = await d.untrusted()
    try:
        resp = await peer.send(request("INVITE", USER1_IMPU, d.port))
    finally:
        await peer.close()
    assert resp.status == 480
    assert len(hss.lirs) == 1
    assert d.scscf.received == []
    lia = await scscf_cx.lir(USER1_IMPU)  # what the I-CSCF was told
    assert lia.result == CxResult.exp(ExperimentalResult.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)


async def test_s9_11_call_after_registration_expiry_gets_480(
    start_icscf: StartIcscf, hss: Hss, scscf_cx: CxClient
) -> None:
    d = await start_icscf()
    server_name = f"sip:scscf.home1.net:{d.scscf.port};transport=tcp"
    await register_at_hss(scscf_cx, server_name)
    saa = await scscf_cx.sar(
        [USER1_IMPU], server_name, ServerAssignmentType.TIMEOUT_DEREGISTRATION, impi=USER1_IMPI
    )
    assert saa.result.success
    peer = await d.untrusted()
    try:
        resp = await peer.send(request("MESSAGE", USER1_IMPU, d.port))
    finally:
        await peer.close()
    assert resp.status == 480
    assert d.scscf.received == []


async def test_hss_unreachable_terminating_gets_480(start_icscf: StartIcscf, hss: Hss) -> None:
    from tests.ports import free_port

    d = await start_icscf(hss_port=free_port())
    peer = await d.untrusted()
    try:
        resp = await peer.send(request("MESSAGE", USER1_IMPU, d.port))
    finally:
        await peer.close()
    assert resp.status == 480


async def test_in_dialog_request_is_loose_routed_without_lir(
    start_icscf: StartIcscf, hss: Hss
) -> None:
    d = await start_icscf()
    next_hop = f"<sip:127.0.0.1:{d.scscf.port};transport=tcp;lr>"
    peer = await d.untrusted()
    try:
        resp = await peer.send(
            request(
                "BYE",
                USER1_IMPU,
                d.port,
                route=[f"<sip:icscf.home1.net:{d.port};lr>", next_hop],
                to_tag="callee-1",
            )
        )
    finally:
        await peer.close()
    assert resp.status == 200
    assert hss.lirs == []
    got = await d.scscf.next_request()
    assert got.method == "BYE" and [str(r) for r in got.routes] == [next_hop]


async def test_options_to_the_icscf_itself_is_answered(start_icscf: StartIcscf, hss: Hss) -> None:
    d = await start_icscf()
    peer = await d.untrusted()
    try:
        resp = await peer.send(
            request("OPTIONS", f"sip:icscf.home1.net:{d.port};transport=tcp", d.port, route=[])
        )
    finally:
        await peer.close()
    assert resp.status == 200 and "REGISTER" in (resp.headers.get("Allow") or "")
    assert hss.lirs == []
