"""Two people call each other with the WIC page (SPEC.md §9.7 with our own
WIC): each in a headless Chromium of their own, logged in on the WWSF and
registered; the caller types the callee's user part and presses "Call"; the
callee's page shows the call and who makes it, and the callee answers (or
declines); audio flows both ways; the caller hangs up.

tests/wic/wic_call.mjs drives both browsers against ``webims up`` inside a
loopback-only network namespace (the ``netns_system`` fixture), so that ICE
stays on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.netns import Enter
from webims.sip import Request

from .conftest import WebSystem, call_report, need_tool

DRIVER = Path(__file__).with_name("wic_call.mjs")
USER1 = "sip:user1_public1@home1.net"
USER2 = "sip:user2_public1@home1.net"


def wic_call(system: WebSystem, enter: Enter, to: str, mode: str = "") -> dict[str, Any]:
    argv = [need_tool("node"), str(DRIVER), system.url, "user1", "user2", to, mode]
    return call_report(enter(argv))


def states(side: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["state"], s["detail"]) for s in side["states"]]


def invites(side: dict[str, Any], direction: str) -> list[Request]:
    return [
        msg
        for d, msg in side["messages"]
        if d == direction and isinstance(msg, Request) and msg.method == "INVITE"
    ]


def test_two_people_call_each_other_with_the_wic_page(
    netns_system: tuple[WebSystem, Enter],
) -> None:
    report = wic_call(*netns_system, "user2_public1")
    a, b = report["caller"], report["callee"]
    # The user part alone is called in the home domain; the ringing is shown.
    assert states(a) == [
        ("calling", USER2),
        ("calling", "ringing"),
        ("in-call", USER2),
        ("ended", "hung up"),
    ]
    # The callee sees who calls as the network asserted it.
    assert b["incoming"] == USER1
    assert states(b) == [
        ("incoming", USER1),
        ("answering", ""),
        ("in-call", USER1),
        ("ended", "the other side hung up"),
    ]
    for side in (a, b):
        media = side["media"]
        assert media["ice"] in ("connected", "completed") and media["dtls"] == "connected", media
        assert media["packetsReceived"] >= 10 and media["playing"], media
    # TS 24.371 7.2.1: the page's INVITE carries its token; the callee's has none.
    (sent,) = invites(a, "sent")
    assert [v.split()[0] for v in sent.headers.get_all("Authorization")] == ["Bearer"]
    assert str(sent.uri) == USER2
    (delivered,) = invites(b, "received")
    assert delivered.headers.get_all("Authorization") == []
    assert [str(v.uri) for v in delivered.p_asserted_identity] == [USER1]
    # Each person's /trace page shows their registration and this call.
    for side, user in ((a, "user1"), (b, "user2")):
        trace = side["trace"]
        assert trace["headings"] == [f"Last registration of {user}", f"Last call of {user}"]
        registration, last_call = trace["ladders"]
        assert registration.startswith(f"REGISTER sip:{user}_public1@home1.net: 200 OK")
        assert last_call.startswith(f"INVITE {USER2}: 200 OK, BYE from the caller after ")
        assert "LIR" in last_call and "200 OK (BYE)" in last_call


def test_a_declined_call_ends_with_603_at_the_caller(
    netns_system: tuple[WebSystem, Enter],
) -> None:
    report = wic_call(*netns_system, USER2, "decline")
    a, b = report["caller"], report["callee"]
    assert b["declineLabel"] == "Decline"
    assert states(b) == [("incoming", USER1), ("ended", "declined")]
    assert states(a)[-1] == ("ended", "603 Decline")
    assert "in-call" not in [state for state, _ in states(a)]
