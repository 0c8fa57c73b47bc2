"""The deployment's CSCF names, addresses and trust lists, from settings."""

from __future__ import annotations

import pytest

from webims.config import Settings
from webims.ims.charging import IcidGenerator
from webims.ims.topology import Topology, parse_hostport
from webims.ims.trust import TrustedPeers
from webims.transport.flow import Flow


def test_defaults_name_the_embedded_deployment() -> None:
    topo = Topology.from_settings(Settings())
    assert topo.icscf_uri == "sip:icscf.home1.net:5070;transport=tcp;lr"
    assert topo.scscf_server_name == "sip:scscf.home1.net:5080;transport=tcp"
    assert topo.hosts["pcscf.home1.net"] == "127.0.0.1"
    # The I-CSCF takes REGISTER from the eP-CSCF's Mw port only; the S-CSCF
    # trusts auth-done from the I-CSCF and the eP-CSCF, by address and port.
    assert topo.icscf_trusted == {("127.0.0.1", 5060)}
    assert topo.scscf_trusted == {("127.0.0.1", 5070), ("127.0.0.1", 5060)}
    assert topo.scscfs == {topo.scscf_server_name: None}


def test_configured_values_win() -> None:
    settings = Settings(
        sip={"host": "127.0.0.2"},
        icscf={"sip_port": 6070, "trusted_peers": ["pcscf.home1.net:6060", "[::1]:5060"]},
        scscf={"trusted_peers": ["10.0.0.1:5070"], "server_name": "sip:s1.home1.net;lr"},
        pcscf={"icscf_uri": "sip:i.example.net;lr"},
    )
    topo = Topology.from_settings(settings)
    assert topo.icscf_trusted == {("127.0.0.2", 6060), ("::1", 5060)}
    assert topo.scscf_trusted == {("10.0.0.1", 5070)}
    assert topo.icscf_uri == "sip:i.example.net;lr"
    assert topo.scscf_server_name == "sip:s1.home1.net;lr"


@pytest.mark.parametrize("bad", ["127.0.0.1", "127.0.0.1:x", ":5060", "nohost.example:5060"])
def test_a_bad_peer_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hostport(bad)


def test_trust_is_by_address_and_port() -> None:
    trusted = TrustedPeers([("127.0.0.1", 5060)])
    local = ("127.0.0.1", 5070)
    assert Flow("tcp", local, ("127.0.0.1", 5060), 7) in trusted
    assert Flow("udp", local, ("127.0.0.1", 5060)) in trusted
    # Same address, another port: another process on the host.
    assert Flow("tcp", local, ("127.0.0.1", 40000), 8) not in trusted
    assert ("127.0.0.1", 5060) not in trusted  # only flows count


def test_icids_are_unique_across_generators() -> None:
    a, b = IcidGenerator("pcscf"), IcidGenerator("pcscf")
    values = {a.next() for _ in range(1000)} | {b.next() for _ in range(1000)}
    assert len(values) == 2000
    assert a.vector("home1.net").startswith('icid-value="pcscf-')
    assert a.vector("home1.net").endswith(";orig-ioi=home1.net")
