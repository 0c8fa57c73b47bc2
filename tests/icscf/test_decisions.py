"""The I-CSCF's decisions alone: S-CSCF selection, the UAR's fields, and
what each UAA / LIA leads to (SPEC §2.2)."""

from __future__ import annotations

import pytest

from webims.diameter.cx import Capabilities, LiAnswer, UaAnswer
from webims.diameter.cxdefs import CxResult, ExperimentalResult, UserAuthorizationType
from webims.icscf.registration import (
    derive_impi,
    is_deregistration,
    uaa_outcome,
    uar_parameters,
)
from webims.icscf.routing import Outcome, route_to
from webims.icscf.selection import select_scscf
from webims.icscf.terminating import is_terminating, lia_outcome
from webims.sip import Request, parse_message, parse_uri

E = ExperimentalResult
A, B, C = "sip:a.home1.net", "sip:b.home1.net", "sip:c.home1.net"


def reg(*extra: str) -> Request:
    text = (
        "REGISTER sip:home1.net SIP/2.0\r\nVia: SIP/2.0/TCP p;branch=z9hG4bK1\r\n"
        "From: <sip:u1@home1.net>;tag=1\r\nTo: <sip:u1@home1.net:5060;user=phone>\r\n"
        "Call-ID: c\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
        + "".join(e + "\r\n" for e in extra)
        + "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


# -- selection ---------------------------------------------------------------------


def test_s8_29_selection_needs_every_mandatory_capability() -> None:
    table = {A: (1,), B: (1, 2), C: (2, 3)}
    assert select_scscf(Capabilities(mandatory=(1, 2)), table) == B
    assert select_scscf(Capabilities(mandatory=(4,)), table) is None


def test_s8_29_selection_prefers_the_most_optional_then_the_first_listed() -> None:
    table = {A: (1,), B: (1, 5), C: (1, 5, 6)}
    assert select_scscf(Capabilities(mandatory=(1,), optional=(5, 6)), table) == C
    assert select_scscf(Capabilities(mandatory=(1,), optional=(5,)), table) == B
    assert select_scscf(Capabilities(), table) == A
    assert select_scscf(None, table) == A


def test_s8_29_an_scscf_without_a_list_has_every_capability() -> None:
    assert select_scscf(Capabilities(mandatory=(9,), optional=(8,)), {A: (9,), B: None}) == B


def test_s8_29_server_names_in_the_capabilities_come_first_when_known() -> None:
    table = {A: None, B: None}
    assert select_scscf(Capabilities(server_names=(B,)), table) == B
    assert select_scscf(Capabilities(server_names=("sip:unknown",)), table) == A
    assert select_scscf(Capabilities(), table, exclude=[A]) == B


def test_route_to_marks_the_scscf_as_loose_router() -> None:
    assert route_to("sip:scscf.home1.net:5080;transport=tcp") == (
        "<sip:scscf.home1.net:5080;transport=tcp;lr>"
    )
    assert route_to("sip:s.home1.net;lr") == "<sip:s.home1.net;lr>"


# -- UAR fields ----------------------------------------------------------------------


def test_s8_28_uar_from_digest_username_and_p_visited_network_id() -> None:
    uar = uar_parameters(
        reg(
            'Authorization: Digest username="u1_private@home1.net", realm="home1.net", '
            'uri="sip:home1.net", nonce="", response="", integrity-protected="auth-done"',
            'P-Visited-Network-ID: "visited.net"',
            "Contact: <sip:x@h.invalid;transport=ws>;expires=600",
        ),
        "home1.net",
    )
    assert uar.impi == "u1_private@home1.net"
    assert uar.impu == "sip:u1@home1.net"  # no port, no parameters
    assert uar.visited_network == "visited.net"
    assert uar.auth_type is UserAuthorizationType.REGISTRATION


def test_s8_28_impi_derived_from_impu_without_scheme_port_or_parameters() -> None:
    assert derive_impi(parse_uri("sip:u1@Home1.net:5060;transport=tcp")) == "u1@home1.net"
    assert derive_impi(parse_uri("tel:+4312345;phone-context=x")) == "+4312345"
    uar = uar_parameters(reg("Contact: <sip:x@h.invalid>"), "home1.net")
    assert uar.impi == "u1@home1.net"
    assert uar.visited_network == "home1.net"  # no P-Visited-Network-ID: the home network


@pytest.mark.parametrize(
    ("headers", "dereg"),
    [
        (["Expires: 0", "Contact: <sip:x@h>"], True),
        (["Contact: <sip:x@h>;expires=0", "Contact: <sip:y@h>;expires=0"], True),
        (["Contact: <sip:x@h>;expires=0", "Contact: <sip:y@h>;expires=60"], False),
        (["Expires: 0", "Contact: <sip:x@h>;expires=60"], False),
        (["Expires: 600", "Contact: <sip:x@h>;expires=0"], True),
        (["Expires: 0", "Contact: *"], True),
        (["Expires: 0"], False),  # a query, not a removal
        (["Contact: <sip:x@h>"], False),
    ],
)
def test_s9_6_de_registration_when_every_binding_expires_at_0(
    headers: list[str], dereg: bool
) -> None:
    assert is_deregistration(reg(*headers)) is dereg


# -- UAA and LIA outcomes ---------------------------------------------------------------


def ua(result: CxResult, name: str | None = None, caps: Capabilities | None = None) -> UaAnswer:
    return UaAnswer(result, name, caps)


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (ua(CxResult.exp(E.DIAMETER_FIRST_REGISTRATION), caps=Capabilities()), Outcome(A)),
        (ua(CxResult.exp(E.DIAMETER_FIRST_REGISTRATION), B), Outcome(B)),
        (ua(CxResult.exp(E.DIAMETER_SUBSEQUENT_REGISTRATION), B), Outcome(B)),
        (ua(CxResult.base(2001), B), Outcome(B)),  # de-registration
        (ua(CxResult.base(2001), caps=Capabilities(mandatory=(2,))), Outcome(B)),
        (
            ua(CxResult.exp(E.DIAMETER_FIRST_REGISTRATION), caps=Capabilities((9,))),
            Outcome(None, 600, "No S-CSCF Available"),
        ),
        (ua(CxResult.exp(E.DIAMETER_ERROR_USER_UNKNOWN)), Outcome(None, 403)),
        (ua(CxResult.exp(E.DIAMETER_ERROR_IDENTITIES_DONT_MATCH)), Outcome(None, 403)),
        (ua(CxResult.exp(E.DIAMETER_ERROR_ROAMING_NOT_ALLOWED)), Outcome(None, 403)),
        (ua(CxResult.exp(E.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)), Outcome(None, 403)),
        (ua(CxResult.base(5003)), Outcome(None, 403)),  # AUTHORIZATION_REJECTED
        (ua(CxResult.base(5012)), Outcome(None, 480)),  # UNABLE_TO_COMPLY
        (ua(CxResult.base(3004)), Outcome(None, 480)),  # TOO_BUSY
    ],
)
def test_s8_29_s8_30_uaa_outcome(answer: UaAnswer, outcome: Outcome) -> None:
    assert uaa_outcome(answer, {A: (1,), B: (1, 2)}) == outcome


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (LiAnswer(CxResult.base(2001), B), Outcome(B)),
        (
            LiAnswer(CxResult.exp(E.DIAMETER_UNREGISTERED_SERVICE), None, Capabilities((2,))),
            Outcome(B),
        ),
        (
            LiAnswer(CxResult.exp(E.DIAMETER_UNREGISTERED_SERVICE), None, Capabilities((9,))),
            Outcome(None, 480, "No S-CSCF Available"),
        ),
        (LiAnswer(CxResult.exp(E.DIAMETER_ERROR_USER_UNKNOWN)), Outcome(None, 404)),
        (LiAnswer(CxResult.exp(E.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)), Outcome(None, 480)),
        (LiAnswer(CxResult.base(5012)), Outcome(None, 480)),
    ],
)
def test_lia_outcome(answer: LiAnswer, outcome: Outcome) -> None:
    assert lia_outcome(answer, {A: (1,), B: (1, 2)}) == outcome


def test_only_initial_requests_for_home_identities_are_terminating() -> None:
    def req(first_line: str, *extra: str) -> Request:
        text = (
            f"{first_line} SIP/2.0\r\nVia: SIP/2.0/TCP p;branch=z9hG4bK1\r\n"
            "From: <sip:a@x>;tag=1\r\nTo: <sip:u1@home1.net>\r\nCall-ID: c\r\n"
            f"CSeq: 1 {first_line.split(maxsplit=1)[0]}\r\n"
            + "".join(e + "\r\n" for e in extra)
            + "Content-Length: 0\r\n\r\n"
        )
        msg = parse_message(text.encode())
        assert isinstance(msg, Request)
        return msg

    assert is_terminating(req("INVITE sip:u1@home1.net"), "home1.net")
    assert is_terminating(req("MESSAGE tel:+4312345"), "home1.net")
    assert not is_terminating(req("INVITE sip:u1@other.net"), "home1.net")
    assert not is_terminating(req("INVITE sip:u1@home1.net", "Route: <sip:s;lr>"), "home1.net")
    assert not is_terminating(req("REGISTER sip:home1.net"), "home1.net")
