"""The HSS as its own process (``webims run hss``), our Cx client in this one:
every Cx command over a real TCP connection, the HSS-initiated RTR and PPR
triggered through the provisioning API, and bad input that changes nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port
from webims.diameter import cx
from webims.diameter.base import Identity
from webims.diameter.cx import CxClient, CxMessage, PpRequest, RtRequest, avp, base_avp
from webims.diameter.cxdefs import (
    CX_APPLICATION_ID,
    VENDOR_3GPP,
    CxCommand,
    CxResult,
    DeregistrationReason,
    ExperimentalResult,
    ServerAssignmentType,
    UserAuthorizationType,
)
from webims.diameter.errors import PeerUnavailable
from webims.diameter.node import DiameterNode, NodeConfig, Peer
from webims.diameter.peer import PeerState

WEBIMS = str(Path(sys.executable).with_name("webims"))
API_KEY = "test-key-0123456789abcdef"
USER1_IMPI = "user1_private@home1.net"
USER1_IMPU = "sip:user1_public1@home1.net"
USER2_IMPI = "user2_private@home1.net"
SCSCF = "sip:scscf.home1.net:5080"


@dataclass
class Hss:
    process: subprocess.Popen[str]
    diameter_port: int
    api: str
    data_dir: Path


def start_hss(tmp: Path, diameter_port: int | None = None) -> Hss:
    port = diameter_port or free_port()
    api_port = free_port()
    config = tmp / "webims.toml"
    config.write_text(
        f'data_dir = "{tmp / "data"}"\n'
        f"[hss]\ndiameter_port = {port}\napi_port = {api_port}\n"
        f'api_key = "{API_KEY}"\n'
        'peers = ["scscf.home1.net", "icscf.home1.net"]\n'
    )
    seeded = subprocess.run(
        [WEBIMS, "subscriber", "seed-demo", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    proc = subprocess.Popen(
        [WEBIMS, "run", "hss", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "ready" in line:
            return Hss(proc, port, f"http://127.0.0.1:{api_port}", tmp / "data")
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("HSS did not start:\n" + "".join(seen))


def stop_hss(hss: Hss) -> None:
    hss.process.send_signal(signal.SIGTERM)
    try:
        hss.process.wait(10)
    except subprocess.TimeoutExpired:
        hss.process.kill()
        raise


@pytest.fixture(scope="module")
def hss(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hss]:
    server = start_hss(tmp_path_factory.mktemp("hss"))
    yield server
    stop_hss(server)


class Scscf:
    """A Cx peer playing the S-CSCF: it records the RTRs and PPRs it gets."""

    def __init__(self, node: DiameterNode, client: CxClient) -> None:
        self.node = node
        self.client = client
        self.rtr: list[RtRequest] = []
        self.ppr: list[PpRequest] = []

        async def on_rtr(req: RtRequest, peer: Peer) -> CxResult:
            self.rtr.append(req)
            return CxResult.base(2001)

        async def on_ppr(req: PpRequest, peer: Peer) -> CxResult:
            self.ppr.append(req)
            return CxResult.base(2001)

        client.serve_rtr(on_rtr)
        client.serve_ppr(on_ppr)


@pytest.fixture
async def scscf(hss: Hss) -> AsyncIterator[Scscf]:
    node = DiameterNode(
        Identity("scscf.home1.net", "home1.net", ((VENDOR_3GPP, CX_APPLICATION_ID),)),
        NodeConfig(tw=0.3, reconnect_min=0.05, request_timeout=3),
    )
    node.add_peer("hss.home1.net", "127.0.0.1", hss.diameter_port)
    client = CxClient(node, destination_realm="home1.net", destination_host="hss.home1.net")
    peer = Scscf(node, client)
    await node.wait_open("hss.home1.net", 5)
    yield peer
    # leave user1 as the next test expects to find it: not registered
    await client.sar([USER1_IMPU], SCSCF, ServerAssignmentType.USER_DEREGISTRATION, impi=USER1_IMPI)
    await node.stop()


def ha1(user: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


async def test_cer_cea_and_watchdog_with_the_hss_process(scscf: Scscf) -> None:
    peer = scscf.node.peers["hss.home1.net"]
    assert peer.state is PeerState.I_OPEN
    assert CX_APPLICATION_ID in peer.applications
    deadline = asyncio.get_running_loop().time() + 5
    while scscf.node.stats["dwa_received"] < 2:
        assert asyncio.get_running_loop().time() < deadline, "no DWA from the HSS"
        await asyncio.sleep(0.05)


async def test_registration_sequence_uar_sar_uar_lir_mar(scscf: Scscf) -> None:
    """SPEC statements 43, 44 and 45 across the wire."""
    cxc = scscf.client
    first = await cxc.uar(USER1_IMPI, USER1_IMPU, "home1.net")
    assert first.result == CxResult(ExperimentalResult.DIAMETER_FIRST_REGISTRATION, True)
    assert first.capabilities is not None and first.server_name is None

    saa = await cxc.sar([USER1_IMPU], SCSCF, ServerAssignmentType.REGISTRATION, impi=USER1_IMPI)
    assert saa.result == CxResult.base(2001)
    assert saa.user_name == USER1_IMPI
    assert saa.user_data is not None and USER1_IMPU.encode() in saa.user_data
    assert b"<IMSSubscription" in saa.user_data
    assert saa.allowed_waf == ("webrtc_authserver1@thirdparty.net",)
    assert saa.associated_identities == ()  # only listed when there are several IMPIs

    again = await cxc.uar(USER1_IMPI, USER1_IMPU, "home1.net")
    assert again.result == CxResult(ExperimentalResult.DIAMETER_SUBSEQUENT_REGISTRATION, True)
    assert again.server_name == SCSCF

    lia = await cxc.lir(USER1_IMPU)
    assert lia.result == CxResult.base(2001) and lia.server_name == SCSCF

    maa = await cxc.mar(USER1_IMPI, USER1_IMPU, SCSCF)
    assert maa.result == CxResult.base(2001)
    assert maa.items and maa.items[0].realm == "home1.net"
    assert maa.items[0].ha1 == ha1(USER1_IMPI, "home1.net", "user1-secret")

    dereg = await cxc.uar(
        USER1_IMPI, USER1_IMPU, "home1.net", UserAuthorizationType.DE_REGISTRATION
    )
    assert dereg.result == CxResult.base(2001) and dereg.server_name == SCSCF
    saa = await cxc.sar(
        [USER1_IMPU], SCSCF, ServerAssignmentType.USER_DEREGISTRATION, impi=USER1_IMPI
    )
    assert saa.result.success
    lia = await cxc.lir(USER1_IMPU)
    assert lia.result == CxResult(ExperimentalResult.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED, True)


async def test_s8_42_unknown_impu_and_identities_that_do_not_match(scscf: Scscf) -> None:
    cxc = scscf.client
    unknown = await cxc.uar(USER1_IMPI, "sip:nobody@home1.net", "home1.net")
    assert unknown.result == CxResult(ExperimentalResult.DIAMETER_ERROR_USER_UNKNOWN, True)
    mismatch = await cxc.uar(USER2_IMPI, USER1_IMPU, "home1.net")
    assert mismatch.result == CxResult(
        ExperimentalResult.DIAMETER_ERROR_IDENTITIES_DONT_MATCH, True
    )
    sar = await cxc.sar(
        ["sip:nobody@home1.net"], SCSCF, ServerAssignmentType.REGISTRATION, impi=USER1_IMPI
    )
    assert not sar.result.success
    # nothing was assigned by the refused requests
    assert (await cxc.uar(USER1_IMPI, USER1_IMPU, "home1.net")).result.code == 2001


async def test_roaming_not_allowed_is_5004(scscf: Scscf) -> None:
    uaa = await scscf.client.uar(USER1_IMPI, USER1_IMPU, "visited.example.net")
    assert uaa.result == CxResult(ExperimentalResult.DIAMETER_ERROR_ROAMING_NOT_ALLOWED, True)


async def test_missing_mandatory_avp_is_5005_with_failed_avp(scscf: Scscf) -> None:
    node = scscf.node
    request = cx.cx_request(
        node.me,
        CxCommand.USER_AUTHORIZATION,
        session_id="scscf.home1.net;9;9",
        destination_realm="home1.net",
        destination_host=None,
        avps=[
            base_avp(cx.USER_NAME, USER1_IMPI),
            avp(cx.VISITED_NETWORK_IDENTIFIER, b"home1.net"),
        ],
    )
    answer = CxMessage(await node.request(request))
    assert answer.result() == CxResult.base(5005)
    failed = answer.all(279, 0)[0].value
    assert [(a.code, a.vendor_id) for a in failed] == [(cx.PUBLIC_IDENTITY, VENDOR_3GPP)]


async def test_request_for_another_realm_is_3003(scscf: Scscf) -> None:
    other = CxClient(scscf.node, destination_realm="elsewhere.net")
    uaa = await other.uar(USER1_IMPI, USER1_IMPU, "home1.net")
    assert uaa.result == CxResult.base(3003)


async def test_garbage_on_a_socket_leaves_the_hss_serving(hss: Hss, scscf: Scscf) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", hss.diameter_port)
    writer.write(os.urandom(64) + b"\x01\x00\x00\x02" + bytes(60))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(65536), 5) is not None
    writer.close()
    uaa = await scscf.client.uar(USER1_IMPI, USER1_IMPU, "home1.net")
    assert uaa.result.code == 2001


async def test_barring_through_the_api_pushes_the_profile(hss: Hss, scscf: Scscf) -> None:
    """PPR (TS 29.228 §6.5.2.5): a served user's profile changes."""
    cxc = scscf.client
    saa = await cxc.sar([USER1_IMPU], SCSCF, ServerAssignmentType.REGISTRATION, impi=USER1_IMPI)
    assert saa.result.success
    headers = {"X-API-Key": API_KEY}
    quoted = httpx.URL(f"{hss.api}/publics/{USER1_IMPU.replace(':', '%3A')}/bar")
    async with httpx.AsyncClient() as http:
        response = await http.post(quoted, headers=headers)
        assert response.status_code == 200, response.text
        try:
            deadline = asyncio.get_running_loop().time() + 5
            while not scscf.ppr:
                assert asyncio.get_running_loop().time() < deadline, "no PPR"
                await asyncio.sleep(0.02)
            ppr = scscf.ppr[0]
            assert ppr.user_name == USER1_IMPI
            assert ppr.user_data is not None and b"<BarringIndication>1" in ppr.user_data
            assert ppr.allowed_waf == ("webrtc_authserver1@thirdparty.net",)
        finally:
            unbar = quoted.copy_with(path=quoted.path.replace("/bar", "/unbar"))
            assert (await http.post(unbar, headers=headers)).status_code == 200


