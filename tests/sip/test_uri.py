"""URI parsing and serialisation: RFC 3261 §19.1, RFC 5118, RFC 3966."""

import pytest

from webims.sip import AbsoluteURI, ParseError, SipURI, TelURI, parse_uri


def test_full_sip_uri() -> None:
    uri = parse_uri("sips:alice:secret@atlanta.com:5061;transport=tcp;lr;maddr=10.0.0.1?subject=x")
    assert isinstance(uri, SipURI)
    assert uri.scheme == "sips" and uri.secure
    assert (uri.user, uri.password, uri.host, uri.port) == ("alice", "secret", "atlanta.com", 5061)
    assert uri.transport == "tcp" and uri.lr and uri.maddr == "10.0.0.1"
    assert uri.headers == "subject=x"
    assert (
        str(uri) == "sips:alice:secret@atlanta.com:5061;transport=tcp;lr;maddr=10.0.0.1?subject=x"
    )


def test_host_without_dots_is_valid() -> None:
    uri = parse_uri("sip:scscf1")
    assert isinstance(uri, SipURI) and uri.host == "scscf1" and uri.user is None


def test_user_part_may_hold_semicolon_and_question_mark() -> None:
    uri = parse_uri("sip:user;par=u%40example.net@example.com;p=1")
    assert isinstance(uri, SipURI)
    assert uri.user == "user;par=u%40example.net"
    assert uri.user_unescaped == "user;par=u@example.net"
    assert uri.params.get("p") == "1"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:user@[2001:db8::10]:5070;transport=udp", "[2001:db8::10]", 5070),
        ("sip:[::ffff:192.0.2.1]:5060", "[::ffff:192.0.2.1]", 5060),
    ],
)
def test_ipv6_references(text: str, host: str, port: int | None) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    assert uri.host == host and uri.port == port
    assert str(uri) == text


@pytest.mark.parametrize(
    "text",
    [
        "sip:2001:db8::10",  # RFC 5118 §4.2: IPv6 without brackets
        "sip:[2001:db8::10",
        "sip:[2001:db8:::10]",
        "sip:user@host:99999",
        "sip:user@host:abc",
        "sip:user@-bad-.com",
        "sip:300.1.1.1x",
        "sip:user@",
        "sip:us er@host",
        "sip:host;=x",
        "nocolon",
        "1sip:host",
    ],
)
def test_invalid_uris(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123;ext=99")
    assert isinstance(uri, TelURI)
    assert uri.is_global and uri.digits == "+12015550123"
    assert uri.params.get("ext") == "99"
    assert str(uri) == "tel:+1-201-555-0123;ext=99"
    local = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(local, TelURI) and not local.is_global
    with pytest.raises(ParseError):
        parse_uri("tel:7042")  # local number without phone-context


def test_other_schemes_are_kept_as_text() -> None:
    uri = parse_uri("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    assert isinstance(uri, AbsoluteURI) and uri.scheme == "urn"
    assert str(uri) == "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"


def test_comparison_rules_of_19_1_4() -> None:
    def eq(a: str, b: str) -> bool:
        ua, ub = parse_uri(a), parse_uri(b)
        assert isinstance(ua, SipURI)
        return ua.equivalent(ub)

    assert eq("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp")
    assert eq("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5")
    assert eq(
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    )
    assert eq("sip:[2001:db8::9:1]", "sip:[2001:db8:0:0:0:0:9:1]")
    assert not eq("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP")
    assert not eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060")
    assert not eq("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp")
    assert not eq("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off")
    assert not eq("sip:alice@atlanta.com", "sips:alice@atlanta.com")
