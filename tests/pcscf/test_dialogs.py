"""The eP-CSCF's table of UE dialogs (webims.pcscf.dialogs): which responses make
a dialog, the route set a UE's later requests will take, and its bounds."""

from __future__ import annotations

from webims.pcscf.dialogs import MAX_PER_FLOW, Dialogs, UeDialog, beyond_us
from webims.sip import Request, Response, parse_message
from webims.sip.uri import URI, SipURI
from webims.transport.flow import Flow

WIC = Flow("wss", ("127.0.0.1", 7443), ("127.0.0.1", 50000), 1)
OTHER = Flow("wss", ("127.0.0.1", 7443), ("127.0.0.1", 50001), 2)
OURS = "<sip:tok@pcscf.home1.net:5060;transport=tcp;lr>"
GM_SIDE = "<sip:tok@127.0.0.1:5060;lr>"
S_CSCF = "<sip:scscf.home1.net:5080;transport=tcp;lr>"
FAR = "<sip:tok2@pcscf.visited.net:5060;transport=tcp;lr>"


def is_ours(uri: URI) -> bool:
    return isinstance(uri, SipURI) and uri.user == "tok"


def request(record_route: list[str], *, from_tag: str = "ue") -> Request:
    rr = "".join(f"Record-Route: {r}\r\n" for r in record_route)
    msg = parse_message(
        (
            "INVITE sip:user2_public1@home1.net SIP/2.0\r\n"
            "Via: SIP/2.0/WSS a.invalid;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n"
            f"{rr}From: <sip:user1_public1@home1.net>;tag={from_tag}\r\n"
            "To: <sip:user2_public1@home1.net>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
    )
    assert isinstance(msg, Request)
    return msg


def response(status: int, to_tag: str | None, record_route: list[str]) -> Response:
    rr = "".join(f"Record-Route: {r}\r\n" for r in record_route)
    tag = f";tag={to_tag}" if to_tag else ""
    msg = parse_message(
        (
            f"SIP/2.0 {status} Whatever\r\nVia: SIP/2.0/WSS a.invalid;branch=z9hG4bK1\r\n"
            f"{rr}From: <sip:user1_public1@home1.net>;tag=ue\r\n"
            f"To: <sip:user2_public1@home1.net>{tag}\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
    )
    assert isinstance(msg, Response)
    return msg


def test_an_originating_dialog_takes_the_record_route_reversed_beyond_us() -> None:
    dialogs = Dialogs()
    # As the answer comes back: the far end's proxy on top, ours (both halves) last.
    rr = [FAR, S_CSCF, OURS, GM_SIDE]
    dialogs.note_originating(WIC, request([]), response(200, "far", rr), is_ours)
    dialog = dialogs.get(("c1", "ue", "far"))
    assert dialog == UeDialog(WIC, (S_CSCF, FAR))


def test_a_terminating_dialog_keeps_the_record_route_the_core_sent() -> None:
    dialogs = Dialogs()
    invite = request([S_CSCF, FAR], from_tag="caller")
    dialogs.note_terminating(WIC, invite, response(180, "ue2", []), (S_CSCF, FAR))
    assert dialogs.get(("c1", "ue2", "caller")) == UeDialog(WIC, (S_CSCF, FAR))


def test_only_1xx_with_a_tag_and_2xx_make_dialogs() -> None:
    dialogs = Dialogs()
    for status, tag in ((100, "t100"), (180, None), (486, "t486"), (300, "t300")):
        dialogs.note_originating(WIC, request([]), response(status, tag, [OURS]), is_ours)
    assert len(dialogs) == 0
    dialogs.note_originating(WIC, request([]), response(183, "early", [OURS]), is_ours)
    dialogs.note_originating(WIC, request([]), response(200, "other", [OURS]), is_ours)
    assert len(dialogs) == 2  # forked answers: a dialog each
    assert dialogs.get(("c1", "ue", "early")) == UeDialog(WIC, ())


def test_a_flow_keeps_at_most_max_per_flow_dialogs_and_loses_them_with_it() -> None:
    dialogs = Dialogs()
    for n in range(MAX_PER_FLOW + 5):
        dialogs.add((f"c{n}", "ue", "far"), UeDialog(WIC, ()))
    dialogs.add(("x", "ue", "far"), UeDialog(OTHER, ()))
    assert len(dialogs) == MAX_PER_FLOW + 1
    assert dialogs.get(("c0", "ue", "far")) is None  # the oldest went first
    assert dialogs.get((f"c{MAX_PER_FLOW + 4}", "ue", "far")) is not None
    dialogs.drop_flow(WIC)
    assert len(dialogs) == 1 and dialogs.get(("x", "ue", "far")) is not None
    dialogs.remove(("x", "ue", "far"))
    dialogs.remove(("x", "ue", "far"))
    assert len(dialogs) == 0


def test_a_key_taken_by_another_flow_moves_there_alone() -> None:
    dialogs = Dialogs()
    dialogs.add(("c", "ue", "far"), UeDialog(WIC, ()))
    dialogs.add(("c", "ue", "far"), UeDialog(OTHER, (S_CSCF,)))
    dialogs.drop_flow(WIC)
    assert dialogs.get(("c", "ue", "far")) == UeDialog(OTHER, (S_CSCF,))


def test_beyond_us_strips_only_our_entries_at_the_head() -> None:
    route_set = request([OURS, S_CSCF, OURS]).record_routes
    assert beyond_us(route_set, is_ours) == (S_CSCF, OURS)
    assert beyond_us([], is_ours) == ()


def test_an_answer_whose_record_route_cannot_be_read_makes_no_dialog() -> None:
    dialogs = Dialogs()
    dialogs.note_originating(WIC, request([]), response(200, "far", ["<sip:@@@;lr"]), is_ours)
    assert len(dialogs) == 0
