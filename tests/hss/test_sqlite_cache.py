"""The SQLite store's read cache never serves what another connection or
this one has changed since."""

from __future__ import annotations

from pathlib import Path

from webims.hss.model import (
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    ServerAssignment,
    Subscriber,
)
from webims.hss.sqlite_store import SqliteStore

IMPU = "sip:alice@home1.net"


def alice() -> Subscriber:
    return Subscriber(
        name="alice",
        privates=(PrivateIdentity.with_password("alice@home1.net", "pw", (IMPU,)),),
        publics=(PublicIdentity(IMPU, irs="1", service_profile="default"),),
    )


async def test_a_commit_by_another_connection_is_seen_at_once(tmp_path: Path) -> None:
    path = tmp_path / "hss.sqlite3"
    async with SqliteStore(path) as hss, SqliteStore(path) as cli:
        await hss.add(alice())
        before = await hss.by_impu(IMPU)
        assert before is not None and not before.publics[0].barred
        assert await hss.by_impu(IMPU) is before  # served from the cache
        await cli.set_barred(IMPU, True)
        after = await hss.by_impu(IMPU)
        assert after is not None and after.publics[0].barred
        await cli.remove("alice")
        assert await hss.by_impu(IMPU) is None
        assert await hss.by_impi("alice@home1.net") is None


async def test_own_writes_evict_what_they_change(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "hss.sqlite3") as store:
        await store.add(alice())
        assert (await store.by_impi("alice@home1.net")) is not None
        assignment = ServerAssignment("sip:scscf.home1.net", "scscf.home1.net")
        await store.set_registration("alice", [IMPU], RegistrationState.REGISTERED, assignment)
        for read in (store.by_impu(IMPU), store.by_impi("alice@home1.net"), store.get("alice")):
            sub = await read
            assert sub is not None and sub.assignment == assignment
            assert sub.publics[0].state is RegistrationState.REGISTERED
        await store.remove("alice")
        assert await store.get("alice") is None


async def test_the_cached_subscriber_after_a_registration_equals_a_fresh_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hss.sqlite3"
    full = Subscriber(
        name="bob",
        privates=(PrivateIdentity.with_password("bob@home1.net", "pw", (IMPU,)),),
        publics=(
            PublicIdentity(IMPU, irs="1", service_profile="default", display_name="Bob"),
            PublicIdentity("tel:+15551234", irs="1", service_profile="default", barred=True),
        ),
        allowed_waf=("waf.example.net",),
        allowed_wwsf=("wwsf.example.net",),
        barred_auth_entities=("bad.example.net",),
        mandatory_capabilities=(1,),
        optional_capabilities=(2,),
        roaming_networks=("visited.net",),
        ccf=("aaa://ccf.home1.net",),
        ecf=("aaa://ecf.home1.net",),
    )
    async with SqliteStore(path) as store, SqliteStore(path) as other:
        await store.add(full)
        await store.get("bob")  # cached
        assignment = ServerAssignment("sip:scscf.home1.net", "scscf.home1.net")
        await store.set_registration("bob", [IMPU], RegistrationState.REGISTERED, assignment)
        assert await store.get("bob") == await other.get("bob")
        await store.set_registration("bob", [IMPU], RegistrationState.NOT_REGISTERED, None)
        assert await store.get("bob") == await other.get("bob")
