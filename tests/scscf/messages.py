"""Requests as the eP-CSCF and the I-CSCF send them to the S-CSCF (the wire
conventions of the contract, items 2–5), as text."""

from __future__ import annotations

import hashlib
import itertools
import xml.etree.ElementTree as ET

from webims.sip.auth import Challenge

from .conftest import WAF, SipPeer

_ids = itertools.count(1)
INSTANCE = "<urn:uuid:00000000-0000-4000-8000-00000000000{n}>"
PCSCF_PATH = "<sip:flowtoken{n}@pcscf.home1.net:5060;transport=tcp;lr;ob>"
NS = "{urn:ietf:params:xml:ns:reginfo}"


def new_call_id() -> str:
    return f"call-{next(_ids)}@test"


def register(
    peer: SipPeer,
    route: str,
    impu: str,
    impi: str,
    *,
    expires: int | None = 600,
    contact: str | None = None,
    n: int = 1,
    reg_id: bool = True,
    entity: str | None = WAF,
    auth_done: bool = True,
    authorization: str | None = None,
    path: bool = True,
    path_value: str | None = None,
    call_id: str | None = None,
    cseq: int = 1,
    contact_expires: int | None = None,
    extra: str = "",
) -> str:
    """A REGISTER; returns its Call-ID."""
    call_id = call_id or new_call_id()
    lines = [
        "REGISTER sip:home1.net SIP/2.0",
        f"Via: {peer.via()}",
        f"Route: {route}",
        "Max-Forwards: 69",
        f"From: <{impu}>;tag=reg{n}",
        f"To: <{impu}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
    ]
    if contact is None:
        contact = f"<sip:wic{n}@192.0.2.{n}:50{n:02d};transport=ws>"
        contact += f';+sip.instance="{INSTANCE.format(n=n)}"'
        if reg_id:
            contact += ";reg-id=1"
    if contact_expires is not None:
        contact += f";expires={contact_expires}"
    lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if path:
        lines += [
            f"Path: {path_value or PCSCF_PATH.format(n=n)}",
            "Require: path",
            "Supported: path, outbound",
        ]
    lines += [
        'P-Visited-Network-ID: "home1.net"',
        'P-Charging-Vector: icid-value="icid-test-1";orig-ioi=home1.net',
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    elif auth_done:
        value = (
            f'Digest username="{impi}", realm="home1.net", uri="sip:home1.net", nonce="", '
            'response="", integrity-protected="auth-done"'
        )
        if entity is not None:
            value += f', authorization-entity="{entity}"'
        lines.append(f"Authorization: {value}")
    text = "\r\n".join(lines) + "\r\n" + extra + "Content-Length: 0\r\n\r\n"
    peer.send(text)
    return call_id


def digest_response(
    challenge: Challenge, impi: str, password: str, *, uri: str = "sip:home1.net", nc: int = 1
) -> str:
    """The Authorization a UA answers a Digest challenge with (RFC 2617, qop=auth)."""
    realm = challenge.get("realm") or ""
    nonce = challenge.get("nonce") or ""

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5(f"{impi}:{realm}:{password}")
    ha2 = md5(f"REGISTER:{uri}")
    cnonce = "0a4f113b"
    ncs = f"{nc:08x}"
    response = md5(f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{impi}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm=MD5, qop=auth, nc={ncs}, cnonce="{cnonce}"'
    )


def subscribe(
    peer: SipPeer,
    route: str | None,
    impu: str,
    *,
    asserted: str,
    from_uri: str | None = None,
    expires: int = 600000,
    call_id: str | None = None,
    to_tag: str | None = None,
    cseq: int = 1,
    record_route: str | None = None,
    uri: str | None = None,
) -> str:
    """A reg event SUBSCRIBE (contract item 5); returns its Call-ID."""
    call_id = call_id or new_call_id()
    to = f"<{impu}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"SUBSCRIBE {uri or impu} SIP/2.0",
        f"Via: {peer.via()}",
    ]
    if route:
        lines.append(f"Route: {route}")
    if record_route:
        lines.append(f"Record-Route: {record_route}")
    lines += [
        "Max-Forwards: 69",
        f"From: <{from_uri or asserted}>;tag=sub1",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} SUBSCRIBE",
        f"P-Asserted-Identity: <{asserted}>",
        f"Contact: <sip:127.0.0.1:{peer.local_port};transport=tcp>",
        "Event: reg",
        f"Expires: {expires}",
        "Accept: application/reginfo+xml",
        "Content-Length: 0",
    ]
    peer.send("\r\n".join(lines) + "\r\n\r\n")
    return call_id


def request(
    peer: SipPeer,
    method: str,
    uri: str,
    *,
    route: str | None = None,
    asserted: str | None = None,
    from_uri: str = "sip:caller@home1.net",
    call_id: str | None = None,
) -> str:
    call_id = call_id or new_call_id()
    lines = [f"{method} {uri} SIP/2.0", f"Via: {peer.via()}"]
    if route:
        lines.append(f"Route: {route}")
    lines += [
        "Max-Forwards: 69",
        f"From: <{from_uri}>;tag=c1",
        f"To: <{uri}>",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:caller@127.0.0.1:{peer.local_port};transport=tcp>",
    ]
    if asserted:
        lines.append(f"P-Asserted-Identity: <{asserted}>")
    lines.append("Content-Length: 0")
    peer.send("\r\n".join(lines) + "\r\n\r\n")
    return call_id


def reginfo(body: bytes) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == f"{NS}reginfo", root.tag
    return root


def registrations(root: ET.Element) -> dict[str, ET.Element]:
    return {r.get("aor", ""): r for r in root.findall(f"{NS}registration")}


def contacts(registration: ET.Element) -> list[ET.Element]:
    return registration.findall(f"{NS}contact")
