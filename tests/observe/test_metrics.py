"""``/metrics``: the collectors on elements' state in memory, then a real ``webims up``
(its own process, data directory and free ports) scraped over HTTP while a WIC
registers through it over WSS and deregisters."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from tests.ports import free_port
from tests.system import up_config
from tests.wic.conftest import running
from webims.config import MetricsSettings, Settings
from webims.diameter.base import Identity
from webims.diameter.cxdefs import CX_APPLICATION_ID, VENDOR_3GPP
from webims.diameter.node import DiameterNode, Peer
from webims.diameter.peer import PeerState
from webims.observe.metrics import (
    DiameterCollector,
    PcscfCollector,
    ScscfCollector,
    SipCollector,
    start_metrics,
)
from webims.pcscf.bindings import Bindings
from webims.pcscf.bindings import Registration as PcscfRegistration
from webims.scscf.registrar import Contact, MemoryRegistrar
from webims.scscf.registrar import Registration as ScscfRegistration
from webims.sip.uac import new_request
from webims.transport.endpoint import SipEndpoint
from webims.transport.flow import Flow

IMPU1 = "sip:user1_public1@home1.net"

#: name -> {(sample name, sorted labels): value}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> tuple[Samples, dict[str, str]]:
    """Every sample of an exposition, and the type of every family."""
    values: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return values, types


def scrape_registry(registry: CollectorRegistry) -> tuple[Samples, dict[str, str]]:
    return samples(generate_latest(registry).decode())


# -- the collectors, on state in memory -------------------------------------------------


def test_diameter_collector_shows_peer_states_and_counts_node_stats_as_counters() -> None:
    node = DiameterNode(
        Identity("scscf.home1.net", "home1.net", ((VENDOR_3GPP, CX_APPLICATION_ID),))
    )
    hss = Peer("hss.home1.net", ("127.0.0.1", 3868))
    hss.fsm.state = PeerState.I_OPEN
    other = Peer("hss2.home1.net", ("127.0.0.1", 3869))
    node.peers = {hss.identity: hss, other.identity: other}
    node.stats["requests_out"] = 7
    registry = CollectorRegistry()
    registry.register(DiameterCollector("scscf", node))

    values, types = scrape_registry(registry)

    assert types["webims_scscf_diameter_requests_sent"] == "counter"
    assert values[("webims_scscf_diameter_requests_sent_total", ())] == 7
    assert values[("webims_scscf_diameter_requests_received_total", ())] == 0
    assert types["webims_scscf_diameter_peers_open"] == "gauge"
    assert values[("webims_scscf_diameter_peers_open", ())] == 1
    state = "webims_scscf_diameter_peer_state"
    assert values[(state, (("peer", "hss.home1.net"), ("state", "I-Open")))] == 1
    assert values[(state, (("peer", "hss2.home1.net"), ("state", "Closed")))] == 1
    pending = ("webims_scscf_diameter_pending_requests", (("peer", "hss.home1.net"),))
    assert values[pending] == 0


def test_sip_collector_counts_connections_by_transport_and_transactions_by_kind() -> None:
    endpoint = SipEndpoint()
    table = endpoint.transport.table
    for n, transport in enumerate(("wss", "wss", "tcp"), start=1):
        flow = Flow(transport, ("127.0.0.1", 7443), ("127.0.0.1", 40000 + n), n)
        table.add(flow, cast(Any, object()))  # the link is not read
    options = new_request(
        "OPTIONS",
        "sip:icscf.home1.net",
        from_="<sip:pcscf.home1.net>;tag=1",
        to="<sip:icscf.home1.net>",
        call_id="metrics-1",
        cseq=1,
        via="SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKmetrics1",
    )
    endpoint.layer.send_request(options, ("127.0.0.1", 5070), True, 0.0)
    registry = CollectorRegistry()
    registry.register(SipCollector("pcscf", endpoint))

    values, types = scrape_registry(registry)

    assert types["webims_pcscf_sip_connections"] == "gauge"
    assert values[("webims_pcscf_sip_connections", (("transport", "wss"),))] == 2
    assert values[("webims_pcscf_sip_connections", (("transport", "tcp"),))] == 1
    assert values[("webims_pcscf_sip_transactions", (("kind", "client"),))] == 1
    assert values[("webims_pcscf_sip_transactions", (("kind", "server"),))] == 0


def _wic(port: int, impus: set[str], *, dead: bool = False) -> PcscfRegistration:
    flow = Flow("wss", ("127.0.0.1", 7443), ("127.0.0.1", port), port)
    return PcscfRegistration(
        flow=flow,
        flow_token=f"token{port}",
        impi="user1_private@home1.net",
        registered_impu=IMPU1,
        impus=impus,
        default_impu=IMPU1,
        service_route=("<sip:orig@scscf.home1.net:5080;transport=tcp;lr>",),
        record_route=f"sip:token{port}@pcscf.home1.net:5060;transport=tcp;lr",
        contact=f"<sip:c{port}@df7jal23ls0d.invalid;transport=ws>",
        instance=f'"<urn:uuid:00000000-0000-4000-8000-{port:012d}>"',
        reg_id="1",
        expires_at=3600.0,
        token_expires_at=2e9,
        authorization_entity="webrtc_authserver1@thirdparty.net",
        dead=dead,
    )


def test_pcscf_collector_counts_registrations_by_transport_and_flow_state() -> None:
    bindings = Bindings()
    bindings.bind(_wic(40001, {IMPU1, "sip:user1_public2@home1.net"}))
    bindings.bind(_wic(40002, {IMPU1}, dead=True))
    registry = CollectorRegistry()
    registry.register(PcscfCollector(bindings))

    values, types = scrape_registry(registry)

    regs = "webims_pcscf_registrations"
    assert types[regs] == "gauge"
    assert values[(regs, (("flow", "open"), ("transport", "wss")))] == 1
    assert values[(regs, (("flow", "closed"), ("transport", "wss")))] == 1
    assert values[(regs, (("flow", "open"), ("transport", "ws")))] == 0
    assert values[("webims_pcscf_bound_impus", ())] == 2
    assert values[("webims_pcscf_reg_event_subscriptions", ())] == 0


def test_scscf_collector_counts_sets_and_only_unexpired_contacts() -> None:
    store = MemoryRegistrar()
    now = 1000.0
    live = Contact("sip:a@df7jal23ls0d.invalid", expires_at=now + 60, registered_at=now)
    gone = Contact("sip:b@df7jal23ls0d.invalid", expires_at=now - 1, registered_at=now - 61)

    async def fill() -> None:
        await store.put(ScscfRegistration("user1_private@home1.net", (IMPU1,), contacts=(live,)))
        await store.put(
            ScscfRegistration(
                "user2_private@home1.net", ("sip:user2_public1@home1.net",), contacts=(gone,)
            )
        )

    asyncio.run(fill())
    registry = CollectorRegistry()
    registry.register(ScscfCollector(store, lambda: 3, lambda: now))

    values, _ = scrape_registry(registry)

    assert values[("webims_scscf_registrations", ())] == 2
    assert values[("webims_scscf_contacts", ())] == 1
    assert values[("webims_scscf_reg_event_subscriptions", ())] == 3


async def test_metrics_port_0_serves_nothing_and_a_busy_port_is_an_os_error() -> None:
    assert await start_metrics(Settings(metrics=MetricsSettings(port=0)), []) is None
    endpoint = await start_metrics(Settings(metrics=MetricsSettings(port=free_port())), [])
    assert endpoint is not None
    try:
        with pytest.raises(OSError):
            await start_metrics(Settings(metrics=MetricsSettings(port=endpoint.server.port)), [])
        async with httpx.AsyncClient() as client:
            ok = await client.get(endpoint.url)
            assert ok.status_code == 200
            assert ok.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            values, _ = samples(ok.text)
            assert values[("process_open_fds", ())] > 0
            missing = await client.get(endpoint.url.removesuffix("/metrics") + "/other")
            assert missing.status_code == 404
    finally:
        await endpoint.close()


# -- a real ``webims up`` ------------------------------------------------------------------


@dataclass(frozen=True)
class System:
    config: Path
    metrics_url: str
    printed: str


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    data = tmp_path_factory.mktemp("webims-metrics")
    metrics = free_port()
    config = up_config(data, extra=f"[metrics]\nport = {metrics}\n").path
    with running("up", "--config", str(config)) as printed:
        yield System(config, f"http://127.0.0.1:{metrics}/metrics", "".join(printed))


def scrape(system: System) -> Samples:
    response = httpx.get(system.metrics_url, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(response.text)[0]


def wic_registrations(values: Samples) -> float:
    return sum(v for (name, _), v in values.items() if name == "webims_pcscf_registrations")


def test_webims_up_prints_the_metrics_endpoint(system: System) -> None:
    assert f"metrics  {system.metrics_url}\n" in system.printed


def test_webims_up_metrics_follow_a_wic_registering_and_deregistering(system: System) -> None:
    before = scrape(system)
    assert before[("webims_scscf_registrations", ())] == 0
    assert wic_registrations(before) == 0
    for element in ("icscf", "scscf"):  # each CSCF's Cx peer, the HSS, is open
        assert before[(f"webims_{element}_diameter_peers_open", ())] == 1
    assert before[("webims_hss_diameter_peers_open", ())] == 2
    hss_requests = before[("webims_hss_diameter_requests_received_total", ())]

    register = ["register", "--config", str(system.config), "--user", "user1"]
    register += ["--password", "user1-secret", "--hold", "4", "--deregister"]
    wic = subprocess.Popen(
        [sys.executable, "-m", "webims", *register],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wss_open = ("webims_pcscf_registrations", (("flow", "open"), ("transport", "wss")))
    try:
        # The S-CSCF counts the set when it sends its 200 OK, the eP-CSCF binds the WIC when
        # that 200 OK reaches it: wait until both have, or a scrape may fall in between.
        during: Samples = {}
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and wic.poll() is None:
            during = scrape(system)
            if during[("webims_scscf_registrations", ())] == 1 and during.get(wss_open) == 1:
                break
            time.sleep(0.1)
        out, _ = wic.communicate(timeout=60)
    finally:
        if wic.poll() is None:
            wic.kill()
            wic.communicate()
    assert wic.returncode == 0, out
    assert out.startswith("200 OK"), out

    # While registered: one set at the S-CSCF, one WIC bound over WSS at the eP-CSCF.
    assert during[("webims_scscf_registrations", ())] == 1, out
    assert during[("webims_scscf_contacts", ())] == 1
    assert during[wss_open] == 1
    assert wic_registrations(during) == 1
    assert during[("webims_pcscf_bound_impus", ())] >= 1
    assert during[("webims_pcscf_dialogs", ())] == 0  # a registration is no dialog
    assert during[("webims_pcscf_sip_connections", (("transport", "wss"),))] >= 1
    # UAR at the HSS from the I-CSCF, SAR from the S-CSCF: answered there, sent by them.
    assert during[("webims_hss_diameter_requests_received_total", ())] >= hss_requests + 2
    assert during[("webims_icscf_diameter_requests_sent_total", ())] >= 1
    assert during[("webims_scscf_diameter_requests_sent_total", ())] >= 1

    # After the deregistration (Expires: 0, on the same flow), nothing is registered.
    after = scrape(system)
    assert after[("webims_scscf_registrations", ())] == 0
    assert after[("webims_scscf_contacts", ())] == 0
    assert wic_registrations(after) == 0
    assert after[("webims_pcscf_bound_impus", ())] == 0
    assert (
        after[("webims_hss_diameter_requests_received_total", ())]
        > during[("webims_hss_diameter_requests_received_total", ())]
    )


def test_metrics_answers_404_elsewhere(system: System) -> None:
    response = httpx.get(system.metrics_url.removesuffix("metrics") + "favicon.ico", timeout=5)
    assert response.status_code == 404


# -- ``webims run NAME``: that element's metrics only ----------------------------------------


def hss_config(data: Path, metrics: int) -> Path:
    dia, api = free_port(), free_port()
    config = data / "webims.toml"
    config.write_text(
        f'data_dir = "{data}"\n'
        f"[hss]\ndiameter_port = {dia}\napi_port = {api}\n"
        f"[metrics]\nport = {metrics}\n"
    )
    return config


def test_webims_run_serves_the_metrics_of_its_element_only(tmp_path: Path) -> None:
    port = free_port()
    with running("run", "hss", "--config", str(hss_config(tmp_path, port))) as printed:
        url = f"http://127.0.0.1:{port}/metrics"
        assert f"metrics  {url}\n" in "".join(printed)
        values, _ = samples(httpx.get(url, timeout=5).text)
    names = {name for name, _ in values}
    assert ("webims_hss_diameter_requests_received_total", ()) in values
    assert ("webims_hss_diameter_peers_open", ()) in values
    assert not {n for n in names if n.startswith(("webims_pcscf", "webims_icscf", "webims_scscf"))}


def test_a_busy_metrics_port_is_reported_and_the_element_runs_on(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = int(taken.getsockname()[1])
        with running("run", "hss", "--config", str(hss_config(tmp_path, port))) as printed:
            text = "".join(printed)
    assert "metrics  not served:" in text
    assert "diameter://127.0.0.1:" in text
