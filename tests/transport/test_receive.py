"""The server transport's own changes to received requests (no sockets)."""

from __future__ import annotations

import pytest

from webims.sip.errors import MessageTooLarge, ParseError, SipError
from webims.sip.message import DEFAULT_LIMITS, Request, parse_message
from webims.transport import answer_for, stamp_received

from .sipmsg import request


def parsed(raw: bytes) -> Request:
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    return msg


def test_rport_is_filled_and_received_added_even_when_equal() -> None:
    req = parsed(request(sent_by="192.0.2.10:5060"))
    assert stamp_received(req, ("192.0.2.10", 5060))
    assert req.top_via.received == "192.0.2.10" and req.top_via.rport == 5060


def test_received_only_when_the_address_differs() -> None:
    req = parsed(request(sent_by="192.0.2.10:5060", rport=False))
    assert not stamp_received(req, ("192.0.2.10", 40000))
    assert req.top_via.received is None
    assert stamp_received(req, ("198.51.100.1", 40000))
    assert req.top_via.received == "198.51.100.1" and req.top_via.rport is None


def test_ipv6_comparison_is_by_address() -> None:
    req = parsed(request(sent_by="[2001:DB8::1]:5060", rport=False))
    assert not stamp_received(req, ("2001:db8::1", 5060))
    assert stamp_received(req, ("2001:db8::2", 5060))
    assert req.top_via.received == "2001:db8::2"


def test_only_the_top_via_changes() -> None:
    raw = request(sent_by="192.0.2.10", extra="Via: SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKx\r\n")
    req = parsed(raw)
    stamp_received(req, ("203.0.113.5", 1024))
    vias = req.vias
    assert vias[0].received == "203.0.113.5" and vias[0].rport == 1024
    assert vias[1].received is None
    again = parsed(req.serialize())
    assert again.top_via.received == "203.0.113.5"


def test_answer_for_salvages_what_it_can() -> None:
    bad = request(extra="broken header line\r\n")
    resp = answer_for(bad, ParseError("x"), DEFAULT_LIMITS)
    assert resp is not None and resp.status == 400
    assert resp.headers.get("Via") is not None and resp.headers.get("CSeq") is not None
    big = answer_for(bad, MessageTooLarge(), DEFAULT_LIMITS)
    assert big is not None and big.status == 513
    assert answer_for(b"\x00\x01junk", ParseError(), DEFAULT_LIMITS) is None
    assert answer_for(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", ParseError(), DEFAULT_LIMITS) is None
    ack = request("ACK", extra="broken\r\n")
    assert answer_for(ack, ParseError(), DEFAULT_LIMITS) is None
    assert answer_for(None, ParseError(), DEFAULT_LIMITS) is None


@pytest.mark.parametrize(
    "line",
    [
        b"INVITE <sip:user@example.com> SIP/2.0",  # RFC 4475 3.1.2.7
        b"INVITE sip:user@example.com; lr SIP/2.0",  # 3.1.2.8
        b"INVITE  sip:user@example.com  SIP/2.0",  # 3.1.2.9
        b"OPTIONS sip:remote-target@example.com SIP/2.0  ",  # 3.1.2.10
    ],
)
def test_a_request_with_a_malformed_request_line_gets_400(line: bytes) -> None:
    raw = request("INVITE" if line.startswith(b"INVITE") else "OPTIONS")
    bad = line + raw[raw.index(b"\r\n") :]
    with pytest.raises(SipError):
        parse_message(bad)
    resp = answer_for(bad, ParseError("bad Request-Line"), DEFAULT_LIMITS)
    assert resp is not None and resp.status == 400
    assert resp.headers.get("Via") == parsed(raw).headers.get("Via")
    assert resp.cseq == parsed(raw).cseq


@pytest.mark.parametrize(
    "line",
    [b"SIP/2.0 200 OK junk", b"\xc3\xa9T sip:a@b SIP/2.0", b"IN(VITE sip:a@b SIP/2.0", b"INVITE"],
)
def test_no_answer_when_the_start_line_is_not_a_request(line: bytes) -> None:
    raw = request()
    bad = line + raw[raw.index(b"\r\n") :]
    assert answer_for(bad, ParseError("bad start line"), DEFAULT_LIMITS) is None
