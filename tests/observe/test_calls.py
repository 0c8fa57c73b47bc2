"""The ladder of a call (``webims trace --calls``) found in what the elements
recorded: caller, elements and callee as columns, the LIR/LIA of the called
IMPU, every message of the dialog once, the outcome and who hung up."""

from __future__ import annotations

from pathlib import Path

from webims.diameter.cxdefs import CxCommand
from webims.observe.calls import CALL_COLUMNS, UNANSWERED, find_calls
from webims.observe.ladder import LadderFlow, render_plain
from webims.observe.record import read_trace

from .flows import HSS, I_DIA, I_SIP, IP, P_SIP, P_WSS, S_SIP, Deployment, cx_pair

CALLER = (IP, 50010)
CALLEES = [(IP, 50020), (IP, 50021)]
USER1 = "sip:user1_public1@home1.net"
USER2 = "sip:user2_public1@home1.net"


def sip(
    start: str, call_id: str, method: str, *, cseq: int = 1, to_tag: str | None = None
) -> bytes:
    request = not start.startswith("SIP/2.0 ")
    tag = f";tag={to_tag}" if to_tag else ""
    return (
        f"{start}\r\nVia: SIP/2.0/WSS a.invalid;branch=z9hG4bK{method}{cseq}\r\n"
        + ("Max-Forwards: 70\r\n" if request else "")
        + f"From: <{USER1}>;tag=a\r\nTo: <{USER2}>{tag}\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def record_call(dep: Deployment, call_id: str, devices: int, *, answer: bool = True) -> None:
    """user1 calls user2, whose ``devices`` browsers ring; the first answers
    and the caller hangs up (``answer``), or the S-CSCF finds none: 480."""
    invite = sip(f"INVITE {USER2} SIP/2.0", call_id, "INVITE")
    dep.sip(invite, None, dep.p, CALLER, P_WSS, transport="wss")
    dep.sip(
        sip("SIP/2.0 100 Trying", call_id, "INVITE"), dep.p, None, P_WSS, CALLER, transport="wss"
    )
    dep.sip(invite, dep.p, dep.s, P_SIP, S_SIP)
    dep.sip(invite, dep.s, dep.i, S_SIP, I_SIP)
    lir, lia = cx_pair(CxCommand.LOCATION_INFO, "icscf.home1.net", "", USER2)
    dep.diameter(lir, dep.i, dep.hss, I_DIA, HSS)
    dep.diameter(lia, dep.hss, dep.i, HSS, I_DIA)
    dep.sip(invite, dep.i, dep.s, I_SIP, S_SIP)
    if not answer:
        final = sip("SIP/2.0 480 Temporarily Unavailable", call_id, "INVITE", to_tag="s")
        for sender, receiver, src, dst in (
            (dep.s, dep.i, S_SIP, I_SIP),
            (dep.i, dep.s, I_SIP, S_SIP),
            (dep.s, dep.p, S_SIP, P_SIP),
        ):
            dep.sip(final, sender, receiver, src, dst)
        dep.sip(final, dep.p, None, P_WSS, CALLER, transport="wss")
        return
    for device in CALLEES[:devices]:
        dep.sip(invite, dep.s, dep.p, S_SIP, P_SIP)
        dep.sip(invite, dep.p, None, P_WSS, device, transport="wss")
        ringing = sip("SIP/2.0 180 Ringing", call_id, "INVITE", to_tag=f"b{device[1]}")
        dep.sip(ringing, None, dep.p, device, P_WSS, transport="wss")
    ok = sip("SIP/2.0 200 OK", call_id, "INVITE", to_tag=f"b{CALLEES[0][1]}")
    dep.sip(ok, None, dep.p, CALLEES[0], P_WSS, transport="wss")
    dep.sip(ok, dep.p, None, P_WSS, CALLER, transport="wss")
    if devices > 1:
        cancel = sip(f"CANCEL {USER2} SIP/2.0", call_id, "CANCEL")
        dep.sip(cancel, dep.p, None, P_WSS, CALLEES[1], transport="wss")
    dep.clock.tick(2000)
    tag = f"b{CALLEES[0][1]}"
    ack = sip("ACK sip:b@b.invalid;transport=ws SIP/2.0", call_id, "ACK", to_tag=tag)
    dep.sip(ack, None, dep.p, CALLER, P_WSS, transport="wss")
    dep.sip(ack, dep.p, None, P_WSS, CALLEES[0], transport="wss")
    bye = sip("BYE sip:b@b.invalid;transport=ws SIP/2.0", call_id, "BYE", cseq=2, to_tag=tag)
    dep.sip(bye, None, dep.p, CALLER, P_WSS, transport="wss")
    dep.sip(bye, dep.p, None, P_WSS, CALLEES[0], transport="wss")
    bye_ok = sip("SIP/2.0 200 OK", call_id, "BYE", cseq=2, to_tag=tag)
    dep.sip(bye_ok, None, dep.p, CALLEES[0], P_WSS, transport="wss")
    dep.sip(bye_ok, dep.p, None, P_WSS, CALLER, transport="wss")


def calls(tmp_path: Path, last: int = 1) -> list[LadderFlow]:
    return find_calls(read_trace(tmp_path), last)


def test_a_call_between_two_wics_is_drawn_from_caller_to_callee(tmp_path: Path) -> None:
    dep = Deployment(tmp_path)
    dep.register(1, "user1")
    record_call(dep, "call-1", 1)
    dep.close()
    [call] = calls(tmp_path)
    assert call.columns == CALL_COLUMNS
    got = [(s.src, s.dst, s.label) for s in call.steps]
    assert got[:6] == [
        ("caller", "eP-CSCF", f"INVITE {USER2}"),
        ("eP-CSCF", "caller", "100 Trying"),
        ("eP-CSCF", "S-CSCF", f"INVITE {USER2}"),
        ("S-CSCF", "I-CSCF", f"INVITE {USER2}"),
        ("I-CSCF", "HSS", "LIR"),
        ("HSS", "I-CSCF", "LIA 2001"),
    ]
    assert ("eP-CSCF", "callee", f"INVITE {USER2}") in got
    assert ("callee", "eP-CSCF", "180 Ringing") in got
    assert got[-2:] == [
        ("callee", "eP-CSCF", "200 OK (BYE)"),
        ("eP-CSCF", "caller", "200 OK (BYE)"),
    ]
    # Nothing of the registration before it.
    assert not [label for _, _, label in got if label.startswith("REGISTER")]
    assert call.outcome == "200 OK"
    assert call.title.startswith(f"INVITE {USER2}: 200 OK, BYE from the caller after 2.0 s")
    text = render_plain(call)
    assert "caller" in text.splitlines()[2] and "callee" in text.splitlines()[2]


def test_a_forked_call_draws_each_device_and_the_cancel(tmp_path: Path) -> None:
    dep = Deployment(tmp_path)
    record_call(dep, "call-2", 2)
    dep.close()
    [call] = calls(tmp_path)
    got = [(s.src, s.dst, s.label) for s in call.steps]
    assert ("eP-CSCF", "callee 2", f"INVITE {USER2}") in got
    assert ("eP-CSCF", "callee 2", f"CANCEL {USER2}") in got
    assert ("callee", "eP-CSCF", "200 OK") in got


def test_an_unanswered_call_ends_with_its_final_response(tmp_path: Path) -> None:
    dep = Deployment(tmp_path)
    record_call(dep, "call-3", 0, answer=False)
    dep.close()
    [call] = calls(tmp_path)
    assert call.outcome == "480 Temporarily Unavailable"
    assert call.steps[-1].dst == "caller"
    assert "callee" not in {s.src for s in call.steps} | {s.dst for s in call.steps}


def test_the_last_calls_oldest_first_and_none_without_an_invite(tmp_path: Path) -> None:
    dep = Deployment(tmp_path)
    dep.register(1, "user1")
    dep.close()
    assert calls(tmp_path) == []
    dep = Deployment(tmp_path / "more")
    record_call(dep, "call-a", 1)
    record_call(dep, "call-b", 1, answer=False)
    invite = sip(f"INVITE {USER2} SIP/2.0", "call-c", "INVITE")
    dep.sip(invite, None, dep.p, CALLER, P_WSS, transport="wss")
    dep.close()
    found = calls(tmp_path / "more", last=3)
    assert [c.title.split("Call-ID ")[1].split(",")[0] for c in found] == [
        "call-a",
        "call-b",
        "call-c",
    ]
    assert found[-1].outcome == UNANSWERED
    assert [c.outcome for c in calls(tmp_path / "more", last=1)] == [UNANSWERED]
