"""Calls between two browsers through the IMS core (SPEC.md §9.7, items 23–27
and 29, without media anchoring): third-party SIP libraries as published on
npm (JsSIP and SIP.js, each calling each), in Debian's headless Chromium, each
page registered with its own Bearer token from ``webims token``.

tests/wic/browser_call.mjs runs both pages against ``webims up``; everything
runs inside a loopback-only network namespace (tests/netns.py), so that ICE
finds 127.0.0.1 and nothing else.  user1 calls user2's IMPU; the INVITE goes
WIC → eP-CSCF → S-CSCF (originating, through the Service-Route) → I-CSCF
(LIR) → S-CSCF (terminating) → eP-CSCF (the Path's flow token) → the callee's
WebSocket; the callee answers with audio; ACK and BYE follow the Record-Route
set over the same WebSocket flows; audio arrives at both ends through ICE and
DTLS-SRTP between the browsers.

What each library received is checked on the wire: the INVITE at the callee
asserts the caller's IMPU, carries no token and no charging header, keeps the
WebRTC offer whole, and names the called IMPU; the 200 OK at the caller
carries no charging header.

Node or Chromium missing, or no network namespace, fails the tests.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.netns import Enter
from webims.sip import Message, Request, Response

from .conftest import WebSystem, call_report, need_tool

DRIVER = Path(__file__).with_name("browser_call.mjs")
USER1 = "sip:user1_public1@home1.net"
USER2 = "sip:user2_public1@home1.net"
CHARGING = ("P-Charging-Vector", "P-Charging-Function-Addresses")


def token(system: WebSystem, enter: Enter, user: str) -> str:
    argv = ["webims", "token", "--config", str(system.config), "--user", user]
    argv = [*argv, "--password", f"{user}-secret"]
    out = subprocess.run(
        enter([sys.executable, "-m", *argv]),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def call(system: WebSystem, enter: Enter, caller: str, callee: str) -> dict[str, Any]:
    """The driver's report for a call from user1 (library ``caller``) to user2."""
    server = f"wss://127.0.0.1:{system.wss_port}/"
    a = f"{caller},{USER1},{token(system, enter, 'user1')}"
    b = f"{callee},{USER2},{token(system, enter, 'user2')}"
    return call_report(enter([need_tool("node"), str(DRIVER), server, a, b]))


def received(side: dict[str, Any], kind: type[Message], method: str) -> list[Any]:
    """The requests of ``method`` (or the responses to it) a page received."""
    out = []
    for direction, msg in side["messages"]:
        if direction != "received" or not isinstance(msg, kind):
            continue
        if (msg.method if isinstance(msg, Request) else msg.cseq.method) == method:
            out.append(msg)
    return out


def sdp_lines(body: bytes) -> list[str]:
    return body.decode().splitlines()


LIBRARIES = ("jssip", "sipjs")


@pytest.mark.parametrize(("caller", "callee"), [(a, b) for a in LIBRARIES for b in LIBRARIES])
def test_two_browsers_call_each_other_through_the_core_and_hear_each_other(
    netns_system: tuple[WebSystem, Enter], caller: str, callee: str
) -> None:
    report = call(*netns_system, caller, callee)
    a, b = report["caller"], report["callee"]
    for side in (a, b):
        assert side["register"]["status"] == 200 and side["register"]["registered"], side
        assert side["unregister"]["status"] == 200, side
        assert not [line for line in side["console"] if line.startswith("pageerror")]

    # SPEC §9.7 item 26: the INVITE as the callee's WebSocket delivered it.
    (invite,) = received(b, Request, "INVITE")
    assert [str(v.uri) for v in invite.p_asserted_identity] == [USER1]
    assert invite.headers.get_all("Authorization") == []  # no token left the caller's eP-CSCF
    for name in CHARGING:
        assert invite.headers.get_all(name) == [], name
    called = invite.headers.get_all("P-Called-Party-ID")
    assert called == [f"<{USER2}>"], called
    # Record-Route: both eP-CSCFs (each with its flow token) and the S-CSCF(s).
    record_route = ",".join(invite.headers.get_all("Record-Route")).split(",")
    assert len(record_route) >= 3, record_route
    # Item 23: the WebRTC offer arrives whole (no anchoring here).
    offer = sdp_lines(invite.body)
    assert any(line.startswith("m=audio ") and "UDP/TLS/RTP/SAVPF" in line for line in offer)
    for attribute in ("a=fingerprint:", "a=setup:actpass", "a=ice-ufrag:", "a=candidate:"):
        assert any(line.startswith(attribute) for line in offer), attribute
    assert "a=rtcp-mux" in offer

    # Item 27: the 200 OK back at the caller, through the same path.
    finals = [r for r in received(a, Response, "INVITE") if r.status >= 200]
    assert [r.status for r in finals] == [200], finals
    for name in CHARGING:
        assert finals[0].headers.get_all(name) == [], name
    answer = sdp_lines(finals[0].body)
    assert any(line.startswith("a=fingerprint:") for line in answer)
    # ACK and BYE reached the callee over its WebSocket; the BYE got its 200.
    assert len(received(b, Request, "ACK")) == 1
    assert len(received(b, Request, "BYE")) == 1
    assert [r.status for r in received(a, Response, "BYE")] == [200]

    # Media after ICE and DTLS (item 27), both ways.
    for side in (a, b):
        media = side["media"]
        assert media["ice"] in ("connected", "completed"), media
        assert media["dtls"] == "connected", media
        assert media["packetsReceived"] >= 10 and media["bytesReceived"] > 0, media
    # Item 29: the BYE ended the call on both sides.
    for side in (a, b):
        events = [e["event"] for e in side["events"]]
        assert "ended" in events or "Terminated" in events, events
        assert "failed" not in events, events

    # The call as `webims trace --calls` draws it from what the elements recorded.
    ladder = last_call_ladder(netns_system[0])
    assert ladder.startswith(f"INVITE {USER2}: 200 OK, BYE from the caller after "), ladder
    assert "LIA 2001" in ladder and "200 OK (BYE)" in ladder


def last_call_ladder(system: WebSystem) -> str:
    """The plain ladder of the last call, once the elements have written it
    (they flush their trace every quarter of a second)."""
    argv = [sys.executable, "-m", "webims", "trace", "--calls", "--plain"]
    out = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(
            [*argv, "--config", str(system.config)], capture_output=True, text=True, check=False
        )
        if "200 OK (BYE)" in out.stdout:
            break
        time.sleep(0.3)
    assert out is not None and out.returncode == 0, out
    print(out.stdout)
    return out.stdout
