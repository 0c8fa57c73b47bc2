"""Flows, the flow table and RFC 5626 flow tokens (no sockets)."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webims.transport import Flow, FlowTable, normalize_host

URI_USER_SAFE = re.compile(r"[a-z2-7]+")


class FakeLink:
    def send(self, data: bytes, flow: Flow) -> None:
        pass

    def close(self) -> None:
        pass


def connection(table: FlowTable[FakeLink], transport: str = "tcp") -> Flow:
    flow = Flow(transport, ("192.0.2.1", 5060), ("198.51.100.7", 40123), table.next_conn_id())
    table.add(flow, FakeLink())
    return flow


def test_flow_identity() -> None:
    a = Flow("tcp", ("10.0.0.1", 5060), ("10.0.0.2", 1234), 7)
    assert a == Flow("tcp", ("10.0.0.1", 5060), ("10.0.0.2", 1234), 7)
    assert a != Flow("tcp", ("10.0.0.1", 5060), ("10.0.0.2", 1234), 8)
    assert len({a, Flow("tcp", ("10.0.0.1", 5060), ("10.0.0.2", 1234), 7)}) == 1
    assert a.reliable and not a.secure and a.via_transport == "TCP"
    assert Flow("wss", ("::1", 443), ("::1", 5), 1).secure
    assert not Flow("udp", ("10.0.0.1", 5060), ("10.0.0.2", 1234)).reliable
    assert str(Flow("ws", ("::1", 80), ("::1", 5), 3)) == "ws:[::1]:80->[::1]:5#3"
    with pytest.raises(AttributeError):
        a.conn_id = 9  # type: ignore[misc]


def test_normalize_host() -> None:
    assert normalize_host("[2001:DB8::0:1]") == "2001:db8::1"
    assert normalize_host("::ffff:192.0.2.1") == "192.0.2.1"
    assert normalize_host("127.0.0.1") == "127.0.0.1"
    with pytest.raises(ValueError):
        normalize_host("pcscf.home1.net")


def test_table_get_and_remove() -> None:
    table: FlowTable[FakeLink] = FlowTable(b"0" * 32)
    flow = connection(table)
    assert table.get(flow) is not None and flow in table and len(table) == 1
    assert table.by_conn_id(flow.conn_id) == flow
    assert table.remove(flow) is not None
    assert table.get(flow) is None and flow not in table and table.remove(flow) is None
    udp_link = FakeLink()
    table.add_datagram("udp", ("192.0.2.1", 5060), udp_link)
    assert table.get(Flow("udp", ("192.0.2.1", 5060), ("203.0.113.9", 9))) is udp_link
    assert table.get(Flow("udp", ("192.0.2.1", 5070), ("203.0.113.9", 9))) is None
    with pytest.raises(ValueError):
        table.add(Flow("tcp", ("1.1.1.1", 1), ("2.2.2.2", 2)), FakeLink())


def test_connection_token_round_trip_and_expiry() -> None:
    table: FlowTable[FakeLink] = FlowTable(b"0" * 32)
    flow = connection(table, "wss")
    token = table.make_token(flow)
    assert URI_USER_SAFE.fullmatch(token)
    assert table.resolve_token(token) == flow
    assert table.resolve_token(token.upper()) == flow  # base32 is case-insensitive
    table.remove(flow)
    assert table.resolve_token(token) is None


def test_tokens_of_another_key_or_process_do_not_resolve() -> None:
    table: FlowTable[FakeLink] = FlowTable(b"0" * 32)
    flow = connection(table)
    other_key: FlowTable[FakeLink] = FlowTable(b"1" * 32)
    connection(other_key)
    assert other_key.resolve_token(table.make_token(flow)) is None
    # Same key, another epoch (a restart): connection ids are not reused across.
    restarted: FlowTable[FakeLink] = FlowTable(b"0" * 32)
    connection(restarted)
    assert restarted.resolve_token(table.make_token(flow)) is None


def test_udp_tokens() -> None:
    table: FlowTable[FakeLink] = FlowTable(b"0" * 32)
    table.add_datagram("udp", ("2001:db8::1", 5060), FakeLink())
    flow = Flow("udp", ("2001:db8::1", 5060), ("2001:db8::99", 5062))
    token = table.make_token(flow)
    assert URI_USER_SAFE.fullmatch(token)
    assert table.resolve_token(token) == flow
    table.remove_datagram("udp", ("2001:db8::1", 5060))
    assert table.resolve_token(token) is None


@pytest.mark.parametrize(
    "token", ["", "a", "!!!!", "=" * 8, "a" * 500, "é" * 10, "aaaaaaaa", "0189"]
)
def test_malformed_tokens(token: str) -> None:
    table: FlowTable[FakeLink] = FlowTable(b"0" * 32)
    connection(table)
    assert table.resolve_token(token) is None


@given(st.integers(min_value=0, max_value=24 * 8 - 1))
def test_any_bit_flip_is_rejected(bit: int) -> None:
    table: FlowTable[FakeLink] = FlowTable(b"0" * 32)
    flow = connection(table)
    token = table.make_token(flow)
    raw = bytearray(base64.b32decode(token.upper() + "=" * (-len(token) % 8)))
    raw[bit // 8] ^= 1 << (bit % 8)
    forged = base64.b32encode(bytes(raw)).decode().rstrip("=").lower()
    assert table.resolve_token(forged) is None


@given(st.binary(max_size=60))
def test_random_tokens_never_resolve(data: bytes) -> None:
    table: FlowTable[FakeLink] = FlowTable(b"0" * 32)
    connection(table)
    token = base64.b32encode(data).decode().rstrip("=").lower()
    assert table.resolve_token(token) is None


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        FlowTable(b"short")
