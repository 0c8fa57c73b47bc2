"""SIP messages for the transport tests."""

from __future__ import annotations

import itertools

_counter = itertools.count(1)


def request(
    method: str = "OPTIONS",
    *,
    transport: str = "UDP",
    sent_by: str = "192.0.2.10:5060",
    rport: bool = True,
    body: bytes = b"",
    extra: str = "",
    content_length: bool = True,
) -> bytes:
    n = next(_counter)
    via = f"SIP/2.0/{transport} {sent_by};branch=z9hG4bK-t{n}" + (";rport" if rport else "")
    head = (
        f"{method} sip:scscf1.home1.net SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:user1_public1@home1.net>;tag=f{n}\r\n"
        "To: <sip:user1_public1@home1.net>\r\n"
        f"Call-ID: call-{n}@192.0.2.10\r\n"
        f"CSeq: {n} {method}\r\n"
        f"{extra}"
    )
    if content_length:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def response_to(req: bytes, status: int = 200, reason: str = "OK") -> bytes:
    """A response copying Via/From/To/Call-ID/CSeq of ``req`` (raw bytes)."""
    lines = req.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    keep = [
        line
        for line in lines
        if line.split(b":", 1)[0].lower() in (b"via", b"from", b"to", b"call-id", b"cseq")
    ]
    return (
        f"SIP/2.0 {status} {reason}\r\n".encode()
        + b"\r\n".join(keep)
        + b"\r\nContent-Length: 0\r\n\r\n"
    )
