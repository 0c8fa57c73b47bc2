"""WICs with IMS credentials (TS 24.371 scenario 1, TS 33.203 X.2): ``[pcscf] ims_auth``.

With the option on, a WIC may register over WSS with SIP Digest instead of a Bearer
token: the eP-CSCF forwards its Digest credentials marked
``integrity-protected="tls-pending"`` (TS 24.229 5.2.2.1) and the S-CSCF challenges
it; a REGISTER without credentials is offered both challenges.  Off (the default,
web-authentication mode) nothing changes: every REGISTER needs a token.
"""

from __future__ import annotations

import contextlib
import secrets
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.waf.conftest import WafSite
from webims.sip import Request, Response, parse_message
from webims.sip.auth import DigestCredentials, parse_challenge

from .conftest import StartPcscf
from .gm_system import USER1, USER2, CoreSystem, User, answer_challenge, core_system
from .harness import USER1_IMPU, USER2_IMPU, Deployment

INITIAL = (
    'Digest username="user1_private@home1.net", realm="home1.net", uri="sip:home1.net", '
    'nonce="", response=""'
)


@pytest.fixture
async def pcscf(site: WafSite, start_pcscf: StartPcscf) -> Deployment:
    return await start_pcscf(site, ims_auth=True)


def _forwarded_digest(pcscf: Deployment) -> DigestCredentials:
    [register] = pcscf.core.of("REGISTER")
    assert "Bearer" not in str(register.headers.get_all("Authorization"))
    [creds] = register.authorization
    assert isinstance(creds, DigestCredentials)
    return creds


async def test_a_register_without_credentials_is_offered_both_challenges(
    pcscf: Deployment,
) -> None:
    async with pcscf.wic() as wic:
        answer = await wic.register(None)
    assert answer.status == 401
    bearer, digest = answer.www_authenticate
    assert bearer.scheme == "Bearer" and bearer.get("realm") == "home1.net"
    assert bearer.get("authz_server")
    assert digest.scheme == "Digest" and digest.get("realm") == "home1.net"
    assert digest.get("qop") == "auth" and digest.get("nonce")
    assert pcscf.core.of("REGISTER") == []


async def test_a_digest_register_over_wss_goes_to_the_core_marked_tls_pending(
    pcscf: Deployment,
) -> None:
    async with pcscf.wic() as wic:
        await wic.ws.send(wic.register_message(INITIAL))
        answer = await wic.response()
        assert answer.status == 200  # the test's core does not challenge
        creds = _forwarded_digest(pcscf)
        assert creds.username == "user1_private@home1.net"
        assert creds.integrity_protected == "tls-pending"
        assert creds.params.get("authorization-entity") is None
        [register] = pcscf.core.of("REGISTER")
        [path] = register.paths
        assert path.sip_uri.host == "pcscf.home1.net" and "ob" in path.sip_uri.params
        # Bound to the connection as a token's registration is (SPEC §1.4 C).
        await wic.ws.send(wic.request_message())
        assert (await wic.response()).status == 200
        [message] = pcscf.core.of("MESSAGE")
        assert message.headers.get_all("P-Asserted-Identity") == [f"<{USER1_IMPU}>"]
        forged = wic.request_message(from_=USER2_IMPU)
        assert (await wic.send(forged)).status == 403


async def test_a_wic_claiming_auth_done_with_ims_credentials_is_still_challenged(
    pcscf: Deployment,
) -> None:
    """SPEC §8 23 with the option on: the claim is replaced, never forwarded."""
    async with pcscf.wic() as wic:
        await wic.ws.send(wic.register_message(INITIAL + ', integrity-protected="auth-done"'))
        await wic.response()
    assert _forwarded_digest(pcscf).integrity_protected == "tls-pending"


async def test_over_plain_ws_no_protection_is_claimed(pcscf: Deployment) -> None:
    async with pcscf.wic(secure=False) as wic:
        await wic.ws.send(wic.register_message(INITIAL))
        assert (await wic.response()).status == 200
    assert _forwarded_digest(pcscf).integrity_protected is None


