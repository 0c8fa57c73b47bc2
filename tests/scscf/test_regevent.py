"""The reg event notifier (RFC 3680; TS 24.229 5.4.2.1; SPEC §9.5 16–18, §8 40,
§9.2 7): who may subscribe, the 200 and its Expires, the immediate full-state
NOTIFY, versions, and the NOTIFYs a deregistration sends."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from webims.scscf.regevent import _id, reginfo_xml
from webims.scscf.registrar import Contact, Registration
from webims.sip.reginfo import REGINFO_NS

from .conftest import IRS_BARRED, IRS_IMPI, IRS_IMPUS, USER1_IMPI, USER1_IMPU, Deployment
from .messages import contacts, reginfo, register, registrations, subscribe

PCSCF = "sip:pcscf.home1.net"


async def registered(
    dep: Deployment, impu: str = USER1_IMPU, impi: str = USER1_IMPI, expires: int = 600
) -> None:
    register(dep.trusted, dep.route, impu, impi, expires=expires)
    assert (await dep.trusted.response()).status == 200


async def test_s9_16_pcscf_subscription_200_and_full_notify(deployment: Deployment) -> None:
    dep = deployment
    await registered(dep, IRS_IMPUS[0], IRS_IMPI)
    subscribe(dep.trusted, dep.orig_route, IRS_IMPUS[0], asserted=PCSCF)
    resp = await dep.trusted.response()
    assert resp.status == 200
    assert resp.to_tag
    assert 0 < int(resp.headers.get("Expires") or 0) <= 600
    notify = await dep.trusted.request("NOTIFY")
    assert notify.headers.get("Event") == "reg"
    assert (notify.headers.get("Subscription-State") or "").startswith("active;expires=")
    assert notify.content_type == "application/reginfo+xml"
    assert notify.from_tag == resp.to_tag and notify.to_tag == "sub1"
    root = reginfo(notify.body)
    assert root.get("version") == "0" and root.get("state") == "full"
    regs = registrations(root)
    assert set(regs) == set(IRS_IMPUS)  # s8_40: one <registration> per IMPU of the set
    assert IRS_BARRED not in regs
    for reg in regs.values():
        assert reg.get("state") == "active"
        [contact] = contacts(reg)
        assert contact.get("state") == "active" and contact.get("event") == "registered"


async def test_s8_40_each_impu_of_the_set_in_notify(deployment: Deployment) -> None:
    dep = deployment
    await registered(dep, IRS_IMPUS[2], IRS_IMPI)
    subscribe(dep.trusted, dep.orig_route, IRS_IMPUS[0], asserted=IRS_IMPUS[1])
    assert (await dep.trusted.response()).status == 200
    root = reginfo((await dep.trusted.request("NOTIFY")).body)
    assert list(registrations(root)) == IRS_IMPUS


async def test_s9_16_expires_at_most_the_registration(deployment: Deployment) -> None:
    dep = deployment
    await registered(dep, expires=120)
    subscribe(dep.trusted, dep.orig_route, USER1_IMPU, asserted=USER1_IMPU, expires=600000)
    resp = await dep.trusted.response()
    assert resp.status == 200
    assert 110 <= int(resp.headers.get("Expires") or 0) <= 120


async def test_notify_follows_the_dialog_route_set(deployment: Deployment) -> None:
    dep = deployment
    await registered(dep)
    rr = f"<sip:rr-token@127.0.0.1:{dep.trusted.local_port};transport=tcp;lr>"
    subscribe(dep.trusted, dep.orig_route, USER1_IMPU, asserted=USER1_IMPU, record_route=rr)
    resp = await dep.trusted.response()
    assert resp.status == 200
    assert resp.headers.get_all("Record-Route") == [rr]
    notify = await dep.trusted.request("NOTIFY")
    assert notify.headers.get_all("Route") == [rr]
    assert notify.uri_text == f"sip:127.0.0.1:{dep.trusted.local_port};transport=tcp"


async def test_s9_17_version_plus_one_per_notify(deployment: Deployment) -> None:
    dep = deployment
    call_id = register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI)
    assert (await dep.trusted.response()).status == 200
    sub_call = subscribe(dep.trusted, dep.orig_route, USER1_IMPU, asserted=PCSCF)
    ok = await dep.trusted.response()
    assert reginfo((await dep.trusted.request()).body).get("version") == "0"
    # A re-registration: NOTIFY version 1, contact refreshed.
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, call_id=call_id, cseq=2)
    assert (await dep.trusted.response()).status == 200
    root = reginfo((await dep.trusted.request()).body)
    assert root.get("version") == "1"
    [contact] = contacts(registrations(root)[USER1_IMPU])
    assert contact.get("event") == "refreshed"
    # A refresh of the subscription in its dialog: 200 and NOTIFY version 2.
    subscribe(
        dep.trusted,
        None,
        USER1_IMPU,
        asserted=PCSCF,
        call_id=sub_call,
        to_tag=ok.to_tag,
        cseq=2,
        uri=str(ok.contacts[0].uri),
    )
    assert (await dep.trusted.response()).status == 200
    assert reginfo((await dep.trusted.request()).body).get("version") == "2"


async def test_s9_18_other_subscriber_403(deployment: Deployment) -> None:
    dep = deployment
    await registered(dep)
    subscribe(dep.trusted, dep.orig_route, USER1_IMPU, asserted="sip:eve@home1.net")
    assert (await dep.trusted.response()).status == 403
    subscribe(dep.trusted, dep.orig_route, USER1_IMPU, asserted="sip:pcscf.elsewhere.net")
    assert (await dep.trusted.response()).status == 403
    # The user's own identity, but asserted by an untrusted source.
    subscribe(dep.untrusted, dep.orig_route, USER1_IMPU, asserted=USER1_IMPU)
    assert (await dep.untrusted.response()).status == 403
    await dep.trusted.no_request()


async def test_s9_7_deregistration_notify_terminated(deployment: Deployment) -> None:
    dep = deployment
    call_id = register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI)
    assert (await dep.trusted.response()).status == 200
    subscribe(dep.trusted, dep.orig_route, USER1_IMPU, asserted=PCSCF)
    assert (await dep.trusted.response()).status == 200
    await dep.trusted.request()
    register(dep.trusted, dep.route, USER1_IMPU, USER1_IMPI, expires=0, call_id=call_id, cseq=2)
    assert (await dep.trusted.response()).status == 200
    notify = await dep.trusted.request()
    assert (notify.headers.get("Subscription-State") or "").startswith("terminated")
    root = reginfo(notify.body)
    assert root.get("version") == "1"
    reg = registrations(root)[USER1_IMPU]
    assert reg.get("state") == "terminated"
    [contact] = contacts(reg)
    assert (contact.get("state"), contact.get("event")) == ("terminated", "unregistered")


async def test_subscribe_for_unregistered_impu_480(deployment: Deployment) -> None:
    dep = deployment
    subscribe(dep.trusted, dep.orig_route, USER1_IMPU, asserted=PCSCF)
    assert (await dep.trusted.response()).status == 480


async def test_subscribe_in_unknown_dialog_481(deployment: Deployment) -> None:
    dep = deployment
    await registered(dep)
    subscribe(
        dep.trusted,
        None,
        USER1_IMPU,
        asserted=PCSCF,
        to_tag="nope",
        uri=f"sip:scscf.home1.net:{dep.port};transport=tcp",
    )
    assert (await dep.trusted.response()).status == 481


async def test_subscribe_with_a_broken_contact_400(deployment: Deployment) -> None:
    dep = deployment
    await registered(dep)
    lines = [
        f"SUBSCRIBE {USER1_IMPU} SIP/2.0",
        f"Via: {dep.trusted.via()}",
        f"Route: {dep.orig_route}",
        "Max-Forwards: 69",
        f"From: <{PCSCF}>;tag=b1",
        f"To: <{USER1_IMPU}>",
        "Call-ID: broken-contact@test",
        "CSeq: 1 SUBSCRIBE",
        f"P-Asserted-Identity: <{PCSCF}>",
        "Contact: <sip:broken",
        "Event: reg",
        "Content-Length: 0",
    ]
    dep.trusted.send("\r\n".join(lines) + "\r\n\r\n")
    assert (await dep.trusted.response()).status == 400
    await dep.trusted.no_request()


def _reginfo_by_elementtree(
    registration: Registration, version: int, now: float, removed: list[tuple[Contact, str]]
) -> bytes:
    """The document as ElementTree writes it: the reference for reginfo_xml."""
    root = ET.Element("reginfo", {"xmlns": REGINFO_NS, "version": str(version), "state": "full"})
    live = registration.live_contacts(now)
    for impu in registration.unbarred:
        state = "active" if live else "terminated"
        reg = ET.SubElement(
            root, "registration", {"aor": impu, "id": "r" + _id(impu), "state": state}
        )
        for contact, cstate, event in [(c, "active", c.event) for c in live] + [
            (c, "terminated", e) for c, e in removed
        ]:
            attrs = {
                "id": "c" + _id(impu, contact.instance or contact.uri, str(contact.reg_id)),
                "state": cstate,
                "event": event,
            }
            if cstate == "active":
                attrs["expires"] = str(contact.remaining(now))
                attrs["duration-registered"] = str(max(0, int(now - contact.registered_at)))
            if contact.call_id:
                attrs["callid"], attrs["cseq"] = contact.call_id, str(contact.cseq)
            elem = ET.SubElement(reg, "contact", attrs)
            ET.SubElement(elem, "uri").text = contact.uri
            if contact.instance is not None:
                ET.SubElement(
                    elem, "unknown-param", {"name": "+sip.instance"}
                ).text = contact.instance
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def test_reginfo_document_is_what_elementtree_writes() -> None:
    wic = Contact(
        uri="sip:x7rq@df7jal23ls0d.invalid;transport=ws",
        expires_at=1000.0,
        registered_at=10.0,
        instance="<urn:uuid:0001>",
        reg_id=1,
        call_id="abc@x",
        cseq=3,
    )
    odd = Contact(uri="sip:a&b<c>\"d'e@h", expires_at=500.0, registered_at=0.0, event="created")
    gone = Contact(uri="sip:z@h", expires_at=5.0, registered_at=1.0)
    reg = Registration(
        impi="u@h",
        impus=("sip:user1@home1.net", "tel:+123", 'sip:q"&<>\t@h'),
        barred=frozenset({"tel:+123"}),
        contacts=(wic, odd),
    )
    for registration, removed in [
        (reg, []),
        (reg, [(gone, "unregistered")]),
        (Registration(impi="u", impus=("sip:u@h",)), []),
        (Registration(impi="u", impus=("sip:u@h",)), [(gone, "expired")]),
    ]:
        expected = _reginfo_by_elementtree(registration, 7, 100.0, removed)
        assert reginfo_xml(registration, 7, 100.0, removed=removed) == expected
