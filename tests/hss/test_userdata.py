"""The Cx User-Data document: its structure read back with a plain XML parser,
the implicit registration set it describes, barring, escaping, and the
reader's refusal of DTDs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Any

import pytest

from webims.hss.model import (
    IdentityType,
    PrivateIdentity,
    PublicIdentity,
    ServiceProfile,
    Subscriber,
)
from webims.hss.userdata import (
    UserDataError,
    check_ifc_xml,
    parse_user_data,
    user_data_xml,
)

IFC = (
    "<InitialFilterCriteria><Priority>1</Priority><TriggerPoint>"
    "<ConditionTypeCNF>0</ConditionTypeCNF><SPT><ConditionNegated>0</ConditionNegated>"
    "<Group>0</Group><Method>INVITE</Method></SPT></TriggerPoint><ApplicationServer>"
    "<ServerName>sip:as.home1.net</ServerName><DefaultHandling>0</DefaultHandling>"
    "</ApplicationServer></InitialFilterCriteria>"
)


def alice(**changes: Any) -> Subscriber:
    """One IMPI; an IRS of three IMPUs over two profiles; a second IRS."""
    publics = (
        PublicIdentity("sip:alice@home1.net", "irs1", "basic", display_name="Alice"),
        PublicIdentity("tel:+15551234", "irs1", "basic"),
        PublicIdentity("sip:alice.barred@home1.net", "irs1", "mmtel", barred=True),
        PublicIdentity("sip:alice.work@home1.net", "irs2", "basic"),
    )
    sub = Subscriber(
        name="alice",
        privates=(
            PrivateIdentity.with_password(
                "alice_private@home1.net", "pw", tuple(p.impu for p in publics)
            ),
        ),
        publics=publics,
        profiles=(ServiceProfile("basic"), ServiceProfile("mmtel", IFC)),
    )
    sub.validate()
    return replace(sub, **changes)


def alice_named(display_name: str) -> Subscriber:
    """alice() with the display name of her first IMPU replaced."""
    first, *rest = alice().publics
    return alice(publics=(replace(first, display_name=display_name), *rest))


def tree(sub: Subscriber, impu: str) -> ET.Element:
    data = user_data_xml(sub, impu)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(data)


def test_document_structure_follows_the_schema() -> None:
    root = tree(alice(), "sip:alice@home1.net")
    assert root.tag == "IMSSubscription"
    assert [c.tag for c in root] == ["PrivateID", "ServiceProfile", "ServiceProfile"]
    assert root.findtext("PrivateID") == "alice_private@home1.net"
    basic, mmtel = root.findall("ServiceProfile")
    assert [c.tag for c in basic] == ["PublicIdentity", "PublicIdentity"]
    first = basic.find("PublicIdentity")
    assert first is not None
    assert [c.tag for c in first] == ["Identity", "Extension"]
    assert first.findtext("Identity") == "sip:alice@home1.net"
    assert first.findtext("Extension/IdentityType") == "0"
    assert first.findtext("Extension/Extension/DisplayName") == "Alice"
    # The profile's iFC fragment follows its identities, as elements.
    assert [c.tag for c in mmtel] == ["PublicIdentity", "InitialFilterCriteria"]
    assert mmtel.findtext("InitialFilterCriteria/ApplicationServer/ServerName") == (
        "sip:as.home1.net"
    )


def test_the_document_holds_exactly_the_implicit_set() -> None:
    data = parse_user_data(user_data_xml(alice(), "tel:+15551234"))
    assert data.private_id == "alice_private@home1.net"
    assert data.impus == ("sip:alice@home1.net", "tel:+15551234", "sip:alice.barred@home1.net")
    assert "sip:alice.work@home1.net" not in data.impus
    other = parse_user_data(user_data_xml(alice(), "sip:alice.work@home1.net"))
    assert other.impus == ("sip:alice.work@home1.net",)
    assert len(other.profiles) == 1


def test_barring_indication_only_on_barred_identities() -> None:
    root = tree(alice(), "sip:alice@home1.net")
    flags = {
        p.findtext("Identity"): p.findtext("BarringIndication") for p in root.iter("PublicIdentity")
    }
    assert flags == {
        "sip:alice@home1.net": None,
        "tel:+15551234": None,
        "sip:alice.barred@home1.net": "1",
    }
    # BarringIndication precedes Identity in the schema's sequence.
    barred = next(p for p in root.iter("PublicIdentity") if p.find("BarringIndication") is not None)
    assert [c.tag for c in barred][:2] == ["BarringIndication", "Identity"]
    data = parse_user_data(ET.tostring(root))
    assert data.barred == {"sip:alice.barred@home1.net"}
    assert data.unbarred == ("sip:alice@home1.net", "tel:+15551234")


HOSTILE = [
    "</DisplayName><BarringIndication>1</BarringIndication><DisplayName>",
    "<!-- x --> & &amp; &lt; ]]> <![CDATA[ y ]]>",
    "\"quoted\" 'single' <b>bold</b>",
    "Zoë 日本語 \U0001f600 \t tab",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_display_names_are_escaped_and_round_trip(name: str) -> None:
    sub = alice_named(name)
    root = tree(sub, "sip:alice@home1.net")
    assert root.findtext("ServiceProfile/PublicIdentity/Extension/Extension/DisplayName") == name
    # Nothing leaked out of the element: still one barred identity only.
    assert [p.findtext("BarringIndication") for p in root.iter("PublicIdentity")].count("1") == 1
    parsed = parse_user_data(user_data_xml(sub, "sip:alice@home1.net"))
    assert parsed.identities[0].display_name == name


@pytest.mark.parametrize("bad", ["nul\x00", "bell\x07", "cr\r", "surrogate\ud800", "\ufffe"])
def test_characters_xml_cannot_carry_are_refused(bad: str) -> None:
    sub = alice_named(bad)
    with pytest.raises(UserDataError, match="XML cannot carry"):
        user_data_xml(sub, "sip:alice@home1.net")


def test_wildcards_carry_their_type_and_wildcard_element() -> None:
    sub = Subscriber(
        name="rooms",
        privates=(
            PrivateIdentity.with_password(
                "rooms@home1.net", "pw", ("sip:room-!.*!@home1.net", "sip:psi-!.*!@home1.net")
            ),
        ),
        publics=(
            PublicIdentity(
                "sip:room-!.*!@home1.net",
                "w",
                "default",
                identity_type=IdentityType.WILDCARDED_IMPU,
            ),
            PublicIdentity(
                "sip:psi-!.*!@home1.net", "w", "default", identity_type=IdentityType.WILDCARDED_PSI
            ),
        ),
    )
    # Looked up through a distinct URI that the wildcard covers.
    root = tree(sub, "sip:room-42@home1.net")
    impu, psi = root.iter("PublicIdentity")
    assert impu.findtext("Extension/IdentityType") == "4"
    assert impu.findtext("Extension/Extension/Extension/WildcardedIMPU") == (
        "sip:room-!.*!@home1.net"
    )
    assert psi.findtext("Extension/IdentityType") == "2"
    assert psi.findtext("Extension/WildcardedPSI") == "sip:psi-!.*!@home1.net"
    parsed = parse_user_data(ET.tostring(root))
    assert [i.identity_type for i in parsed.identities] == [4, 2]
    assert [i.wildcarded for i in parsed.identities] == [
        "sip:room-!.*!@home1.net",
        "sip:psi-!.*!@home1.net",
    ]


def test_private_id_is_the_one_linked_to_the_set_or_the_one_asked() -> None:
    sub = alice()
    second = PrivateIdentity.with_password("alice_tablet@home1.net", "pw", ("tel:+15551234",))
    sub = replace(sub, privates=(*sub.privates, second))
    assert parse_user_data(user_data_xml(sub, "tel:+15551234")).private_id == (
        "alice_private@home1.net"
    )
    chosen = user_data_xml(sub, "tel:+15551234", impi="alice_tablet@home1.net")
    assert parse_user_data(chosen).private_id == "alice_tablet@home1.net"
    with pytest.raises(UserDataError, match="not a private identity"):
        user_data_xml(sub, "tel:+15551234", impi="mallory@home1.net")


def test_unknown_identity_is_an_error() -> None:
    with pytest.raises(UserDataError, match="not an identity"):
        user_data_xml(alice(), "sip:nobody@home1.net")


@pytest.mark.parametrize(
    "fragment",
    [
        "<Priority>1</Priority>",  # not an InitialFilterCriteria
        "<InitialFilterCriteria>",  # not well-formed
        "text<InitialFilterCriteria/>",  # stray text
        "<InitialFilterCriteria>&xxe;</InitialFilterCriteria>",  # undeclared entity
        '<!DOCTYPE x [<!ENTITY a "b">]><InitialFilterCriteria/>',
    ],
)
def test_bad_ifc_fragments_are_refused(fragment: str) -> None:
    with pytest.raises(UserDataError):
        check_ifc_xml(fragment)
    sub = alice(profiles=(ServiceProfile("basic"), ServiceProfile("mmtel", fragment)))
    with pytest.raises(UserDataError):
        user_data_xml(sub, "sip:alice@home1.net")


def test_good_ifc_fragments_pass() -> None:
    check_ifc_xml("")
    check_ifc_xml(IFC + "\r\n" + IFC)
    parsed = parse_user_data(user_data_xml(alice(), "sip:alice@home1.net"))
    assert parsed.profiles[1].ifcs == (IFC,)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<IMSSubscription><PrivateID>&lol2;</PrivateID></IMSSubscription>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE x SYSTEM "file:///etc/passwd">
<IMSSubscription><PrivateID>a@b</PrivateID></IMSSubscription>"""


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (BILLION_LAUGHS, "document type declaration"),
        (EXTERNAL, "document type declaration"),
        (b"<IMSSubscription><PrivateID>&ext;</PrivateID></IMSSubscription>", "well-formed"),
        (b"<IMSSubscription><PrivateID>a@b</PrivateID>", "well-formed"),
        (b"<Other/>", "not <IMSSubscription>"),
        (b"<IMSSubscription><ServiceProfile/></IMSSubscription>", "no <PrivateID>"),
        (b"<IMSSubscription><PrivateID>a@b</PrivateID></IMSSubscription>", "no <ServiceProfile>"),
        (
            b"<IMSSubscription><PrivateID>a@b</PrivateID><ServiceProfile><PublicIdentity>"
            b"<BarringIndication>maybe</BarringIndication><Identity>sip:a@b</Identity>"
            b"</PublicIdentity></ServiceProfile></IMSSubscription>",
            "xs:boolean",
        ),
        (b"x" * ((1 << 20) + 1), "larger than"),
    ],
)
def test_parser_refuses_bad_documents(document: bytes, message: str) -> None:
    with pytest.raises(UserDataError, match=message):
        parse_user_data(document)


def test_parser_accepts_true_false_and_missing_extension() -> None:
    doc = (
        "<IMSSubscription><PrivateID> a@home1.net </PrivateID><ServiceProfile>"
        "<PublicIdentity><BarringIndication>true</BarringIndication>"
        "<Identity>sip:a@home1.net</Identity></PublicIdentity>"
        "<PublicIdentity><BarringIndication>false</BarringIndication>"
        "<Identity>sip:b@home1.net</Identity></PublicIdentity>"
        "</ServiceProfile></IMSSubscription>"
    )
    data = parse_user_data(doc)
    assert data.private_id == "a@home1.net"
    assert data.barred == {"sip:a@home1.net"}
    assert [i.identity_type for i in data.identities] == [0, 0]
