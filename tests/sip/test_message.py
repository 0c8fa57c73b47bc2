"""Parsing and serialising whole messages (RFC 3261 §7, §20)."""

import pytest

from webims.sip import (
    BearerCredentials,
    BodyTooLarge,
    DigestCredentials,
    Limits,
    MessageTooLarge,
    ParseError,
    Request,
    Response,
    SipURI,
    parse_message,
)

REGISTER = (
    b"REGISTER sip:home1.net SIP/2.0\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "User 1" <sip:user1_public1@home1.net>\r\n'
    b"From: <sip:user1_public1@home1.net>;tag=4fa3\r\n"
    b"Call-ID: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b'Contact: <sip:x7rq@df7jal23ls0d.invalid;transport=ws>;+sip.instance="<urn:uuid:0001>"'
    b";reg-id=1;expires=600\r\n"
    b"Supported: path, outbound, gruu\r\n"
    b"Authorization: Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyMSJ9.c2ln\r\n"
    b"X-Unknown :  keep   me  exactly \r\n"
    b"User-Agent: webims-test/1.0\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def test_register_fields() -> None:
    msg = parse_message(REGISTER)
    assert isinstance(msg, Request)
    assert msg.method == "REGISTER"
    assert isinstance(msg.uri, SipURI) and msg.uri.host == "home1.net"
    via = msg.top_via
    assert via.transport == "WSS" and via.host == "df7jal23ls0d.invalid"
    assert via.branch == "z9hG4bK776asdhds" and via.wants_rport and via.rport is None
    assert msg.max_forwards == 70
    assert msg.to.display_name == "User 1"
    assert str(msg.to.uri) == "sip:user1_public1@home1.net"
    assert msg.from_.tag == "4fa3"
    assert msg.call_id == "843817637684230@998sdasdh09"
    assert (msg.cseq.seq, msg.cseq.method) == (1826, "REGISTER")
    (contact,) = msg.contacts
    assert contact.params.get("+sip.instance") == "<urn:uuid:0001>"
    assert contact.params.get("reg-id") == "1" and contact.params.get("expires") == "600"
    assert msg.supported == ["path", "outbound", "gruu"]
    (cred,) = msg.authorization
    assert isinstance(cred, BearerCredentials)
    assert cred.token == "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyMSJ9.c2ln"
    assert msg.headers.get("x-unknown") == "keep   me  exactly"
    assert msg.content_length == 0 and msg.body == b""


def test_unchanged_message_roundtrips_byte_for_byte() -> None:
    assert parse_message(REGISTER).serialize() == REGISTER


def test_changed_message_keeps_unknown_header_bytes() -> None:
    msg = parse_message(REGISTER)
    msg.headers.add_first("Via", "SIP/2.0/UDP pcscf.visited1.net;branch=z9hG4bKnew")
    out = msg.serialize()
    assert out.startswith(b"REGISTER sip:home1.net SIP/2.0\r\nVia: SIP/2.0/UDP pcscf.visited1.net")
    assert b"\r\nX-Unknown :  keep   me  exactly \r\n" in out
    again = parse_message(out)
    assert [v.host for v in again.vias] == ["pcscf.visited1.net", "df7jal23ls0d.invalid"]


def test_compact_forms_and_multi_value_headers() -> None:
    data = (
        b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, "
        b"SIP/2.0/TCP b.example.com:5070;branch=z9hG4bK2\r\n"
        b"v: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK3;received=2001:db8::9\r\n"
        b"f: <sip:alice@atlanta.com>;tag=1\r\nt: sip:bob@biloxi.com\r\ni: abc\r\n"
        b"Max-Forwards: 10\r\nCSeq: 1 OPTIONS\r\n"
        b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nRoute: <sip:p3;lr>\r\n"
        b"k: path\r\nl: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert [v.host for v in msg.vias] == ["a.example.com", "b.example.com", "[2001:db8::1]"]
    assert msg.vias[1].port == 5070
    assert msg.vias[2].received == "2001:db8::9"
    assert [str(r.uri) for r in msg.routes] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
        "sip:p3;lr",
    ]
    assert msg.call_id == "abc" and msg.to.tag is None
    assert msg.headers.pop_first_value("Route") == "<sip:p1.example.com;lr>"
    assert [str(r.uri) for r in msg.routes] == ["sip:p2.example.com;lr", "sip:p3;lr"]
    assert msg.headers.pop_first_value("v") is not None
    assert msg.top_via.host == "b.example.com"


def test_line_folding_is_unfolded_for_values_and_kept_on_the_wire() -> None:
    data = (
        b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"Subject: first\r\n   second\r\n\tthird\r\n"
        b"From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: 1\r\nCSeq: 1 MESSAGE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert msg.headers.get("Subject") == "first second third"
    msg.headers.add("X-New", "1")
    assert b"Subject: first\r\n   second\r\n\tthird\r\n" in msg.serialize()


def test_response_parsing() -> None:
    data = (
        b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: 1\r\nCSeq: 1 REGISTER\r\n"
        b'WWW-Authenticate: Bearer realm="home1.net", authz_server="https://waf.example", '
        b'error="invalid_token"\r\n'
        b'WWW-Authenticate: Digest realm="home1.net", nonce="abc", algorithm=MD5, qop="auth"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert isinstance(msg, Response)
    assert msg.status == 401 and msg.reason == "Unauthorized"
    bearer, digest = msg.www_authenticate
    assert bearer.scheme == "Bearer" and bearer.get("error") == "invalid_token"
    assert bearer.get("authz_server") == "https://waf.example"
    assert digest.get("qop") == "auth" and digest.get("algorithm") == "MD5"


def test_digest_with_integrity_protected_and_authorization_entity() -> None:
    value = (
        'Digest username="user1_private@home1.net", realm="registrar.home1.net", nonce="", '
        'uri="sip:registrar.home1.net", response="", integrity-protected="auth-done", '
        'authorization-entity="webrtc_authserver1@thirdparty.net"'
    )
    from webims.sip import parse_credentials

    cred = parse_credentials(value)
    assert isinstance(cred, DigestCredentials)
    assert cred.username == "user1_private@home1.net"
    assert cred.nonce == "" and cred.response == ""
    assert cred.integrity_protected == "auth-done"
    assert cred.authorization_entity == "webrtc_authserver1@thirdparty.net"
    assert str(cred) == value


@pytest.mark.parametrize(
    ("value", "token", "legacy"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi", False),
        ("Bearer   abc-_~+/=", "abc-_~+/=", False),
        (
            'Bearer access_token="O91G451HZ0V83opz6udiSEjchPynd2Ss9"',
            "O91G451HZ0V83opz6udiSEjchPynd2Ss9",
            True,
        ),
        ("bearer access_token=tok", "tok", True),
    ],
)
def test_bearer_both_syntaxes(value: str, token: str, legacy: bool) -> None:
    from webims.sip import parse_credentials

    cred = parse_credentials(value)
    assert isinstance(cred, BearerCredentials)
    assert cred.token == token and cred.legacy_form is legacy


@pytest.mark.parametrize("value", ["Bearer", "Bearer a b", 'Bearer foo="x"', "Digest", "Digest a"])
def test_bad_credentials(value: str) -> None:
    from webims.sip import parse_credentials

    with pytest.raises(ParseError):
        parse_credentials(value)


def test_p_headers() -> None:
    data = (
        b"REGISTER sip:home1.net SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: 1\r\nCSeq: 1 REGISTER\r\n"
        b'P-Visited-Network-ID: "Visited network number 1", other.net;x=1\r\n'
        b"P-Charging-Vector: icid-value=1234bc9876e; icid-generated-at=192.0.6.8; "
        b"orig-ioi=home1.net\r\n"
        b'P-Asserted-Identity: "User" <sip:user1_public1@home1.net>, <tel:+358504821437>\r\n'
        b"P-Preferred-Identity: <sip:user1_public1@home1.net>\r\n"
        b"P-Associated-URI: <sip:user1_public1@home1.net>, <sip:user1_public2@home1.net>\r\n"
        b"Path: <sip:term@pcscf1.visited1.net;lr;ob>\r\n"
        b"Service-Route: <sip:orig@scscf1.home1.net;lr>\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert msg.p_visited_network_id == ["Visited network number 1", "other.net"]
    pcv = msg.p_charging_vector
    assert pcv is not None and pcv.get("icid-value") == "1234bc9876e"
    assert pcv.get("orig-ioi") == "home1.net"
    assert [str(a.uri) for a in msg.p_asserted_identity] == [
        "sip:user1_public1@home1.net",
        "tel:+358504821437",
    ]
    assert len(msg.p_associated_uri) == 2 and len(msg.p_preferred_identity) == 1
    (path,) = msg.paths
    assert isinstance(path.uri, SipURI) and "ob" in path.uri.params and path.uri.lr
    assert str(msg.service_routes[0].uri) == "sip:orig@scscf1.home1.net;lr"


def test_contact_star() -> None:
    data = (
        b"REGISTER sip:home1.net SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"From: <sip:c@d>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: 1\r\nCSeq: 2 REGISTER\r\n"
        b"Contact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert msg.contact_star and msg.contacts == [] and msg.expires == 0


def test_datagram_body_is_cut_to_content_length() -> None:
    data = REGISTER.replace(b"Content-Length: 0", b"Content-Length: 4") + b"bodyEXTRA"
    msg = parse_message(data)
    assert msg.body == b"body"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n", 400),  # no blank line
        (b"INVITE  sip:a@b SIP/2.0\r\n\r\n", 400),
        (b"INVITE sip:a@b SIP/2.0\r\nBad Header: x\r\n\r\n", 400),
        (b"INVITE sip:a@b SIP/2.0\r\nNoColon\r\n\r\n", 400),
        (b"SIP/2.0 99 Low\r\n\r\n", 400),
        (b"SIP/2.0 700 High\r\n\r\n", 400),
        (b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nshort", 400),
        (b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab", 400),
        (b"INVITE sip:a@b SIP/2.0\r\n x: folded-first\r\n\r\n", 400),
        (b"INVITE sip:a@b SIP/2.0\r\nA: bare\nlf\r\n\r\n", 400),
    ],
)
def test_malformed_messages_are_rejected_with_400(data: bytes, status: int) -> None:
    with pytest.raises(ParseError) as err:
        parse_message(data)
    assert err.value.status == status


def test_limits_carry_their_status() -> None:
    with pytest.raises(MessageTooLarge) as err:
        parse_message(REGISTER, Limits(max_message_size=100))
    assert err.value.status == 513
    with pytest.raises(MessageTooLarge):
        parse_message(REGISTER, Limits(max_headers=5))
    with pytest.raises(MessageTooLarge):
        parse_message(REGISTER, Limits(max_line_length=40))
    with pytest.raises(BodyTooLarge) as err2:
        parse_message(REGISTER.replace(b"Content-Length: 0", b"Content-Length: 9999999"))
    assert err2.value.status == 413


def test_leading_crlf_is_ignored() -> None:
    msg = parse_message(b"\r\n\r\n" + REGISTER)
    assert isinstance(msg, Request) and msg.method == "REGISTER"


def test_build_request_from_scratch() -> None:
    from webims.sip import Headers

    req = Request(
        "OPTIONS",
        "sip:scscf1",
        Headers.from_pairs(
            [
                ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc"),
                ("From", "<sip:a@b>;tag=x"),
                ("To", "<sip:scscf1>"),
                ("Call-ID", "c1"),
                ("CSeq", "1 OPTIONS"),
                ("Max-Forwards", "70"),
            ]
        ),
    )
    req.set_body(b"hello", "text/plain")
    wire = req.serialize()
    assert wire.endswith(b"Content-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello")
    again = parse_message(wire)
    assert again.body == b"hello" and again.content_type == "text/plain"


def test_folded_content_length_is_read_whole() -> None:
    data = (
        b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"Content-Length: 0009\r\n INVITE\r\n\r\nbody body"
    )
    with pytest.raises(ParseError):
        parse_message(data)
    folded_ok = data.replace(b"0009\r\n INVITE", b"\r\n 9")
    assert parse_message(folded_ok).body == b"body body"


@pytest.mark.parametrize(
    ("contact", "expires", "ok"),
    [
        ("*", "0", True),
        ("*", "3600", False),  # §10.3 step 6: '*' only to remove every binding
        ("*", None, False),
        ("<sip:a@b>;expires=60", None, True),
        ("<sip:a@b>;expires=soon", None, False),
        ("sip:a@b?Route=x", None, False),  # addr-spec with '?' needs <...>
    ],
)
def test_check_register(contact: str, expires: str | None, ok: bool) -> None:
    from webims.sip import check_register

    data = (
        "REGISTER sip:home1.net SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: 1\r\nCSeq: 1 REGISTER\r\n"
        f"Contact: {contact}\r\n"
        + (f"Expires: {expires}\r\n" if expires else "")
        + "Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, Request)
    if ok:
        check_register(msg)
    else:
        with pytest.raises(ParseError):
            check_register(msg)


def test_pop_first_value_across_fields_and_empty_ones() -> None:
    from webims.sip import Headers

    h = Headers.from_pairs(
        [("Route", ""), ("Route", "<sip:a;lr>, <sip:b;lr>"), ("Route", "<sip:c>")]
    )
    assert h.pop_first_value("Route") == "<sip:a;lr>"
    assert h.get_all("Route") == ["<sip:b;lr>", "<sip:c>"]
    assert h.pop_first_value("Route") == "<sip:b;lr>"
    assert h.pop_first_value("Route") == "<sip:c>"
    assert h.pop_first_value("Route") is None and "Route" not in h


def test_parsed_values_survive_changes_to_other_headers() -> None:
    msg = parse_message(REGISTER)
    assert isinstance(msg, Request)
    contacts, vias, to = msg.contacts, msg.vias, msg.to
    msg.headers.add_first("Via", "SIP/2.0/TCP pcscf.home1.net;branch=z9hG4bKp1")
    msg.headers.add("Route", "<sip:icscf.home1.net;lr>")
    assert msg.contacts is contacts and msg.to is to
    assert msg.vias is not vias and msg.vias[0].host == "pcscf.home1.net"
    msg.headers.set("Contact", "<sip:other@192.0.2.1>")
    assert [str(c.uri) for c in msg.contacts] == ["sip:other@192.0.2.1"]
    msg.headers.remove("To")
    with pytest.raises(ParseError):
        _ = msg.to


def test_copy_keeps_parsed_values_until_the_copy_changes_them() -> None:
    msg = parse_message(REGISTER)
    assert isinstance(msg, Request)
    contacts, top = msg.contacts, msg.top_via
    copy = msg.copy()
    assert copy.contacts is contacts and copy.top_via is top
    copy.headers.add_first("Via", "SIP/2.0/TCP pcscf.home1.net;branch=z9hG4bKp1")
    copy.headers.remove("Contact")
    assert copy.top_via.host == "pcscf.home1.net" and copy.contacts == []
    # The original is left as it was, parsed values included.
    assert msg.top_via is top and msg.contacts is contacts
    assert bytes(msg) == REGISTER


@pytest.mark.parametrize(
    "text",
    [
        '+sip.instance="<urn:uuid:0001>";reg-id=1;expires=600',
        'a="x;y";b',
        'a="";b=c',
        'x=a"b',
        'a="b"c',
        'a="b',
        'a="b";',
        'a="x\\"y";b=1',
    ],
)
def test_quoted_parameters_read_as_the_full_scanner_reads_them(text: str) -> None:
    from webims.sip.grammar import iter_params
    from webims.sip.params import Params

    try:
        expected: object = list(iter_params(text))
    except ParseError:
        with pytest.raises(ParseError):
            Params.parse(text)
        return
    assert list(Params.parse(text)._items) == expected


def test_digest_parameters_common_and_unusual_shapes() -> None:
    from webims.sip.auth import parse_credentials

    creds = parse_credentials(
        'Digest username="user1_private@home1.net", realm="home1.net", nonce="", '
        'uri="sip:home1.net",response="" , qop=auth, nc=00000001, integrity-protected="auth-done"'
    )
    assert isinstance(creds, DigestCredentials)
    assert creds.params.items == [
        ("username", "user1_private@home1.net", True),
        ("realm", "home1.net", True),
        ("nonce", "", True),
        ("uri", "sip:home1.net", True),
        ("response", "", True),
        ("qop", "auth", False),
        ("nc", "00000001", False),
        ("integrity-protected", "auth-done", True),
    ]
    escaped = parse_credentials('Digest username="a\\"b", realm="r"')
    assert isinstance(escaped, DigestCredentials) and escaped.username == 'a"b'
    for bad in ("Digest a=b,", "Digest a=b c", "Digest a=b, A=c", 'Digest a="b"c', "Digest a"):
        with pytest.raises(ParseError):
            parse_credentials(bad)