async def test_removing_a_served_subscriber_sends_rtr(hss: Hss, scscf: Scscf) -> None:
    """RTR PERMANENT_TERMINATION (TS 29.228 §6.1.3) when provisioning removes a user."""
    headers = {"X-API-Key": API_KEY}
    body = {
        "name": "temp",
        "password": "temp-secret",
        "impi": "temp_private@home1.net",
        "impus": ["sip:temp_public1@home1.net"],
    }
    async with httpx.AsyncClient(base_url=hss.api, headers=headers) as http:
        created = await http.post("/subscribers", json=body)
        assert created.status_code == 201, created.text
        saa = await scscf.client.sar(
            ["sip:temp_public1@home1.net"],
            SCSCF,
            ServerAssignmentType.REGISTRATION,
            impi="temp_private@home1.net",
        )
        assert saa.result.success
        assert (await http.delete("/subscribers/temp")).status_code in (200, 204)
    deadline = asyncio.get_running_loop().time() + 5
    while not scscf.rtr:
        assert asyncio.get_running_loop().time() < deadline, "no RTR"
        await asyncio.sleep(0.02)
    rtr = scscf.rtr[0]
    assert rtr.user_name == "temp_private@home1.net"
    assert rtr.reason is DeregistrationReason.PERMANENT_TERMINATION
    gone = await scscf.client.uar("temp_private@home1.net", "sip:temp_public1@home1.net", "x")
    assert gone.result == CxResult(ExperimentalResult.DIAMETER_ERROR_USER_UNKNOWN, True)


