"""The registrar's store and the contact merge of a REGISTER (RFC 3261 §10.3,
RFC 5626 §6), without the network."""

from __future__ import annotations

import pytest

from webims.scscf.registrar import Contact, MemoryRegistrar, Registration, impu_key_text
from webims.scscf.registration import Binding, StaleCSeq, merge_contacts

IMPUS = ("sip:alice@home1.net", "sip:Alice.Work@HOME1.net", "tel:+1-555-0100")


def contact(uri: str = "sip:a@192.0.2.1", **kw: object) -> Contact:
    return Contact(uri=uri, expires_at=100.0, registered_at=0.0, **kw)  # type: ignore[arg-type]


def test_impu_lookup_form() -> None:
    assert impu_key_text("sip:Alice.Work@HOME1.net:5060;transport=tcp") == (
        "sip:Alice.Work@home1.net"
    )
    assert impu_key_text("tel:+1-555-0100;phone-context=x") == "tel:+15550100"


async def test_every_impu_of_the_set_finds_the_registration() -> None:
    store = MemoryRegistrar()
    reg = Registration(impi="alice@home1.net", impus=IMPUS, barred=frozenset({IMPUS[1]}))
    await store.put(reg)
    for impu in IMPUS:
        assert await store.get(impu_key_text(impu)) is reg
    assert reg.unbarred == (IMPUS[0], IMPUS[2])
    assert reg.is_barred(impu_key_text(IMPUS[1]))
    assert await store.by_impi("alice@home1.net") == [reg]
    # A profile change removes an IMPU from the set: it no longer finds it.
    smaller = Registration(impi="alice@home1.net", impus=IMPUS[:2])
    await store.put(smaller)
    assert await store.get(impu_key_text(IMPUS[2])) is None
    assert await store.remove(smaller.key) is smaller
    assert await store.get(impu_key_text(IMPUS[0])) is None
    assert await store.by_impi("alice@home1.net") == []
    assert len(store) == 0


def merge(
    current: tuple[Contact, ...], *bindings: Binding, cseq: int = 2, call_id: str = "c1"
) -> tuple[list[Contact], list[tuple[Contact, str]]]:
    return merge_contacts(
        current,
        list(bindings),
        call_id=call_id,
        cseq=cseq,
        path=(),
        now=10.0,
        max_expires=3600,
        initial=not current,
    )


def test_flow_identity_is_instance_and_reg_id() -> None:
    old = contact(instance="<urn:uuid:1>", reg_id=1, call_id="c1", cseq=1)
    # Same instance and reg-id, another Contact URI (a new WebSocket): replaced.
    contacts, removed = merge((old,), Binding("sip:b@192.0.2.9", 600, "<urn:uuid:1>", 1))
    assert [c.uri for c in contacts] == ["sip:b@192.0.2.9"]
    assert contacts[0].event == "refreshed" and removed == []
    # Another reg-id: a second flow.
    contacts, _ = merge((old,), Binding("sip:a@192.0.2.1", 600, "<urn:uuid:1>", 2))
    assert len(contacts) == 2 and contacts[1].event == "created"


def test_shortened_refresh_and_removal() -> None:
    old = contact(call_id="c1", cseq=1)
    contacts, _ = merge((old,), Binding(old.uri, 60, None, None))
    assert contacts[0].event == "shortened"
    contacts, removed = merge((old,), Binding(old.uri, 0, None, None))
    assert contacts == [] and removed == [(old, "unregistered")]


def test_granted_expiry_capped() -> None:
    contacts, _ = merge((), Binding("sip:a@192.0.2.1", 99999, None, None))
    assert contacts[0].expires_at == 10.0 + 3600
    assert contacts[0].event == "registered"


def test_stale_cseq_on_the_same_call_id() -> None:
    old = contact(call_id="c1", cseq=5)
    with pytest.raises(StaleCSeq):
        merge((old,), Binding(old.uri, 600, None, None), cseq=5)
    contacts, _ = merge((old,), Binding(old.uri, 600, None, None), cseq=1, call_id="c2")
    assert contacts[0].call_id == "c2"
