"""Diameter framing and decoding: whole messages out of a stream, errors with
the Result-Code to answer, and error answers built from a header alone."""

from __future__ import annotations

import pytest
from diameter.message.commands.user_authorization import UserAuthorizationRequest
from diameter.message.constants import E_AUTH_SESSION_STATE_NO_STATE_MAINTAINED
from hypothesis import given, settings
from hypothesis import strategies as st

from webims.diameter import DiameterError, DiameterFramer, FramingError, cx, decode, error_answer
from webims.diameter.codec import peek_header
from webims.diameter.cx import CxMessage
from webims.diameter.cxdefs import CxResult
from webims.diameter.errors import (
    DIAMETER_INVALID_HDR_BITS,
    DIAMETER_INVALID_MESSAGE_LENGTH,
    DIAMETER_UNSUPPORTED_VERSION,
)

CX = 16777216


def uar(hop: int = 1) -> bytes:
    r = UserAuthorizationRequest()
    r.header.application_id = CX
    r.header.hop_by_hop_identifier = hop
    r.header.end_to_end_identifier = 1000 + hop
    r.session_id = f"icscf.home1.net;{hop}"
    r.origin_host = b"icscf.home1.net"
    r.origin_realm = b"home1.net"
    r.destination_realm = b"home1.net"
    r.user_name = "user1_private@home1.net"
    r.public_identity = "sip:user1_public1@home1.net"
    r.visited_network_identifier = b"visited1.net"
    r.auth_session_state = E_AUTH_SESSION_STATE_NO_STATE_MAINTAINED
    return bytes(r.as_bytes())


def test_messages_come_out_whole_however_the_stream_is_cut() -> None:
    stream = uar(1) + uar(2) + uar(3)
    framer = DiameterFramer()
    out = []
    for i in range(0, len(stream), 7):
        framer.feed(stream[i : i + 7])
        while (m := framer.next_message()) is not None:
            out.append(m)
    assert [peek_header(m).hop_by_hop for m in out] == [1, 2, 3]
    assert framer.buffered == 0
    msg = decode(out[1])
    assert msg.header.command_code == 300 and msg.header.application_id == CX
    assert CxMessage(msg).text(cx.PUBLIC_IDENTITY) == "sip:user1_public1@home1.net"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=30))
def test_any_split_gives_the_same_messages(cuts: list[int]) -> None:
    stream = uar(1) + uar(2)
    framer = DiameterFramer()
    out, pos = [], 0
    for n in [*cuts, len(stream)]:
        framer.feed(stream[pos : pos + n])
        pos += n
        while (m := framer.next_message()) is not None:
            out.append(m)
    assert out == [uar(1), uar(2)]


@pytest.mark.parametrize(
    ("head", "code"),
    [
        (b"\x02\x00\x00\x14", DIAMETER_UNSUPPORTED_VERSION),
        (b"\x01\x00\x00\x10", DIAMETER_INVALID_MESSAGE_LENGTH),  # shorter than a header
        (b"\x01\x00\x00\x15", DIAMETER_INVALID_MESSAGE_LENGTH),  # not a multiple of 4
        (b"\x01\xff\xff\xfc", DIAMETER_INVALID_MESSAGE_LENGTH),  # over the limit
        (b"GET / HTTP/1.1\r\n", DIAMETER_UNSUPPORTED_VERSION),
    ],
)
def test_a_broken_header_kills_the_framer(head: bytes, code: int) -> None:
    framer = DiameterFramer()
    framer.feed(head + b"\x00" * 16)
    with pytest.raises(FramingError) as err:
        framer.next_message()
    assert err.value.result_code == code
    with pytest.raises(FramingError):
        framer.next_message()  # dead: the next message's start is unknown


def test_undecodable_avps_raise_a_diameter_error() -> None:
    data = bytearray(uar())
    data[20 + 5 : 20 + 8] = (0xFFFFFF).to_bytes(3, "big")  # first AVP claims 16 MiB
    with pytest.raises(DiameterError) as err:
        decode(bytes(data))
    assert not isinstance(err.value, FramingError)


def test_header_bit_rules() -> None:
    data = bytearray(uar())
    data[4] |= 0x20  # E bit on a request
    with pytest.raises(DiameterError) as err:
        decode(bytes(data))
    assert err.value.result_code == DIAMETER_INVALID_HDR_BITS and err.value.protocol_error


def test_error_answer_from_the_header_alone() -> None:
    req = peek_header(uar(42))
    answer = decode(
        error_answer(
            req, 3001, origin_host=b"hss.home1.net", origin_realm=b"home1.net", session_id="s;1"
        )
    )
    h = answer.header
    assert (h.command_code, h.application_id, h.hop_by_hop_identifier) == (300, CX, 42)
    assert h.end_to_end_identifier == 1042
    assert not h.is_request and h.is_error  # 3xxx: E bit
    read = CxMessage(answer)
    assert read.result() == CxResult.base(3001)
    assert read.first(cx.ORIGIN_HOST, 0) == b"hss.home1.net"
    ok = decode(error_answer(req, 5001, origin_host=b"h", origin_realm=b"r"))
    assert not ok.header.is_error and CxMessage(ok).result() == CxResult.base(5001)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_escapes_as_another_exception(data: bytes) -> None:
    framer = DiameterFramer(max_message_size=4096)
    framer.feed(data)
    try:
        while (m := framer.next_message()) is not None:
            decode(m)
    except DiameterError:
        pass
