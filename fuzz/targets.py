"""What the fuzzers exercise: every entry point a peer's bytes reach.

A target may raise :class:`webims.sip.SipError` (the bytes were bad and the
error says how to answer); any other exception is a bug.
"""

from __future__ import annotations

import contextlib

from webims.diameter import DiameterError, DiameterFramer, decode
from webims.sip import (
    Request,
    SipError,
    check_proxy_request,
    check_response,
    parse_message,
    response_for_error,
)
from webims.sip.framing import KeepAlive, StreamFramer


def sip_message(data: bytes) -> None:
    """Parse, check, read every typed header, serialise, answer errors."""
    try:
        msg = parse_message(data)
    except SipError:
        return
    try:
        if isinstance(msg, Request):
            check_proxy_request(msg, supported={"path", "outbound"})
        else:
            check_response(msg)
    except SipError as err:
        if isinstance(msg, Request):
            response_for_error(msg, err).serialize()
        return
    for accessor in (
        "vias",
        "contacts",
        "routes",
        "record_routes",
        "paths",
        "service_routes",
        "p_asserted_identity",
        "p_preferred_identity",
        "p_associated_uri",
        "p_visited_network_id",
        "p_charging_vector",
        "expires",
        "supported",
        "authorization",
        "proxy_authorization",
        "www_authenticate",
        "proxy_authenticate",
    ):
        with contextlib.suppress(SipError):
            getattr(msg, accessor)
    wire = msg.serialize()
    msg.headers.add_first("Via", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKfuzz")
    again = parse_message(msg.serialize())
    assert again.body == msg.body
    assert parse_message(wire).serialize() == wire


def stream_framer(data: bytes) -> None:
    """Feed a stream in pieces whose sizes come from the input itself."""
    if not data:
        return
    step = data[0] % 64 + 1
    framer = StreamFramer()
    try:
        for i in range(1, len(data), step):
            framer.feed(data[i : i + step])
            while (item := framer.next_message()) is not None:
                if not isinstance(item, KeepAlive):
                    with contextlib.suppress(SipError):
                        parse_message(item)
    except SipError:
        return


def diameter_stream(data: bytes) -> None:
    """Frame and decode Diameter: only DiameterError may come out."""
    framer = DiameterFramer(max_message_size=1 << 16)
    framer.feed(data)
    try:
        while (message := framer.next_message()) is not None:
            decode(message)
    except DiameterError:
        return