async def test_off_by_default_a_digest_register_gets_the_bearer_challenge_alone(
    site: WafSite, start_pcscf: StartPcscf
) -> None:
    pcscf = await start_pcscf(site)
    async with pcscf.wic() as wic:
        await wic.ws.send(wic.register_message(INITIAL))
        answer = await wic.response()
    assert answer.status == 401
    [challenge] = answer.www_authenticate
    assert challenge.scheme == "Bearer"
    assert pcscf.core.of("REGISTER") == []


# -- through the whole core ------------------------------------------------------------------


class DigestWic:
    """A WIC on WSS with SIP Digest credentials, as JsSIP or SIP.js configured with a
    password behaves: no credentials at first, then the answer to each challenge."""

    def __init__(self, ws: ClientConnection, user: User) -> None:
        self.ws, self.user = ws, user
        self.host = uuid.uuid4().hex[:12] + ".invalid"
        self.call_id = f"{uuid.uuid4().hex}@{self.host}"
        self.cseq = 0

    def register_message(self, authorization: str | None, expires: int = 600) -> str:
        self.cseq += 1
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        return (
            "REGISTER sip:home1.net SIP/2.0\r\n"
            f"Via: SIP/2.0/WSS {self.host};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{self.user.impu}>;tag=t{self.cseq}\r\n"
            f"To: <{self.user.impu}>\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {self.cseq} REGISTER\r\n"
            f"Contact: <sip:w@{self.host};transport=ws>;expires={expires}\r\n"
            f"{auth}Content-Length: 0\r\n\r\n"
        )

    def answer(self, challenge: Response, password: str | None = None) -> str:
        return answer_challenge(self.user, challenge, password=password)

    async def exchange(self, text: str) -> Response:
        await self.ws.send(text)
        while True:
            msg = parse_message(await self.ws.recv(decode=False))
            if isinstance(msg, Request):
                continue
            if msg.status >= 200:
                return msg


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoreSystem]:
    with core_system(tmp_path_factory.mktemp("ims-auth-up"), pcscf="ims_auth = true\n") as up:
        yield up


@contextlib.asynccontextmanager
async def digest_wic(system: CoreSystem, user: User) -> AsyncIterator[DigestWic]:
    ca = ssl.create_default_context(cafile=str(system.data_dir / "pki" / "ca.pem"))
    url = f"wss://127.0.0.1:{system.ports['wss']}/"
    async with connect(url, subprotocols=["sip"], ssl=ca) as ws:  # type: ignore[list-item]
        yield DigestWic(ws, user)


async def test_a_wic_registers_with_sip_digest_through_the_core(system: CoreSystem) -> None:
    async with digest_wic(system, USER1) as wic:
        first = await wic.exchange(wic.register_message(None))
        assert first.status == 401  # the eP-CSCF's: Bearer, or Digest for the username
        second = await wic.exchange(wic.register_message(wic.answer(first)))
        assert second.status == 401  # the S-CSCF's own nonce
        assert parse_challenge(second.headers.get("WWW-Authenticate") or "").get("stale") == "true"
        ok = await wic.exchange(wic.register_message(wic.answer(second)))
        assert ok.status == 200, f"{ok.status} {ok.reason}"
        assert [r.sip_uri.user for r in ok.service_routes] == ["orig"]
        assert str(ok.p_associated_uri[0].uri) == USER1.impu
        assert system.wait_state(USER1, "registered") == "registered"
        challenge = await wic.exchange(wic.register_message(None, expires=0))
        gone = await wic.exchange(wic.register_message(wic.answer(challenge), expires=0))
        if gone.status == 401:  # a fresh nonce for the deregistration
            gone = await wic.exchange(wic.register_message(wic.answer(gone), expires=0))
        assert gone.status == 200
    assert system.wait_state(USER1, "not_registered") != "registered"


async def test_a_wrong_password_registers_nothing(system: CoreSystem) -> None:
    before = system.state(USER2)
    assert before != "registered"
    async with digest_wic(system, USER2) as wic:
        first = await wic.exchange(wic.register_message(None))
        second = await wic.exchange(wic.register_message(wic.answer(first)))
        assert second.status == 401
        refused = await wic.exchange(wic.register_message(wic.answer(second, "wrong-password")))
        assert refused.status in (401, 403)
    assert system.state(USER2) == before
