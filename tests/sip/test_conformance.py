"""RFC 4475 and RFC 5118 torture messages, as conformance/sip/manifest.toml says.

Each message goes through what a webims CSCF does on receipt: parse, then the
§8.2/§16.3 checks (``check_proxy_request``, plus ``check_register`` for a
REGISTER, whose Contacts every CSCF on its path reads) or, for a response,
``check_response``.  ``expect = "accept"`` entries must pass and round-trip;
integer entries must fail with exactly that status.  known_failing.toml lists
documented deviations (it is empty: a deviation needs a reason a reader accepts).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from webims.sip import (
    Request,
    Response,
    SipError,
    SipURI,
    check_proxy_request,
    check_register,
    check_response,
    parse_message,
)

ROOT = Path(__file__).resolve().parents[2] / "conformance" / "sip"
MANIFEST = tomllib.loads((ROOT / "manifest.toml").read_text())["message"]
KNOWN_FAILING = {
    e["file"]: e["reason"]
    for e in tomllib.loads((ROOT / "known_failing.toml").read_text()).get("entry", [])
}
SUPPORTED = frozenset({"path", "outbound", "gruu"})


def outcome(data: bytes) -> tuple[str | int, Request | Response | None]:
    try:
        msg = parse_message(data)
        if isinstance(msg, Request):
            check_proxy_request(msg, supported=SUPPORTED)
            if msg.method == "REGISTER":
                check_register(msg)
        else:
            check_response(msg)
    except SipError as err:
        return err.status, None
    return "accept", msg


def test_manifest_covers_every_vector() -> None:
    on_disk = {str(p.relative_to(ROOT)) for p in ROOT.rglob("*.dat")}
    listed = [m["file"] for m in MANIFEST]
    assert len(listed) == len(set(listed))
    assert on_disk == set(listed)


def _request(msg: Request | Response) -> Request:
    assert isinstance(msg, Request)
    return msg


def _sip_uri(msg: Request | Response) -> SipURI:
    uri = _request(msg).uri
    assert isinstance(uri, SipURI)
    return uri


def _status(msg: Request | Response) -> int:
    assert isinstance(msg, Response)
    return msg.status


# The facts a manifest entry may check, by the name it uses.
FACTS: dict[str, Callable[[Request | Response], Any]] = {
    "method": lambda m: _request(m).method,
    "status": _status,
    "request_uri": lambda m: _request(m).uri_text,
    "request_uri_host": lambda m: _sip_uri(m).host,
    "request_uri_port": lambda m: _sip_uri(m).port,
    "via_count": lambda m: len(m.vias),
    "top_via_host": lambda m: m.top_via.host,
    "top_via_port": lambda m: m.top_via.port,
    "top_via_branch": lambda m: m.top_via.branch,
    "call_id": lambda m: m.call_id,
    "cseq_seq": lambda m: m.cseq.seq,
    "cseq_method": lambda m: m.cseq.method,
    "from_display_name": lambda m: m.from_.display_name,
    "to_tag": lambda m: m.to.tag,
    "max_forwards": lambda m: m.max_forwards,
    "content_length": lambda m: len(m.body),
    "header_count": lambda m: len(m.headers),
}


def _fact(msg: Request | Response, key: str) -> Any:
    assert key in FACTS, f"unknown check {key}"
    return FACTS[key](msg)


@pytest.mark.parametrize("entry", MANIFEST, ids=[m["file"] for m in MANIFEST])
def test_vector(entry: dict[str, Any]) -> None:
    if entry["file"] in KNOWN_FAILING:
        # Documented deviation: it must still deviate, or the list is stale.
        got, _ = outcome((ROOT / entry["file"]).read_bytes())
        assert got != entry["expect"], f"{entry['file']} now passes: drop it from known_failing"
        return
    data = (ROOT / entry["file"]).read_bytes()
    got, msg = outcome(data)
    assert got == entry["expect"], f"{entry['rfc']} {entry['title']}: {entry['note']}"
    if msg is None:
        return
    for key, want in entry.get("checks", {}).items():
        assert _fact(msg, key) == want, key
    if entry.get("roundtrip", True):
        wire = msg.serialize()
        again = parse_message(wire)
        assert again.serialize() == wire
        assert again.headers.keys() == msg.headers.keys()
        assert again.body == msg.body
        # A changed message (as a proxy forwards it) must still parse to the same facts.
        msg.headers.add_first("Via", "SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKconformance")
        forwarded = parse_message(msg.serialize())
        assert len(forwarded.vias) == len(msg.vias)
        assert forwarded.body == msg.body
        for key, want in entry.get("checks", {}).items():
            if key not in (
                "via_count",
                "top_via_host",
                "top_via_port",
                "top_via_branch",
                "header_count",
            ):
                assert _fact(forwarded, key) == want, key


def test_known_failing_is_empty() -> None:
    assert KNOWN_FAILING == {}
