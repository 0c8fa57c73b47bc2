"""The HSS's Cx procedures (TS 29.228 §6) over a real SQLite store: every
result of UAR, SAR (each Server-Assignment-Type), LIR and MAR, the RTR and
PPR the HSS prepares, the HSS statements 42-45 of the project's SPEC, and
that a refused request changes nothing in the store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from webims.diameter.cxdefs import (
    DIAMETER_AUTHORIZATION_REJECTED,
    DIAMETER_MISSING_AVP,
    DIAMETER_SUCCESS,
    DIAMETER_UNABLE_TO_COMPLY,
    CxResult,
    DeregistrationReason,
    ExperimentalResult,
    ServerAssignmentType,
    UserAuthorizationType,
)
from webims.hss.assignment import (
    DIAMETER_AVP_OCCURS_TOO_MANY_TIMES,
    SarAnswer,
    SarRequest,
    perform_sar,
    prepare_ppr,
    prepare_rtr,
)
from webims.hss.model import (
    IdentityType,
    PrivateIdentity,
    PublicIdentity,
    RegistrationState,
    ServerAssignment,
    ServiceProfile,
    Subscriber,
    digest_ha1,
)
from webims.hss.procedures import (
    Capabilities,
    LirRequest,
    MarRequest,
    UarAnswer,
    UarRequest,
    has_unregistered_services,
    perform_lir,
    perform_mar,
    perform_uar,
)
from webims.hss.sqlite_store import SqliteStore
from webims.hss.store import SubscriberNotFound, SubscriberStore
from webims.hss.userdata import parse_user_data

T = ServerAssignmentType
E = ExperimentalResult
R = RegistrationState
NOT_REG, REG, UNREG = R.NOT_REGISTERED, R.REGISTERED, R.UNREGISTERED
SUCCESS = CxResult.base(DIAMETER_SUCCESS)
HOME = frozenset({"home1.net"})
A = TypeVar("A")

S1 = ServerAssignment("sip:scscf1.home1.net:6060", "scscf1.home1.net")
S2 = ServerAssignment("sip:scscf2.home1.net:6060", "scscf2.home1.net")
S1_OTHER_NAME = ServerAssignment("sip:scscf1b.home1.net:6060", "scscf1.home1.net")

# alice: one IMPI; IRS a1 (three IMPUs, one barred), IRS a2; no service in
# the unregistered state; charging, WAF/WWSF and capabilities provisioned.
ALICE_IMPI = "alice_private@home1.net"
ALICE = "sip:alice@home1.net"
ALICE_TEL = "tel:+15551234"
ALICE_BARRED = "sip:alice.barred@home1.net"
ALICE_WORK = "sip:alice.work@home1.net"
# bob: two IMPIs (the tablet may register only sip:bob), a voicemail iFC for
# the unregistered state, and a chat-room wildcard and a conference PSI.
BOB_IMPI = "bob_private@home1.net"
BOB_TABLET = "bob_tablet@home1.net"
BOB = "sip:bob@home1.net"
BOB_SOLO = "sip:bob.solo@home1.net"
BOB_ROOMS = "sip:room-!.*!@home1.net"
BOB_CONF = "sip:conf@home1.net"
# carol: her only IMPU is barred.
CAROL_IMPI = "carol_private@home1.net"
CAROL = "sip:carol@home1.net"

UNREGISTERED_IFC = (
    "<InitialFilterCriteria><Priority>1</Priority><TriggerPoint>"
    "<ConditionTypeCNF>0</ConditionTypeCNF><SPT><ConditionNegated>0</ConditionNegated>"
    "<Group>0</Group><SessionCase>2</SessionCase></SPT></TriggerPoint>"
    "<ApplicationServer><ServerName>sip:voicemail.home1.net</ServerName>"
    "<DefaultHandling>0</DefaultHandling></ApplicationServer></InitialFilterCriteria>"
)


def ifc(trigger: str = "", part: str | None = None) -> str:
    ppi = f"<ProfilePartIndicator>{part}</ProfilePartIndicator>" if part is not None else ""
    return (
        f"<InitialFilterCriteria><Priority>1</Priority>{trigger}<ApplicationServer>"
        "<ServerName>sip:as.home1.net</ServerName><DefaultHandling>0</DefaultHandling>"
        f"</ApplicationServer>{ppi}</InitialFilterCriteria>"
    )


def session_cases(*cases: int) -> str:
    spts = "".join(
        f"<SPT><ConditionNegated>0</ConditionNegated><Group>{i}</Group>"
        f"<SessionCase>{c}</SessionCase></SPT>"
        for i, c in enumerate(cases)
    )
    return f"<TriggerPoint><ConditionTypeCNF>0</ConditionTypeCNF>{spts}</TriggerPoint>"


def alice() -> Subscriber:
    publics = (
        PublicIdentity(ALICE, "a1", "basic"),
        PublicIdentity(ALICE_TEL, "a1", "basic"),
        PublicIdentity(ALICE_BARRED, "a1", "basic", barred=True),
        PublicIdentity(ALICE_WORK, "a2", "basic"),
    )
    return Subscriber(
        name="alice",
        privates=(
            PrivateIdentity.with_password(ALICE_IMPI, "alice-pw", tuple(p.impu for p in publics)),
        ),
        publics=publics,
        profiles=(ServiceProfile("basic"),),
        allowed_waf=("waf1.thirdparty.net",),
        allowed_wwsf=("wwsf1.home1.net",),
        mandatory_capabilities=(1, 7),
        optional_capabilities=(3,),
        roaming_networks=("visited1.net",),
        ccf=("aaa://ccf1.home1.net", "aaa://ccf2.home1.net"),
        ecf=("aaa://ecf1.home1.net",),
    )


def bob() -> Subscriber:
    publics = (
        PublicIdentity(BOB, "b1", "voicemail"),
        PublicIdentity(BOB_SOLO, "b2", "basic"),
        PublicIdentity(BOB_ROOMS, "b3", "basic", identity_type=IdentityType.WILDCARDED_PSI),
        PublicIdentity(BOB_CONF, "b4", "basic", identity_type=IdentityType.DISTINCT_PSI),
    )
    return Subscriber(
        name="bob",
        privates=(
            PrivateIdentity.with_password(BOB_IMPI, "bob-pw", tuple(p.impu for p in publics)),
            PrivateIdentity.with_password(BOB_TABLET, "tablet-pw", (BOB,)),
        ),
        publics=publics,
        profiles=(ServiceProfile("basic"), ServiceProfile("voicemail", UNREGISTERED_IFC)),
        roaming_networks=("*",),
    )


def carol() -> Subscriber:
    return Subscriber(
        name="carol",
        privates=(PrivateIdentity.with_password(CAROL_IMPI, "carol-pw", (CAROL,)),),
        publics=(PublicIdentity(CAROL, "c1", "basic", barred=True),),
        profiles=(ServiceProfile("basic"),),
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SubscriberStore]:
    async with SqliteStore(tmp_path / "hss.db") as opened:
        for sub in (alice(), bob(), carol()):
            await opened.add(sub)
        yield opened


async def snapshot(store: SubscriberStore) -> list[Subscriber | None]:
    return [await store.get(name) for name in await store.names()]


async def states(store: SubscriberStore, name: str) -> dict[str, RegistrationState]:
    sub = await store.get(name)
    assert sub is not None
    return {p.impu: p.state for p in sub.publics}


async def assignment(store: SubscriberStore, name: str) -> ServerAssignment | None:
    sub = await store.get(name)
    assert sub is not None
    return sub.assignment


def uar(
    impu: str = ALICE,
    impi: str = ALICE_IMPI,
    auth: UserAuthorizationType = UserAuthorizationType.REGISTRATION,
    visited: str = "home1.net",
    emergency: bool = False,
) -> UarRequest:
    return UarRequest(impi, impu, visited, auth, emergency)


def sar(
    kind: ServerAssignmentType,
    impus: tuple[str, ...] = (ALICE,),
    impi: str | None = ALICE_IMPI,
    server: ServerAssignment = S1,
    available: bool = False,
) -> SarRequest:
    return SarRequest(impi, impus, server.server_name, server.diameter_host, kind, available)


async def register(
    store: SubscriberStore,
    impu: str = ALICE,
    impi: str = ALICE_IMPI,
    server: ServerAssignment = S1,
) -> SarAnswer:
    answer = await perform_sar(store, sar(T.REGISTRATION, (impu,), impi, server))
    assert answer.result == SUCCESS
    return answer


async def refused(store: SubscriberStore, pending: Awaitable[A]) -> A:
    """Await ``pending`` and check the store is as it was before."""
    before = await snapshot(store)
    answer = await pending
    assert await snapshot(store) == before
    return answer


# -- UAR (TS 29.228 §6.1.1.1) -------------------------------------------------------


async def test_s8_42_uar_unknown_impu_5001(store: SubscriberStore) -> None:
    answer = await refused(
        store, perform_uar(store, uar("sip:nobody@home1.net"), home_networks=HOME)
    )
    assert answer == UarAnswer(CxResult.exp(E.DIAMETER_ERROR_USER_UNKNOWN))
    assert answer.result.experimental and answer.result.code == 5001


async def test_s8_42_uar_impi_not_linked_5002(store: SubscriberStore) -> None:
    """Both the IMPI of another subscription and one of the same subscription
    that may not register the IMPU."""
    for impi, impu in ((BOB_IMPI, ALICE), (BOB_TABLET, BOB_SOLO)):
        answer = await refused(store, perform_uar(store, uar(impu, impi), home_networks=HOME))
        assert answer == UarAnswer(CxResult.exp(E.DIAMETER_ERROR_IDENTITIES_DONT_MATCH))


async def test_uar_unknown_impi_5001(store: SubscriberStore) -> None:
    answer = await refused(
        store, perform_uar(store, uar(ALICE, "nobody@home1.net"), home_networks=HOME)
    )
    assert answer == UarAnswer(CxResult.exp(E.DIAMETER_ERROR_USER_UNKNOWN))


async def test_uar_identity_only_a_wildcard_or_a_psi_matches_is_unknown(
    store: SubscriberStore,
) -> None:
    """A UE registers distinct public user identities only."""
    for impu in ("sip:room-42@home1.net", BOB_ROOMS, BOB_CONF):
        answer = await perform_uar(store, uar(impu, BOB_IMPI), home_networks=HOME)
        assert answer.result == CxResult.exp(E.DIAMETER_ERROR_USER_UNKNOWN), impu


async def test_uar_every_identity_of_the_set_barred_is_authorization_rejected(
    store: SubscriberStore,
) -> None:
    answer = await refused(store, perform_uar(store, uar(CAROL, CAROL_IMPI), home_networks=HOME))
    assert answer == UarAnswer(CxResult.base(DIAMETER_AUTHORIZATION_REJECTED))
    assert not answer.result.experimental


async def test_uar_barred_identity_with_unbarred_ones_in_its_set_passes(
    store: SubscriberStore,
) -> None:
    answer = await perform_uar(store, uar(ALICE_BARRED), home_networks=HOME)
    assert answer.result == CxResult.exp(E.DIAMETER_FIRST_REGISTRATION)


async def test_uar_barring_is_not_checked_for_deregistration_or_emergency(
    store: SubscriberStore,
) -> None:
    dereg = uar(CAROL, CAROL_IMPI, UserAuthorizationType.DE_REGISTRATION)
    answer = await perform_uar(store, dereg, home_networks=HOME)
    assert answer.result == CxResult.exp(E.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)
    emergency = uar(CAROL, CAROL_IMPI, emergency=True)
    answer = await perform_uar(store, emergency, home_networks=HOME)
    assert answer.result == CxResult.exp(E.DIAMETER_FIRST_REGISTRATION)


async def test_uar_roaming_not_allowed_5004(store: SubscriberStore) -> None:
    for auth in (
        UserAuthorizationType.REGISTRATION,
        UserAuthorizationType.REGISTRATION_AND_CAPABILITIES,
    ):
        request = uar(auth=auth, visited="visited2.net")
        answer = await refused(store, perform_uar(store, request, home_networks=HOME))
        assert answer == UarAnswer(CxResult.exp(E.DIAMETER_ERROR_ROAMING_NOT_ALLOWED))


async def test_uar_roaming_allowed_networks(store: SubscriberStore) -> None:
    """Home networks (any case), the subscription's list, ``*``, and any
    network for an emergency registration or a deregistration."""
    first = CxResult.exp(E.DIAMETER_FIRST_REGISTRATION)
    cases = [
        uar(visited="HOME1.net"),
        uar(visited="visited1.net"),
        uar(BOB, BOB_IMPI, visited="anywhere.example"),
        uar(visited="visited2.net", emergency=True),
    ]
    for request in cases:
        answer = await perform_uar(store, request, home_networks=HOME)
        assert answer.result == first, request
    dereg = uar(auth=UserAuthorizationType.DE_REGISTRATION, visited="visited2.net")
    answer = await perform_uar(store, dereg, home_networks=HOME)
    assert answer.result == CxResult.exp(E.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)


async def test_s8_43_uar_never_registered_2001_with_capabilities(
    store: SubscriberStore,
) -> None:
    answer = await perform_uar(store, uar(), home_networks=HOME)
    assert answer == UarAnswer(
        CxResult.exp(E.DIAMETER_FIRST_REGISTRATION),
        server_name=None,
        capabilities=Capabilities(mandatory=(1, 7), optional=(3,), server_names=()),
    )
    assert answer.result.experimental and answer.result.code == 2001


async def test_s8_43_uar_already_assigned_2002_with_server_name(
    store: SubscriberStore,
) -> None:
    await register(store)
    for impu in (ALICE, ALICE_TEL):
        answer = await perform_uar(store, uar(impu), home_networks=HOME)
        assert answer == UarAnswer(
            CxResult.exp(E.DIAMETER_SUBSEQUENT_REGISTRATION), server_name=S1.server_name
        )


async def test_uar_name_stored_for_the_subscription_is_2002(store: SubscriberStore) -> None:
    """Another implicit registration set registered, or the name stored by a
    MAR while authentication is pending."""
    await register(store, ALICE_WORK)
    answer = await perform_uar(store, uar(ALICE), home_networks=HOME)
    assert answer.result == CxResult.exp(E.DIAMETER_SUBSEQUENT_REGISTRATION)
    assert answer.server_name == S1.server_name
    mar = MarRequest(BOB_IMPI, BOB, S2.server_name, S2.diameter_host)
    assert (await perform_mar(store, mar)).result == SUCCESS
    answer = await perform_uar(store, uar(BOB, BOB_IMPI), home_networks=HOME)
    assert answer.result == CxResult.exp(E.DIAMETER_SUBSEQUENT_REGISTRATION)
    assert answer.server_name == S2.server_name


async def test_uar_registration_and_capabilities_always_answers_capabilities(
    store: SubscriberStore,
) -> None:
    request = uar(auth=UserAuthorizationType.REGISTRATION_AND_CAPABILITIES)
    for _ in range(2):  # unassigned, then assigned
        answer = await perform_uar(store, request, home_networks=HOME)
        assert answer == UarAnswer(SUCCESS, capabilities=Capabilities((1, 7), (3,)))
        await register(store)


async def test_uar_deregistration(store: SubscriberStore) -> None:
    request = uar(auth=UserAuthorizationType.DE_REGISTRATION)
    answer = await perform_uar(store, request, home_networks=HOME)
    assert answer == UarAnswer(CxResult.exp(E.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED))
    await register(store)
    answer = await perform_uar(store, request, home_networks=HOME)
    assert answer == UarAnswer(SUCCESS, server_name=S1.server_name)
    # Another set of the subscription registered does not make this one so.
    answer = await perform_uar(store, uar(ALICE_WORK, auth=request.auth_type), home_networks=HOME)
    assert answer.result == CxResult.exp(E.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)


async def test_uar_changes_nothing(store: SubscriberStore) -> None:
    before = await snapshot(store)
    for auth in UserAuthorizationType:
        await perform_uar(store, uar(auth=auth), home_networks=HOME)
    assert await snapshot(store) == before


# -- SAR (TS 29.228 §6.1.2.1) -------------------------------------------------------


async def test_s8_44_sar_registration(store: SubscriberStore) -> None:
    answer = await perform_sar(store, sar(T.REGISTRATION))
    assert answer.result == SUCCESS and not answer.result.experimental
    assert answer.impi == ALICE_IMPI
    assert answer.user_data is not None
    data = parse_user_data(answer.user_data)
    assert data.private_id == ALICE_IMPI
    assert data.impus == (ALICE, ALICE_TEL, ALICE_BARRED)  # the whole set, no other
    assert data.barred == {ALICE_BARRED}
    assert answer.ccf == ("aaa://ccf1.home1.net", "aaa://ccf2.home1.net")
    assert answer.ecf == ("aaa://ecf1.home1.net",)
    assert answer.allowed_waf == ("waf1.thirdparty.net",)
    assert answer.allowed_wwsf == ("wwsf1.home1.net",)
    assert answer.associated_impis == ()  # one IMPI only
    assert answer.previous_assignment is None and answer.rtr is None
    assert answer.loose_route is False and answer.associated_registered_impis == ()
    assert await assignment(store, "alice") == S1
    assert await states(store, "alice") == {
        ALICE: REG,
        ALICE_TEL: REG,
        ALICE_BARRED: REG,
        ALICE_WORK: NOT_REG,
    }


async def test_sar_registration_without_allowed_waf_wwsf_and_with_associated_identities(
    store: SubscriberStore,
) -> None:
    answer = await register(store, BOB, BOB_TABLET)
    assert answer.allowed_waf == () and answer.allowed_wwsf == ()
    assert answer.associated_impis == (BOB_IMPI, BOB_TABLET)
    assert answer.impi == BOB_TABLET
    assert answer.user_data is not None
    assert parse_user_data(answer.user_data).private_id == BOB_TABLET


async def test_sar_registration_with_user_data_already_available(store: SubscriberStore) -> None:
    answer = await perform_sar(store, sar(T.REGISTRATION, available=True))
    assert answer == SarAnswer(SUCCESS, impi=ALICE_IMPI)
    assert (await states(store, "alice"))[ALICE] == REG


async def test_sar_re_registration(store: SubscriberStore) -> None:
    await register(store)
    before = await snapshot(store)
    answer = await perform_sar(store, sar(T.RE_REGISTRATION, (ALICE_TEL,)))
    assert answer.result == SUCCESS and answer.user_data is not None
    assert await snapshot(store) == before
    # A RE_REGISTRATION also registers a set that was not.
    answer = await perform_sar(store, sar(T.RE_REGISTRATION, (ALICE_WORK,), available=True))
    assert answer.result == SUCCESS
    assert (await states(store, "alice"))[ALICE_WORK] == REG


async def test_s8_45_after_registration_uar_2002_and_lir_success(
    store: SubscriberStore,
) -> None:
    await register(store)
    uaa = await perform_uar(store, uar(), home_networks=HOME)
    assert uaa.result == CxResult.exp(E.DIAMETER_SUBSEQUENT_REGISTRATION)
    assert uaa.server_name == S1.server_name
    lia = await perform_lir(store, LirRequest(ALICE))
    assert lia.result == SUCCESS and not lia.result.experimental
    assert lia.server_name == S1.server_name


@pytest.mark.parametrize("kind", sorted(T))
async def test_sar_unknown_identity_5001(
    store: SubscriberStore, kind: ServerAssignmentType
) -> None:
    for impi, impus in ((ALICE_IMPI, ("sip:nobody@home1.net",)), ("nobody@home1.net", (ALICE,))):
        answer = await refused(store, perform_sar(store, sar(kind, impus, impi)))
        assert answer == SarAnswer(CxResult.exp(E.DIAMETER_ERROR_USER_UNKNOWN))


@pytest.mark.parametrize("kind", sorted(T))
async def test_sar_identities_dont_match_5002(
    store: SubscriberStore, kind: ServerAssignmentType
) -> None:
    for impi, impu in ((ALICE_IMPI, BOB), (BOB_TABLET, BOB_SOLO)):
        answer = await refused(store, perform_sar(store, sar(kind, (impu,), impi)))
        assert answer == SarAnswer(CxResult.exp(E.DIAMETER_ERROR_IDENTITIES_DONT_MATCH))


async def test_sar_identities_of_two_subscriptions_without_impi_5002(
    store: SubscriberStore,
) -> None:
    request = sar(T.USER_DEREGISTRATION, (ALICE, BOB), impi=None)
    answer = await refused(store, perform_sar(store, request))
    assert answer.result == CxResult.exp(E.DIAMETER_ERROR_IDENTITIES_DONT_MATCH)


@pytest.mark.parametrize(
    "kind",
    [T.REGISTRATION, T.RE_REGISTRATION, T.AUTHENTICATION_FAILURE, T.AUTHENTICATION_TIMEOUT],
)
async def test_sar_without_impi_where_required_is_missing_avp(
    store: SubscriberStore, kind: ServerAssignmentType
) -> None:
    answer = await refused(store, perform_sar(store, sar(kind, impi=None)))
    assert answer == SarAnswer(CxResult.base(DIAMETER_MISSING_AVP))


@pytest.mark.parametrize("kind", [T.REGISTRATION, T.UNREGISTERED_USER, T.NO_ASSIGNMENT])
async def test_sar_without_impu_where_required_is_missing_avp(
    store: SubscriberStore, kind: ServerAssignmentType
) -> None:
    answer = await refused(store, perform_sar(store, sar(kind, impus=())))
    assert answer == SarAnswer(CxResult.base(DIAMETER_MISSING_AVP))
    answer = await refused(store, perform_sar(store, sar(T.USER_DEREGISTRATION, (), None)))
    assert answer == SarAnswer(CxResult.base(DIAMETER_MISSING_AVP))


async def test_sar_second_impu_where_one_may_be_is_too_many(store: SubscriberStore) -> None:
    request = sar(T.REGISTRATION, (ALICE, ALICE_WORK))
    answer = await refused(store, perform_sar(store, request))
    assert answer == SarAnswer(CxResult.base(DIAMETER_AVP_OCCURS_TOO_MANY_TIMES))


async def test_sar_registration_of_a_psi_5007(store: SubscriberStore) -> None:
    answer = await refused(store, perform_sar(store, sar(T.REGISTRATION, (BOB_CONF,), BOB_IMPI)))
    assert answer == SarAnswer(CxResult.exp(E.DIAMETER_ERROR_IN_ASSIGNMENT_TYPE))


async def test_sar_registration_from_a_new_scscf_takes_over_with_an_rtr(
    store: SubscriberStore,
) -> None:
    await register(store)
    await register(store, ALICE_WORK)
    answer = await register(store, server=S2)
    assert answer.previous_assignment == S1
    assert answer.rtr is not None
    assert answer.rtr.destination_host == S1.diameter_host
    assert answer.rtr.reason == DeregistrationReason.NEW_SERVER_ASSIGNED
    assert answer.rtr.impi == ALICE_IMPI and answer.rtr.associated_impis == ()
    assert answer.rtr.impus == (ALICE, ALICE_TEL, ALICE_BARRED, ALICE_WORK)
    assert await assignment(store, "alice") == S2
    assert (await states(store, "alice"))[ALICE] == REG


async def test_sar_registration_from_another_name_at_the_same_host_sends_no_rtr(
    store: SubscriberStore,
) -> None:
    await register(store)
    answer = await register(store, server=S1_OTHER_NAME)
    assert answer.previous_assignment == S1 and answer.rtr is None
    assert await assignment(store, "alice") == S1_OTHER_NAME


async def test_sar_registration_after_another_scscf_only_authenticated_sends_no_rtr(
    store: SubscriberStore,
) -> None:
    assert (await perform_mar(store, MarRequest(ALICE_IMPI, ALICE, *vars_of(S1)))).result == SUCCESS
    answer = await register(store, server=S2)
    assert answer.previous_assignment == S1 and answer.rtr is None


def vars_of(server: ServerAssignment) -> tuple[str, str]:
    return server.server_name, server.diameter_host


async def test_sar_unregistered_user(store: SubscriberStore) -> None:
    request = sar(T.UNREGISTERED_USER, (BOB,), impi=None)
    answer = await perform_sar(store, request)
    assert answer.result == SUCCESS
    assert answer.impi == BOB_IMPI  # one picked for the set
    assert answer.user_data is not None
    assert parse_user_data(answer.user_data).impus == (BOB,)
    assert answer.associated_impis == (BOB_IMPI, BOB_TABLET)
    assert (await states(store, "bob"))[BOB] == UNREG
    assert await assignment(store, "bob") == S1
    # Again from the same S-CSCF: same answer, nothing more to write.
    before = await snapshot(store)
    assert await perform_sar(store, request) == answer
    assert await snapshot(store) == before


async def test_sar_unregistered_user_for_a_wildcarded_identity(store: SubscriberStore) -> None:
    answer = await perform_sar(store, sar(T.UNREGISTERED_USER, ("sip:room-7@home1.net",), None))
    assert answer.result == SUCCESS
    assert (await states(store, "bob"))[BOB_ROOMS] == UNREG


async def test_sar_unregistered_user_keeps_a_registered_set_registered(
    store: SubscriberStore,
) -> None:
    await register(store)
    answer = await perform_sar(store, sar(T.UNREGISTERED_USER, (ALICE_TEL,), None))
    assert answer.result == SUCCESS and answer.impi == ALICE_IMPI
    assert (await states(store, "alice"))[ALICE] == REG


async def test_sar_unregistered_user_from_another_scscf_5005(store: SubscriberStore) -> None:
    await register(store)
    request = sar(T.UNREGISTERED_USER, (ALICE,), None, server=S2)
    answer = await refused(store, perform_sar(store, request))
    assert answer == SarAnswer(
        CxResult.exp(E.DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED), server_name=S1.server_name
    )


async def test_sar_no_assignment(store: SubscriberStore) -> None:
    request = sar(T.NO_ASSIGNMENT)
    unable = SarAnswer(CxResult.base(DIAMETER_UNABLE_TO_COMPLY))
    assert await refused(store, perform_sar(store, request)) == unable  # none assigned
    await register(store)
    answer = await refused(store, perform_sar(store, request))
    assert answer.result == SUCCESS and answer.user_data is not None
    other = sar(T.NO_ASSIGNMENT, server=S2)
    assert await refused(store, perform_sar(store, other)) == unable


PLAIN_DEREGISTRATIONS = [
    T.TIMEOUT_DEREGISTRATION,
    T.USER_DEREGISTRATION,
    T.ADMINISTRATIVE_DEREGISTRATION,
    T.DEREGISTRATION_TOO_MUCH_DATA,
]
STORE_NAME = [T.TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME, T.USER_DEREGISTRATION_STORE_SERVER_NAME]


@pytest.mark.parametrize("kind", PLAIN_DEREGISTRATIONS)
async def test_sar_deregistration(store: SubscriberStore, kind: ServerAssignmentType) -> None:
    await register(store)
    answer = await perform_sar(store, sar(kind, (ALICE_TEL,)))
    assert answer == SarAnswer(SUCCESS, impi=ALICE_IMPI)
    assert set((await states(store, "alice")).values()) == {NOT_REG}
    assert await assignment(store, "alice") is None


@pytest.mark.parametrize("kind", PLAIN_DEREGISTRATIONS + STORE_NAME)
async def test_sar_deregistration_keeps_the_name_for_another_served_set(
    store: SubscriberStore, kind: ServerAssignmentType
) -> None:
    await register(store)
    await register(store, ALICE_WORK)
    answer = await perform_sar(store, sar(kind))
    assert answer.result.success
    assert await states(store, "alice") == {
        ALICE: NOT_REG,
        ALICE_TEL: NOT_REG,
        ALICE_BARRED: NOT_REG,
        ALICE_WORK: REG,
    }
    assert await assignment(store, "alice") == S1


async def test_sar_deregistration_by_impi_alone_and_of_several_identities(
    store: SubscriberStore,
) -> None:
    await register(store)
    await register(store, ALICE_WORK)
    answer = await perform_sar(store, sar(T.USER_DEREGISTRATION, impus=()))
    assert answer == SarAnswer(SUCCESS, impi=ALICE_IMPI)
    assert set((await states(store, "alice")).values()) == {NOT_REG}
    await register(store)
    await register(store, ALICE_WORK)
    answer = await perform_sar(store, sar(T.TIMEOUT_DEREGISTRATION, (ALICE, ALICE_WORK), None))
    assert answer == SarAnswer(SUCCESS)
    assert set((await states(store, "alice")).values()) == {NOT_REG}
    assert await assignment(store, "alice") is None


@pytest.mark.parametrize(
    "kind",
    PLAIN_DEREGISTRATIONS + STORE_NAME + [T.AUTHENTICATION_FAILURE, T.AUTHENTICATION_TIMEOUT],
)
async def test_sar_deregistration_from_another_scscf_is_refused(
    store: SubscriberStore, kind: ServerAssignmentType
) -> None:
    await register(store, server=S2)
    answer = await refused(store, perform_sar(store, sar(kind, server=S1)))
    assert answer == SarAnswer(CxResult.base(DIAMETER_UNABLE_TO_COMPLY))


@pytest.mark.parametrize("kind", STORE_NAME)
async def test_sar_store_server_name_kept_for_unregistered_services(
    store: SubscriberStore, kind: ServerAssignmentType
) -> None:
    await register(store, BOB, BOB_IMPI)
    answer = await perform_sar(store, sar(kind, (BOB,), BOB_IMPI))
    assert answer == SarAnswer(SUCCESS, impi=BOB_IMPI)
    assert (await states(store, "bob"))[BOB] == UNREG
    assert await assignment(store, "bob") == S1
    lia = await perform_lir(store, LirRequest(BOB))
    assert lia.result == SUCCESS and lia.server_name == S1.server_name


@pytest.mark.parametrize("kind", STORE_NAME)
async def test_sar_store_server_name_not_kept_without_unregistered_services_2004(
    store: SubscriberStore, kind: ServerAssignmentType
) -> None:
    await register(store)
    answer = await perform_sar(store, sar(kind))
    assert answer == SarAnswer(
        CxResult.exp(E.DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED), impi=ALICE_IMPI
    )
    assert answer.result.experimental and answer.result.code == 2004
    assert set((await states(store, "alice")).values()) == {NOT_REG}
    assert await assignment(store, "alice") is None


@pytest.mark.parametrize("kind", [T.AUTHENTICATION_FAILURE, T.AUTHENTICATION_TIMEOUT])
async def test_sar_authentication_ended_clears_a_pending_name(
    store: SubscriberStore, kind: ServerAssignmentType
) -> None:
    mar = MarRequest(ALICE_IMPI, ALICE, *vars_of(S1))
    assert (await perform_mar(store, mar)).result == SUCCESS
    assert await assignment(store, "alice") == S1
    answer = await perform_sar(store, sar(kind))
    assert answer == SarAnswer(SUCCESS, impi=ALICE_IMPI)
    assert await assignment(store, "alice") is None
    # Nothing pending any more: the same request changes nothing.
    assert await refused(store, perform_sar(store, sar(kind))) == answer


@pytest.mark.parametrize("kind", [T.AUTHENTICATION_FAILURE, T.AUTHENTICATION_TIMEOUT])
async def test_sar_authentication_ended_keeps_a_registered_user(
    store: SubscriberStore, kind: ServerAssignmentType
) -> None:
    await register(store)
    for impu in (ALICE, ALICE_WORK):  # the set registered, or another one
        answer = await refused(store, perform_sar(store, sar(kind, (impu,))))
        assert answer == SarAnswer(SUCCESS, impi=ALICE_IMPI)


async def test_sar_multiple_registration_indication_is_accepted(store: SubscriberStore) -> None:
    await register(store, BOB, BOB_IMPI)
    request = SarRequest(
        BOB_TABLET,
        (BOB,),
        S1.server_name,
        S1.diameter_host,
        T.REGISTRATION,
        user_data_available=False,
        multiple_registration=True,
    )
    answer = await perform_sar(store, request)
    assert answer.result == SUCCESS and answer.associated_registered_impis == ()


async def test_every_server_assignment_type_has_a_test() -> None:
    covered = {
        T.NO_ASSIGNMENT,
        T.REGISTRATION,
        T.RE_REGISTRATION,
        T.UNREGISTERED_USER,
        *PLAIN_DEREGISTRATIONS,
        *STORE_NAME,
        T.AUTHENTICATION_FAILURE,
        T.AUTHENTICATION_TIMEOUT,
    }
    assert covered == set(T)


# -- LIR (TS 29.228 §6.1.4.1) -------------------------------------------------------


async def test_lir_unknown_5001(store: SubscriberStore) -> None:
    answer = await refused(store, perform_lir(store, LirRequest("sip:nobody@home1.net")))
    assert answer.result == CxResult.exp(E.DIAMETER_ERROR_USER_UNKNOWN)


async def test_lir_not_registered_without_unregistered_services_5003(
    store: SubscriberStore,
) -> None:
    answer = await refused(store, perform_lir(store, LirRequest(ALICE)))
    assert answer.result == CxResult.exp(E.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)
    assert answer.server_name is None and answer.capabilities is None


async def test_lir_unregistered_services_or_originating_without_a_name_2003(
    store: SubscriberStore,
) -> None:
    answer = await perform_lir(store, LirRequest(BOB))
    assert answer.result == CxResult.exp(E.DIAMETER_UNREGISTERED_SERVICE)
    assert answer.capabilities == Capabilities() and answer.server_name is None
    answer = await perform_lir(store, LirRequest(ALICE, originating=True))
    assert answer.result == CxResult.exp(E.DIAMETER_UNREGISTERED_SERVICE)
    assert answer.capabilities == Capabilities((1, 7), (3,))


async def test_lir_not_registered_with_a_name_stored_for_the_subscription(
    store: SubscriberStore,
) -> None:
    await register(store, BOB_SOLO, BOB_IMPI)
    answer = await perform_lir(store, LirRequest(BOB))  # unregistered services
    assert answer.result == SUCCESS and answer.server_name == S1.server_name
    await register(store, ALICE_WORK)
    answer = await perform_lir(store, LirRequest(ALICE, originating=True))
    assert answer.result == SUCCESS and answer.server_name == S1.server_name
    answer = await perform_lir(store, LirRequest(ALICE))
    assert answer.result == CxResult.exp(E.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)


async def test_lir_unregistered_identity_success(store: SubscriberStore) -> None:
    await perform_sar(store, sar(T.UNREGISTERED_USER, (ALICE,), None))
    answer = await perform_lir(store, LirRequest(ALICE_TEL))
    assert answer.result == SUCCESS and answer.server_name == S1.server_name


async def test_lir_wildcarded_identity(store: SubscriberStore) -> None:
    answer = await perform_lir(store, LirRequest("sip:room-9@home1.net"))
    assert answer.result == CxResult.exp(E.DIAMETER_ERROR_IDENTITY_NOT_REGISTERED)
    await perform_sar(store, sar(T.UNREGISTERED_USER, ("sip:room-1@home1.net",), None))
    answer = await perform_lir(store, LirRequest("sip:room-9@home1.net"))
    assert answer.result == SUCCESS and answer.server_name == S1.server_name
    assert answer.wildcarded_impu == BOB_ROOMS
    assert (await perform_lir(store, LirRequest(BOB))).wildcarded_impu is None


# -- MAR (TS 29.228 §6.3.1) ---------------------------------------------------------


async def test_mar_sip_digest(store: SubscriberStore) -> None:
    for scheme in ("SIP Digest", "Unknown", "sip digest"):
        request = MarRequest(ALICE_IMPI, ALICE, *vars_of(S1), scheme=scheme, items=1)
        answer = await perform_mar(store, request)
        assert answer.result == SUCCESS
        assert answer.impi == ALICE_IMPI and answer.impu == ALICE
        (item,) = answer.items
        assert item.realm == "home1.net" and item.qop == "auth" and item.algorithm == "MD5"
        assert item.ha1 == digest_ha1(ALICE_IMPI, "home1.net", "alice-pw")
        assert item.alternate_algorithm == "SHA-256"
        assert item.alternate_ha1 == digest_ha1(ALICE_IMPI, "home1.net", "alice-pw", "SHA-256")
    # Authentication pending: the name is stored, the state unchanged.
    assert await assignment(store, "alice") == S1
    assert set((await states(store, "alice")).values()) == {NOT_REG}


async def test_mar_no_item_asked_for(store: SubscriberStore) -> None:
    answer = await perform_mar(store, MarRequest(ALICE_IMPI, ALICE, *vars_of(S1), items=0))
    assert answer.result == SUCCESS and answer.items == ()


async def test_mar_other_scheme_5006(store: SubscriberStore) -> None:
    for scheme in ("Digest-AKAv1-MD5", "Digest-AKAv2-SHA-256", "NASS-Bundled"):
        request = MarRequest(ALICE_IMPI, ALICE, *vars_of(S1), scheme=scheme)
        answer = await refused(store, perform_mar(store, request))
        assert answer.result == CxResult.exp(E.DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED)
        assert answer.items == ()


async def test_mar_unknown_5001_and_mismatch_5002(store: SubscriberStore) -> None:
    cases = [
        ("nobody@home1.net", ALICE, E.DIAMETER_ERROR_USER_UNKNOWN),
        (ALICE_IMPI, "sip:nobody@home1.net", E.DIAMETER_ERROR_USER_UNKNOWN),
        (BOB_IMPI, ALICE, E.DIAMETER_ERROR_IDENTITIES_DONT_MATCH),
        (BOB_TABLET, BOB_SOLO, E.DIAMETER_ERROR_IDENTITIES_DONT_MATCH),
    ]
    for impi, impu, code in cases:
        answer = await refused(store, perform_mar(store, MarRequest(impi, impu, *vars_of(S1))))
        assert answer.result == CxResult.exp(code)


async def test_mar_from_a_new_scscf_takes_over_with_an_rtr(store: SubscriberStore) -> None:
    await register(store)
    answer = await perform_mar(store, MarRequest(ALICE_IMPI, ALICE, *vars_of(S2)))
    assert answer.result == SUCCESS and answer.previous_assignment == S1
    assert answer.rtr is not None and answer.rtr.destination_host == S1.diameter_host
    assert answer.rtr.reason == DeregistrationReason.NEW_SERVER_ASSIGNED
    assert answer.rtr.impus == (ALICE, ALICE_TEL, ALICE_BARRED)
    assert await assignment(store, "alice") == S2
    assert (await states(store, "alice"))[ALICE] == REG
    # The same S-CSCF again: nothing to write, nobody to deregister.
    before = await snapshot(store)
    again = await perform_mar(store, MarRequest(ALICE_IMPI, ALICE, *vars_of(S2)))
    assert again.result == SUCCESS and again.rtr is None and again.previous_assignment is None
    assert await snapshot(store) == before


# -- RTR and PPR, HSS-initiated (TS 29.228 §6.1.3.1, §6.2.2.1) -----------------------


async def test_rtr_for_the_whole_subscription(store: SubscriberStore) -> None:
    await register(store, BOB, BOB_TABLET)
    await register(store, BOB_SOLO, BOB_IMPI)
    rtr = await prepare_rtr(store, "bob", DeregistrationReason.PERMANENT_TERMINATION)
    assert rtr is not None
    assert rtr.destination_host == S1.diameter_host
    assert rtr.impi == BOB_IMPI and rtr.associated_impis == (BOB_TABLET,)
    assert rtr.impus == ()  # every identity of the IMPIs
    assert rtr.reason == DeregistrationReason.PERMANENT_TERMINATION
    assert set((await states(store, "bob")).values()) == {NOT_REG}
    assert await assignment(store, "bob") is None


async def test_rtr_for_one_set_keeps_the_others(store: SubscriberStore) -> None:
    await register(store)
    await register(store, ALICE_WORK)
    rtr = await prepare_rtr(
        store, "alice", DeregistrationReason.REMOVE_S_CSCF, [ALICE_TEL], reason_info="bye"
    )
    assert rtr is not None
    assert rtr.impus == (ALICE, ALICE_TEL, ALICE_BARRED) and rtr.reason_info == "bye"
    assert rtr.associated_impis == ()
    assert (await states(store, "alice"))[ALICE_WORK] == REG
    assert (await states(store, "alice"))[ALICE] == NOT_REG
    assert await assignment(store, "alice") == S1


async def test_rtr_new_server_assigned_lists_the_identities(store: SubscriberStore) -> None:
    await register(store)
    rtr = await prepare_rtr(store, "alice", DeregistrationReason.NEW_SERVER_ASSIGNED)
    assert rtr is not None
    assert rtr.impus == (ALICE, ALICE_TEL, ALICE_BARRED, ALICE_WORK)


async def test_rtr_with_nothing_assigned(store: SubscriberStore) -> None:
    rtr = await refused(store, prepare_rtr(store, "alice", DeregistrationReason.SERVER_CHANGE))
    assert rtr is None


async def test_rtr_for_unknown_names(store: SubscriberStore) -> None:
    with pytest.raises(SubscriberNotFound):
        await prepare_rtr(store, "nobody", DeregistrationReason.PERMANENT_TERMINATION)
    await register(store)
    before = await snapshot(store)
    with pytest.raises(SubscriberNotFound):
        await prepare_rtr(store, "alice", DeregistrationReason.SERVER_CHANGE, [BOB])
    assert await snapshot(store) == before


async def test_ppr_after_a_profile_change(store: SubscriberStore) -> None:
    await register(store)
    sub = await store.get("alice")
    assert sub is not None
    ppr = prepare_ppr(sub)
    assert ppr is not None
    assert ppr.destination_host == S1.diameter_host and ppr.impi == ALICE_IMPI
    assert ppr.user_data is not None
    assert parse_user_data(ppr.user_data).impus == (ALICE, ALICE_TEL, ALICE_BARRED)
    assert ppr.allowed_waf == ("waf1.thirdparty.net",)
    assert ppr.allowed_wwsf == ("wwsf1.home1.net",)
    assert ppr.ccf == sub.ccf and ppr.ecf == sub.ecf
    only_charging = prepare_ppr(sub, ALICE_TEL, profile_changed=False, waf_wwsf_changed=False)
    assert only_charging is not None
    assert only_charging.user_data is None and only_charging.allowed_waf == ()
    assert only_charging.ccf == sub.ccf
    assert prepare_ppr(sub, ALICE_WORK) is None  # a set the S-CSCF does not serve


async def test_ppr_with_nothing_assigned(store: SubscriberStore) -> None:
    sub = await store.get("alice")
    assert sub is not None
    assert prepare_ppr(sub) is None


# -- services in the unregistered state ------------------------------------------------


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("", False),
        (UNREGISTERED_IFC, True),
        (ifc(session_cases(0)), False),
        (ifc(session_cases(0, 1)), False),
        (ifc(session_cases(1, 2)), True),
        (ifc(session_cases(3)), True),
        (ifc(session_cases(4)), True),
        (ifc(), True),  # no trigger point: fires always
        (ifc(session_cases(2), part="0"), False),  # registered part only
        (ifc(session_cases(2), part="1"), True),
        (ifc(session_cases(0)) + ifc(session_cases(2)), True),
        ("<InitialFilterCriteria>", False),  # malformed
    ],
)
def test_has_unregistered_services(fragment: str, expected: bool) -> None:
    sub = Subscriber(
        name="x",
        privates=(PrivateIdentity.with_password("x@home1.net", "pw", ("sip:x@home1.net",)),),
        publics=(PublicIdentity("sip:x@home1.net", "x1", "p"),),
        profiles=(ServiceProfile("p", fragment),),
    )
    assert has_unregistered_services(sub, sub.publics[0]) is expected
