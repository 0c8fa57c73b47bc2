"""SIP Digest at the S-CSCF for a plain SIP phone (TS 24.229 5.4.1.2.1B;
RFC 2617 qop=auth): the 401 challenge, the response checked with the H(A1)
of the HSS's MAA, then SAR; the demo user user1 with password user1-secret."""

from __future__ import annotations

from webims.diameter.cxdefs import ServerAssignmentType
from webims.hss.model import RegistrationState
from webims.sip import Response
from webims.sip.auth import Challenge

from .conftest import USER1_IMPI, USER1_IMPU, Deployment
from .messages import digest_response, register


async def challenge_for(dep: Deployment) -> tuple[str, Challenge]:
    call_id = register(
        dep.untrusted, dep.route, USER1_IMPU, USER1_IMPI, auth_done=False, path=False
    )
    resp = await dep.untrusted.response()
    assert resp.status == 401, resp.start_line()
    [challenge] = resp.www_authenticate
    return call_id, challenge


async def answered(
    dep: Deployment, call_id: str, cseq: int, authorization: str, impu: str = USER1_IMPU
) -> Response:
    """The S-CSCF's answer to the phone's REGISTER ``cseq`` on ``call_id`` with
    ``authorization`` (not from a trusted peer, no Path)."""
    register(
        dep.untrusted,
        dep.route,
        impu,
        USER1_IMPI,
        path=False,
        call_id=call_id,
        cseq=cseq,
        authorization=authorization,
    )
    return await dep.untrusted.response()


async def test_digest_challenge_then_verify(deployment: Deployment) -> None:
    dep = deployment
    call_id, challenge = await challenge_for(dep)
    assert challenge.scheme == "Digest"
    assert challenge.get("realm") == "home1.net"
    assert challenge.get("qop") == "auth"
    assert challenge.get("nonce")
    assert dep.spy.sars == []
    resp = await answered(dep, call_id, 2, digest_response(challenge, USER1_IMPI, "user1-secret"))
    assert resp.status == 200, resp.start_line()
    assert dep.spy.mars == [(USER1_IMPI, USER1_IMPU)]
    assert dep.spy.kinds() == [ServerAssignmentType.REGISTRATION]
    assert [str(a.uri) for a in resp.p_associated_uri] == [USER1_IMPU]
    sub = await dep.hss.raw_store.get("user1")
    assert sub is not None and {p.state for p in sub.publics} == {RegistrationState.REGISTERED}


async def test_digest_reregistration_reuses_nonce_without_mar(deployment: Deployment) -> None:
    dep = deployment
    call_id, challenge = await challenge_for(dep)
    auth = digest_response(challenge, USER1_IMPI, "user1-secret", nc=1)
    assert (await answered(dep, call_id, 2, auth)).status == 200
    auth2 = digest_response(challenge, USER1_IMPI, "user1-secret", nc=2)
    assert (await answered(dep, call_id, 3, auth2)).status == 200
    assert len(dep.spy.mars) == 1
    assert dep.spy.kinds()[-1] == ServerAssignmentType.RE_REGISTRATION
    # The same nc again is a replay (or a UA sending its last credentials
    # again): a new nonce, stale=true, never a 200; no new MAR is needed.
    again = await answered(dep, call_id, 4, auth2)
    assert again.status == 401
    [fresh] = again.www_authenticate
    assert fresh.get("stale") == "true"
    assert fresh.get("nonce") not in (None, challenge.get("nonce"))
    kinds = dep.spy.kinds()
    assert (
        await answered(dep, call_id, 5, digest_response(fresh, USER1_IMPI, "user1-secret", nc=1))
    ).status == 200
    assert len(dep.spy.mars) == 1
    assert dep.spy.kinds() == [*kinds, ServerAssignmentType.RE_REGISTRATION]


async def test_digest_wrong_password_403_and_authentication_failure(
    deployment: Deployment,
) -> None:
    dep = deployment
    call_id, challenge = await challenge_for(dep)
    resp = await answered(
        dep, call_id, 2, digest_response(challenge, USER1_IMPI, "not-the-password")
    )
    assert resp.status == 403
    assert dep.spy.kinds() == [ServerAssignmentType.AUTHENTICATION_FAILURE]
    assert await dep.scscf.scscf.store.get(USER1_IMPU) is None
    sub = await dep.hss.raw_store.get("user1")
    assert sub is not None and sub.assignment is None


async def test_digest_unknown_nonce_is_challenged_stale(deployment: Deployment) -> None:
    dep = deployment
    auth = (
        f'Digest username="{USER1_IMPI}", realm="home1.net", nonce="forged", '
        'uri="sip:home1.net", response="00000000000000000000000000000000", qop=auth, '
        'nc=00000001, cnonce="x"'
    )
    register(dep.untrusted, dep.route, USER1_IMPU, USER1_IMPI, path=False, authorization=auth)
    resp = await dep.untrusted.response()
    assert resp.status == 401
    [challenge] = resp.www_authenticate
    assert challenge.get("stale") == "true"
    assert challenge.get("nonce") != "forged"
    assert dep.spy.mars == [(USER1_IMPI, USER1_IMPU)]  # the username was known: HA1 asked
    assert dep.spy.sars == []


async def test_digest_nonce_bound_to_the_challenged_impu(deployment: Deployment) -> None:
    dep = deployment
    call_id, challenge = await challenge_for(dep)
    assert (
        await answered(
            dep,
            call_id,
            2,
            digest_response(challenge, USER1_IMPI, "user1-secret"),
            "sip:user2_public1@home1.net",
        )
    ).status == 403
    assert dep.spy.sars == []
