"""StreamFramer: SIP message boundaries on a stream (RFC 3261 §18.3, RFC 5626 §4.4.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webims.sip.errors import BodyTooLarge, MessageTooLarge, ParseError
from webims.sip.framing import (
    KEEPALIVE_PING,
    KEEPALIVE_PONG,
    KeepAlive,
    StreamFramer,
    salvage_head,
)
from webims.sip.message import Limits, Request, parse_message


def msg(
    n: int = 1, body: bytes = b"", length_name: str = "Content-Length", method: str = "MESSAGE"
) -> bytes:
    head = (
        f"{method} sip:user1_public1@home1.net SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 192.0.2.4:5060;branch=z9hG4bK{n}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:user2_public1@home1.net>;tag={n}\r\n"
        "To: <sip:user1_public1@home1.net>\r\n"
        f"Call-ID: c{n}@192.0.2.4\r\n"
        f"CSeq: {n} {method}\r\n"
        f"{length_name}: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


def drain(framer: StreamFramer) -> list[bytes | KeepAlive]:
    out: list[bytes | KeepAlive] = []
    while (item := framer.next_message()) is not None:
        out.append(item)
    return out


def frame_all(*chunks: bytes, limits: Limits | None = None) -> list[bytes | KeepAlive]:
    framer = StreamFramer(limits or Limits())
    out: list[bytes | KeepAlive] = []
    for chunk in chunks:
        framer.feed(chunk)
        out.extend(drain(framer))
    return out


def test_one_message() -> None:
    m = msg(body=b"hello")
    assert frame_all(m) == [m]
    parsed = parse_message(m)
    assert isinstance(parsed, Request) and parsed.body == b"hello"


def test_two_messages_in_one_chunk_and_a_partial_third() -> None:
    a, b, c = msg(1, b"one"), msg(2, b""), msg(3, b"three")
    framer = StreamFramer()
    framer.feed(a + b + c[:40])
    assert drain(framer) == [a, b]
    assert framer.buffered == 40
    framer.feed(c[40:])
    assert drain(framer) == [c]
    assert framer.buffered == 0


def test_body_containing_an_empty_line_is_not_a_header_end() -> None:
    body = b"v=0\r\n\r\nnot headers\r\n\r\n"
    m = msg(body=body)
    assert frame_all(m, msg(2)) == [m, msg(2)]


def test_compact_content_length_and_folding() -> None:
    m = msg(body=b"abc", length_name="l")
    assert frame_all(m) == [m]
    folded = msg(body=b"abcd").replace(b"Content-Length: 4", b"Content-Length:\r\n   4")
    assert frame_all(folded) == [folded]
    lower = msg(body=b"ab").replace(b"Content-Length", b"content-LENGTH")
    assert frame_all(lower) == [lower]


def test_similar_header_names_are_not_content_length() -> None:
    m = msg(body=b"xy").replace(b"Max-Forwards", b"X-Content-Length: 99\r\nMax-Forwards")
    assert frame_all(m) == [m]
    ll = msg(body=b"xy").replace(b"Max-Forwards", b"ll: 99\r\nMax-Forwards")
    assert frame_all(ll) == [ll]


def test_keepalives() -> None:
    m = msg()
    assert frame_all(b"\r\n\r\n") == [KEEPALIVE_PING]
    assert frame_all(b"\r\n\r\n\r\n\r\n") == [KEEPALIVE_PING, KEEPALIVE_PING]
    assert frame_all(b"\r\n" + m) == [KEEPALIVE_PONG, m]
    assert frame_all(m + b"\r\n\r\n" + m) == [m, KEEPALIVE_PING, m]
    # A lone CRLF waits: it may be the first half of a ping ...
    assert frame_all(b"\r\n") == []
    assert frame_all(b"\r\n", b"\r\n") == [KEEPALIVE_PING]
    assert frame_all(b"\r\n\r", b"\n") == [KEEPALIVE_PING]
    # ... or a pong, known once something else follows.
    assert frame_all(b"\r\n", m) == [KEEPALIVE_PONG, m]


def test_missing_content_length_is_400_and_the_framer_stays_dead() -> None:
    bad = msg().replace(b"Content-Length: 0\r\n", b"")
    framer = StreamFramer()
    framer.feed(bad + msg(2))
    with pytest.raises(ParseError) as info:
        framer.next_message()
    assert type(info.value) is ParseError and info.value.status == 400
    assert framer.failed
    framer.feed(msg(3))
    with pytest.raises(ParseError):
        framer.next_message()


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1 2", b"", b"0x10"])
def test_invalid_content_length(value: bytes) -> None:
    bad = msg().replace(b"Content-Length: 0", b"Content-Length: " + value)
    with pytest.raises(ParseError) as info:
        frame_all(bad)
    assert info.value.status == 400


def test_conflicting_content_lengths() -> None:
    bad = msg(body=b"ab").replace(b"Max-Forwards", b"l: 3\r\nMax-Forwards")
    with pytest.raises(ParseError):
        frame_all(bad)
    same = msg(body=b"ab").replace(b"Max-Forwards", b"l: 2\r\nMax-Forwards")
    assert frame_all(same) == [same]


def test_limits() -> None:
    limits = Limits(max_message_size=1000, max_header_size=400, max_body_size=300)
    with pytest.raises(BodyTooLarge) as body:
        frame_all(msg(body=b"x" * 301), limits=limits)
    assert body.value.status == 413
    with pytest.raises(BodyTooLarge):
        frame_all(msg().replace(b"Content-Length: 0", b"Content-Length: 99999999999999999999"))
    big_head = msg().replace(b"Max-Forwards", b"X-Pad: " + b"p" * 400 + b"\r\nMax-Forwards")
    with pytest.raises(MessageTooLarge) as head:
        frame_all(big_head, limits=limits)
    assert head.value.status == 513
    # Without any header end yet: the limit applies to what is buffered.
    framer = StreamFramer(limits)
    framer.feed(big_head[:401])
    with pytest.raises(MessageTooLarge):
        framer.next_message()
    whole = Limits(max_message_size=500, max_header_size=400, max_body_size=300)
    with pytest.raises(MessageTooLarge):
        frame_all(msg(body=b"x" * 299), limits=whole)


def test_garbage_is_refused_early() -> None:
    with pytest.raises(ParseError):
        frame_all(b"GET / HTTP/1.1\r\nHost: example.com\r\n")
    with pytest.raises(MessageTooLarge):
        frame_all(b"x" * 9000, limits=Limits(max_line_length=8192))
    framer = StreamFramer()
    framer.feed(b"INVITE sip:a@b SI")
    assert framer.next_message() is None  # start line not complete yet


def test_error_head_salvages_the_fields_to_answer_with() -> None:
    limits = Limits(max_header_size=300)
    big = msg(7, body=b"b" * 10).replace(b"CSeq", b"X-Pad: " + b"p" * 400 + b"\r\nCSeq")
    framer = StreamFramer(limits)
    framer.feed(big)
    with pytest.raises(MessageTooLarge):
        framer.next_message()
    head = framer.error_head()
    assert head is not None
    parsed = parse_message(head)
    assert isinstance(parsed, Request) and parsed.method == "MESSAGE"
    assert parsed.headers.get("Call-ID") == "c7@192.0.2.4"
    assert "X-Pad" not in parsed.headers and "Content-Length" not in parsed.headers


def test_salvage_head() -> None:
    assert salvage_head(b"no line end") is None
    folded = b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n ;branch=z9hG4bK1\r\nX: y\r\n\r\nbody"
    head = salvage_head(folded)
    assert head == b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n ;branch=z9hG4bK1\r\n\r\n"
    assert salvage_head(b"\r\n\r\nOPTIONS sip:a SIP/2.0\r\ni: x\r\n") == (
        b"OPTIONS sip:a SIP/2.0\r\ni: x\r\n\r\n"
    )


def test_byte_by_byte_stays_linear() -> None:
    m = msg(body=b"z" * 1000)
    framer = StreamFramer()
    out: list[bytes | KeepAlive] = []
    for i in range(len(m)):
        framer.feed(m[i : i + 1])
        out.extend(drain(framer))
    assert out == [m]


# -- property: how the stream is cut never changes what comes out -------------

item = st.one_of(
    st.builds(
        lambda n, body, compact: msg(n, body, "l" if compact else "Content-Length"),
        st.integers(1, 10**6),
        st.binary(max_size=200),
        st.booleans(),
    ),
    st.just(b"\r\n\r\n"),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(item, min_size=1, max_size=8), st.data())
def test_any_split_yields_the_same_messages(items: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    expected = [KEEPALIVE_PING if i == b"\r\n\r\n" else i for i in items]
    assert frame_all(stream) == expected
    assert frame_all(*chunks) == expected
