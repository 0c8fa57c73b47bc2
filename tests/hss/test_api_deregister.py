"""The operator's deregistration through the provisioning API
(``POST /subscribers/{name}/deregister``) and ``webims subscriber
deregister``, its client: the HSS element in this process on real sockets
(Diameter and HTTP), a Cx peer playing the S-CSCF that records the
Registration-Termination-Request it gets (TS 29.228 §6.1.3), and every error
answer, each of which changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from tests.ports import free_port
from webims.cli import app
from webims.diameter.base import Identity
from webims.diameter.cx import CxClient, RtRequest
from webims.diameter.cxdefs import (
    CX_APPLICATION_ID,
    DIAMETER_SUCCESS,
    VENDOR_3GPP,
    CxResult,
    DeregistrationReason,
    ServerAssignmentType,
)
from webims.diameter.node import DiameterNode, NodeConfig, Peer
from webims.hss.api import create_app
from webims.hss.element import HssElement, HssOptions
from webims.hss.model import Subscriber
from webims.hss.provisioning import NewSubscriber, seed_demo
from webims.hss.sqlite_store import SqliteStore

KEY = "k3y-for-the-deregister-tests-0123"
SCSCF = "sip:scscf.home1.net:5080;transport=tcp"
USER1_IMPI = "user1_private@home1.net"
USER1_IMPU = "sip:user1_public1@home1.net"
SET_A = "sip:sets_a@home1.net"
SET_B = "sip:sets_b@home1.net"


def two_sets() -> Subscriber:
    """A subscriber whose two IMPUs are in two implicit registration sets."""
    sub = NewSubscriber(
        name="sets", password="sets-secret", impi="sets_private@home1.net", impus=[SET_A, SET_B]
    ).subscriber()
    publics = tuple(replace(p, irs=f"sets-{i}") for i, p in enumerate(sub.publics))
    return replace(sub, publics=publics)


@dataclass
class Network:
    hss: HssElement
    api: httpx.AsyncClient
    cx: CxClient
    rtrs: list[RtRequest]

    async def register(self, impu: str, impi: str) -> None:
        saa = await self.cx.sar([impu], SCSCF, ServerAssignmentType.REGISTRATION, impi=impi)
        assert saa.result.success, saa.result

    async def next_rtr(self, timeout: float = 5.0) -> RtRequest:
        async with asyncio.timeout(timeout):
            while not self.rtrs:
                await asyncio.sleep(0.02)
        return self.rtrs.pop(0)

    async def states(self, name: str) -> dict[str, str]:
        view = await self.api.get(f"/subscribers/{name}")
        assert view.status_code == 200, view.text
        return {p["impu"]: p["state"] for p in view.json()["publics"]}


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    api_port = free_port()
    hss = HssElement(
        HssOptions(
            store=str(tmp_path / "hss.sqlite3"),
            identity="hss.home1.net",
            realm="home1.net",
            host="127.0.0.1",
            diameter_port=0,
            api_port=api_port,
            api_key=KEY,
            data_dir=tmp_path,
            home_networks=frozenset({"home1.net"}),
        )
    )
    await hss.start()
    await seed_demo(hss.raw_store)
    await hss.raw_store.add(two_sets())
    node = DiameterNode(
        Identity("scscf.home1.net", "home1.net", ((VENDOR_3GPP, CX_APPLICATION_ID),)),
        NodeConfig(tw=5, reconnect_min=0.05, request_timeout=3),
    )
    node.add_peer("hss.home1.net", "127.0.0.1", hss.diameter_port)
    cx = CxClient(node, destination_realm="home1.net", destination_host="hss.home1.net")
    rtrs: list[RtRequest] = []

    async def on_rtr(req: RtRequest, peer: Peer) -> CxResult:
        rtrs.append(req)
        return CxResult.base(DIAMETER_SUCCESS)

    cx.serve_rtr(on_rtr)
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers={"X-API-Key": KEY})
    try:
        await node.wait_open("hss.home1.net", 5)
        yield Network(hss, api, cx, rtrs)
    finally:
        await api.aclose()
        await node.stop()
        await hss.close()


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("permanent_termination", DeregistrationReason.PERMANENT_TERMINATION),
        ("server_change", DeregistrationReason.SERVER_CHANGE),
        ("remove_scscf", DeregistrationReason.REMOVE_S_CSCF),
    ],
)
async def test_deregister_sends_the_rtr_with_the_reason_and_answers_202(
    network: Network, reason: str, code: DeregistrationReason
) -> None:
    await network.register(USER1_IMPU, USER1_IMPI)
    assert (await network.states("user1"))[USER1_IMPU] == "registered"

    answer = await network.api.post("/subscribers/user1/deregister", json={"reason": reason})

    assert answer.status_code == 202, answer.text
    (public,) = [p for p in answer.json()["publics"] if p["impu"] == USER1_IMPU]
    assert public["state"] == "not_registered"
    assert answer.json()["assignment"] is None
    rtr = await network.next_rtr()
    assert rtr.reason is code
    assert rtr.user_name == USER1_IMPI
    # The whole subscription: the RTR names no identity (TS 29.228 §6.1.3.1).
    assert rtr.public_identities == ()
    # Not registered any more: a second request has nothing to deregister.
    again = await network.api.post("/subscribers/user1/deregister", json={"reason": reason})
    assert again.status_code == 409 and again.json()["error"] == "not_registered"
    await asyncio.sleep(0.2)
    assert network.rtrs == []


async def test_new_server_assigned_lists_the_identities(network: Network) -> None:
    """§6.1.3.1: with NEW_SERVER_ASSIGNED the RTR carries the Public-Identities."""
    await network.register(USER1_IMPU, USER1_IMPI)
    answer = await network.api.post(
        "/subscribers/user1/deregister", json={"reason": "new_server_assigned"}
    )
    assert answer.status_code == 202, answer.text
    rtr = await network.next_rtr()
    assert rtr.reason is DeregistrationReason.NEW_SERVER_ASSIGNED
    assert USER1_IMPU in rtr.public_identities


async def test_named_impus_deregister_their_implicit_set_only(network: Network) -> None:
    await network.register(SET_A, "sets_private@home1.net")
    await network.register(SET_B, "sets_private@home1.net")
    answer = await network.api.post(
        "/subscribers/sets/deregister",
        json={"reason": "server_change", "impus": [SET_B]},
    )
    assert answer.status_code == 202, answer.text
    rtr = await network.next_rtr()
    assert rtr.reason is DeregistrationReason.SERVER_CHANGE
    assert rtr.public_identities == (SET_B,)
    assert await network.states("sets") == {SET_A: "registered", SET_B: "not_registered"}
    # The other set is still served: the S-CSCF keeps its assignment.
    assert answer.json()["assignment"] is not None


async def test_errors_change_nothing_and_send_no_rtr(network: Network) -> None:
    # Never registered: no S-CSCF to tell.
    idle = await network.api.post(
        "/subscribers/user2/deregister", json={"reason": "permanent_termination"}
    )
    assert idle.status_code == 409 and idle.json()["error"] == "not_registered"
    assert idle.json()["detail"]

    await network.register(USER1_IMPU, USER1_IMPI)
    unknown = await network.api.post(
        "/subscribers/nobody/deregister", json={"reason": "server_change"}
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    foreign = await network.api.post(
        "/subscribers/user1/deregister",
        json={"reason": "server_change", "impus": ["sip:user2_public1@home1.net"]},
    )
    assert foreign.status_code == 404 and foreign.json()["error"] == "not_found"
    for body in (
        {"reason": "because"},
        {},
        {"reason": "server_change", "impus": "sip:user1_public1@home1.net"},
        {"reason": "server_change", "extra": 1},
    ):
        bad = await network.api.post("/subscribers/user1/deregister", json=body)
        assert bad.status_code == 422 and bad.json()["error"] == "invalid", body
    keyless = await network.api.post(
        "/subscribers/user1/deregister",
        json={"reason": "server_change"},
        headers={"X-API-Key": "wrong"},
    )
    assert keyless.status_code == 401

    assert (await network.states("user1"))[USER1_IMPU] == "registered"
    await asyncio.sleep(0.2)
    assert network.rtrs == []


async def test_an_app_without_a_deregistration_has_no_such_resource(tmp_path: Path) -> None:
    """``create_app`` over a bare store (``webims subscriber``'s view of it)
    offers no deregistration: there is no Cx server to send an RTR with."""
    async with SqliteStore(tmp_path / "hss.sqlite3") as store:
        await seed_demo(store)
        transport = httpx.ASGITransport(app=create_app(store, KEY))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hss", headers={"X-API-Key": KEY}
        ) as client:
            answer = await client.post(
                "/subscribers/user1/deregister", json={"reason": "server_change"}
            )
            listed = (await client.get("/openapi.json")).json()["paths"]
    assert answer.status_code in (404, 405)
    assert "/subscribers/{name}/deregister" not in listed


# -- webims subscriber deregister: the command line as a client of the running HSS --


def config_for(network: Network, tmp_path: Path, *, key: str | None = KEY) -> Path:
    """A configuration naming the running HSS's API (and its key, or none:
    the client then reads ``<data_dir>/hss-api-key``)."""
    assert network.hss.api is not None
    config = tmp_path / "client.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "client-data"}"\n'
        f"[hss]\napi_port = {network.hss.api.port}\n"
        + (f'api_key = "{key}"\n' if key is not None else "")
    )
    return config


async def cli(config: Path, *args: str) -> Result:
    """``webims ARGS --config CONFIG`` in a thread: the HSS runs on this loop."""
    command = [*args, "--config", str(config)]
    return await asyncio.to_thread(lambda: CliRunner().invoke(app, command))


async def test_the_command_line_deregisters_through_the_running_hss(
    network: Network, tmp_path: Path
) -> None:
    config = config_for(network, tmp_path)
    await network.register(USER1_IMPU, USER1_IMPI)

    done = await cli(config, "subscriber", "deregister", "user1", "--reason", "server_change")

    assert done.exit_code == 0, done.output
    assert done.stdout == "deregistered user1 (server_change): RTR sent to its S-CSCF\n"
    rtr = await network.next_rtr()
    assert rtr.reason is DeregistrationReason.SERVER_CHANGE
    assert rtr.user_name == USER1_IMPI
    assert (await network.states("user1"))[USER1_IMPU] == "not_registered"

    # Again: nothing registered any more.  Then the default reason, per set.
    again = await cli(config, "subscriber", "deregister", "user1")
    assert again.exit_code == 1
    assert "not_registered" in again.stderr
    await network.register(SET_A, "sets_private@home1.net")
    await network.register(SET_B, "sets_private@home1.net")
    one = await cli(config, "subscriber", "deregister", "sets", "--impu", SET_A)
    assert one.exit_code == 0, one.output
    rtr = await network.next_rtr()
    assert rtr.reason is DeregistrationReason.PERMANENT_TERMINATION
    assert rtr.public_identities == (SET_A,)


async def test_the_command_line_refusals(network: Network, tmp_path: Path) -> None:
    config = config_for(network, tmp_path)
    unknown = await cli(config, "subscriber", "deregister", "nobody")
    assert unknown.exit_code == 1 and "not_found" in unknown.stderr
    bad = await cli(config, "subscriber", "deregister", "user1", "--reason", "because")
    assert bad.exit_code == 2 and "--reason must be one of" in bad.stderr
    # No key configured and no key file in this data directory.
    keyless = await cli(config_for(network, tmp_path, key=None), "subscriber", "deregister", "x")
    assert keyless.exit_code == 1 and "hss-api-key" in keyless.stderr
    # No HSS listening there.
    (tmp_path / "down.toml").write_text(
        f'data_dir = "{tmp_path}"\n[hss]\napi_port = {free_port()}\napi_key = "{KEY}"\n'
    )
    down = await cli(tmp_path / "down.toml", "subscriber", "deregister", "user1")
    assert down.exit_code == 1 and "cannot be reached" in down.stderr
    await asyncio.sleep(0.2)
    assert network.rtrs == []
