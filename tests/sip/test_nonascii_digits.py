"""Numbers on the wire are ASCII digits: "²" or "٣" pass ``str.isdigit`` but not
``int``, and must be a parse error (400), never an exception of another kind."""

from __future__ import annotations

import pytest

from webims.sip import parse_message
from webims.sip.errors import ParseError
from webims.sip.grammar import is_digits
from webims.sip.message import Request

DIGITS = ("²", "٣", "1²", "⑦")


def options(cseq: str = "1", via_params: str = ";rport") -> bytes:
    return (
        "OPTIONS sip:a@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx{via_params}\r\n"
        "From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\n"
        f"Call-ID: c\r\nCSeq: {cseq} OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("text", DIGITS)
def test_only_ascii_digits_are_digits(text: str) -> None:
    assert text.isdigit() or not text.isascii()
    assert not is_digits(text)
    assert is_digits("0123456789")


@pytest.mark.parametrize("text", DIGITS)
def test_a_cseq_number_in_other_digits_is_a_parse_error(text: str) -> None:
    msg = parse_message(options(cseq=text))
    with pytest.raises(ParseError):
        msg.cseq  # noqa: B018


@pytest.mark.parametrize("text", DIGITS)
def test_an_rport_in_other_digits_is_a_parse_error(text: str) -> None:
    msg = parse_message(options(via_params=f";rport={text}"))
    assert isinstance(msg, Request)
    with pytest.raises(ParseError):
        msg.top_via  # noqa: B018