def test_hss_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    server = start_hss(tmp_path)
    stop_hss(server)
    assert server.process.returncode == 0


async def test_an_enumerated_value_out_of_range_is_5004(scscf: Scscf) -> None:
    node = scscf.node
    request = cx.cx_request(
        node.me,
        CxCommand.SERVER_ASSIGNMENT,
        session_id="scscf.home1.net;9;10",
        destination_realm="home1.net",
        destination_host=None,
        avps=[
            base_avp(cx.USER_NAME, USER1_IMPI),
            avp(cx.PUBLIC_IDENTITY, USER1_IMPU),
            avp(cx.SERVER_NAME, SCSCF),
            avp(cx.SERVER_ASSIGNMENT_TYPE, 99),
            avp(cx.USER_DATA_ALREADY_AVAILABLE, 0),
        ],
    )
    answer = CxMessage(await node.request(request))
    assert answer.result() == CxResult.base(5004)
    failed = answer.all(279, 0)[0].value
    assert [(a.code, a.vendor_id, a.value) for a in failed] == [
        (cx.SERVER_ASSIGNMENT_TYPE, VENDOR_3GPP, 99)
    ]
    lia = await scscf.client.lir(USER1_IMPU)  # nothing was assigned
    assert lia.server_name is None


async def test_a_peer_not_configured_is_refused_with_3010(hss: Hss, scscf: Scscf) -> None:
    rogue = DiameterNode(
        Identity("rogue.example.net", "example.net", ((VENDOR_3GPP, CX_APPLICATION_ID),)),
        NodeConfig(reconnect_min=5, handshake_timeout=2),
    )
    peer = rogue.add_peer("hss.home1.net", "127.0.0.1", hss.diameter_port)
    try:
        with pytest.raises(PeerUnavailable):
            await rogue.wait_open("hss.home1.net", 1.5)
        assert peer.state is PeerState.CLOSED
    finally:
        await rogue.stop()
    # the configured peer is still served
    assert (await scscf.client.uar(USER1_IMPI, USER1_IMPU, "home1.net")).result.success
