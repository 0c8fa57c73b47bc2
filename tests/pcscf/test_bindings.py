"""The eP-CSCF's binding table in memory (``webims.pcscf.bindings``): identity keys,
replacement per connection and per (IMPI, instance, reg-id), partial unbinding by the reg
event, expiry on its heap, and a heap that does not grow with refreshes."""

from __future__ import annotations

from webims.pcscf.bindings import (
    Bindings,
    Registration,
    RegSubscription,
    impu_key,
    shared,
    shared_routes,
)
from webims.transport.flow import Flow


def flow(n: int) -> Flow:
    return Flow("wss", ("127.0.0.1", 7443), ("127.0.0.1", 40000 + n), n)


def registration(
    n: int, *, impi: str = "alice@home1.net", expires_at: float = 100.0, instance: str = "i1"
) -> Registration:
    return Registration(
        flow=flow(n),
        flow_token=f"t{n}",
        impi=impi,
        registered_impu="sip:alice@home1.net",
        impus={impu_key("sip:alice@home1.net"), impu_key("tel:+1-555-123")},
        default_impu="sip:alice@home1.net",
        service_route=("<sip:orig@scscf.home1.net;lr>",),
        record_route=f"sip:t{n}@pcscf.home1.net;lr",
        contact=f"sip:c{n}@x.invalid;transport=ws",
        instance=instance,
        reg_id="1",
        expires_at=expires_at,
        token_expires_at=0.0,
        authorization_entity="waf",
    )


def test_identity_keys_ignore_parameters_case_of_host_and_tel_separators() -> None:
    assert impu_key("sip:alice@HOME1.net;user=phone") == impu_key("sip:alice@home1.net")
    assert impu_key("tel:+1-555-123") == impu_key("tel:+1555123")
    assert impu_key("sip:alice@home1.net") != impu_key("sip:Alice@home1.net")
    assert impu_key("not a uri").startswith("?")


def test_s9_1_4_same_instance_on_a_new_connection_replaces_the_old() -> None:
    table = Bindings()
    old = registration(1)
    assert table.bind(old) == []
    new = registration(2)
    assert table.bind(new) == [old]
    assert table.for_flow(flow(1)) is None and table.for_flow(flow(2)) is new
    assert table.for_impu(impu_key("sip:alice@home1.net")) == [new]
    # Another instance of the same IMPI on a third connection lives beside it.
    other = registration(3, instance="i2")
    assert table.bind(other) == []
    assert len(table) == 2


def test_unbinding_every_impu_removes_the_registration() -> None:
    table = Bindings()
    reg = registration(1)
    table.bind(reg)
    assert not table.unbind_impus(reg, [impu_key("tel:+1555123")])
    assert table.for_impu(impu_key("tel:+1555123")) == []
    assert table.unbind_impus(reg, [impu_key("sip:alice@home1.net")])
    assert len(table) == 0


def test_one_subscription_per_impu_watches_every_registration_of_it() -> None:
    table = Bindings()
    key = impu_key("sip:alice@home1.net")
    sub = RegSubscription("call-1", "tag-1", "sip:alice@home1.net", key)
    table.add_subscription(sub)
    a, b = registration(1), registration(2, instance="i2")
    for reg in (a, b):
        table.bind(reg)
        reg.subscription = table.subscription_for(key)
    assert table.subscription("call-1") is sub
    assert table.watched_by(sub) == [a, b]
    table.remove(a)
    assert table.watched_by(sub) == [b]
    assert table.end_subscription(sub) == [b]
    assert b.subscription is None and table.subscription_for(key) is None


def test_s9_3_10_expiry_in_order_and_refreshes_move_it() -> None:
    table = Bindings()
    a, b = registration(1, expires_at=10.0), registration(2, instance="i2", expires_at=20.0)
    table.bind(a)
    table.bind(b)
    refreshed = registration(1, expires_at=30.0)
    table.bind(refreshed)  # a re-REGISTER on connection 1
    assert table.next_expiry() == 20.0
    assert table.expire(25.0) == [b]
    assert table.expire(29.0) == []
    assert table.expire(30.0) == [refreshed]
    assert table.next_expiry() is None and len(table) == 0


def test_refreshes_do_not_grow_the_expiry_heap() -> None:
    table = Bindings()
    for t in range(5000):
        table.bind(registration(1, expires_at=100.0 + t))
    assert len(table._expiries) <= 2 * len(table) + 1025
    assert table.next_expiry() == 100.0 + 4999


def test_equal_route_lists_and_texts_are_held_once() -> None:
    """20,000 registrations through one S-CSCF keep one Service-Route, not 20,000."""
    first = shared_routes(("<sip:orig@scscf.home1.net:5080;transport=tcp;lr>",))
    again = shared_routes(tuple(["<sip:orig@scscf.home1.net:" + str(5080) + ";transport=tcp;lr>"]))
    assert again is first
    assert shared_routes(("<sip:other;lr>",)) is not first
    entity = "".join(["entity", "-1"])
    assert shared(entity) is shared("entity-1")
