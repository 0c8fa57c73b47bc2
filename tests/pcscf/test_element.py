"""The eP-CSCF as ``webims run pcscf`` makes it (``make(settings)``): its listeners
(SPEC §8 items 10–12) and its token validator set from the deployment, checked against
the whole web element over HTTPS with the dev CA and RFC 7662 introspection."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.ports import free_port
from tests.waf.conftest import WafSite
from tests.wwsf.conftest import running_web
from tests.wwsf.test_login import seed_user1
from tests.wwsf.test_with_waf import token_for
from webims.config import load_settings
from webims.devca import ensure_dev_ca
from webims.pcscf.element import make, waf_issuer

from .conftest import StartPcscf
from .harness import SIP, TIMEOUT, Deployment, FakeCore, Wic


async def test_s8_10_a_websocket_without_the_sip_subprotocol_is_refused(
    pcscf: Deployment,
) -> None:
    for url, ctx in (
        (f"wss://127.0.0.1:{pcscf.wss_port}/", pcscf.ca),
        (f"ws://127.0.0.1:{pcscf.ws_port}/", None),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, ssl=ctx, open_timeout=TIMEOUT):
                pass
        assert refused.value.response.status_code == 400


async def test_s8_11_plain_ws_is_off_when_configured_so(
    site: WafSite, start_pcscf: StartPcscf
) -> None:
    pcscf = await start_pcscf(site, ws_port=0)
    assert {lst.transport for lst in pcscf.cscf.endpoint.listeners} == {"udp", "tcp", "wss"}
    assert not any("ws://" in line for line in pcscf.cscf.describe())


async def test_s8_12_the_development_ws_listener_works_and_answers_on_the_same_connection(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic(secure=False) as wic:
        answer = await wic.register(token)
        assert answer.status == 200
        assert answer.vias[0].host == wic.host
        [reg] = list(pcscf.app.bindings._by_flow.values())
        assert reg.flow.transport == "ws"


async def test_issuer_precedence() -> None:
    settings = load_settings(None, web={"public_url": "https://web.example:8443/"})
    assert waf_issuer(settings) == "https://web.example:8443"
    settings = load_settings(None, waf={"issuer": "https://waf.example"})
    assert waf_issuer(settings) == "https://waf.example"
    settings = load_settings(
        None, waf={"issuer": "https://waf.example"}, pcscf={"waf_issuer": "https://p.example/"}
    )
    assert waf_issuer(settings) == "https://p.example"


async def test_s8_20_made_from_settings_against_the_https_web_element(tmp_path: Path) -> None:
    """The validator of ``make(settings)``: issuer ``[web] public_url``, audience the
    domain, the dev CA trusted, introspection with the secret the WAF keeps on disk."""
    seed_user1(tmp_path)
    fake = FakeCore(free_port())
    await fake.start()
    async with running_web(tmp_path, with_waf=True) as web, web.client() as client:
        ports = [free_port() for _ in range(2)]
        settings = load_settings(
            None,
            data_dir=tmp_path,
            web={"public_url": web.url},
            pcscf={
                "sip_port": ports[0],
                "ws_port": 0,
                "wss_port": ports[1],
                "icscf_uri": f"sip:127.0.0.1:{fake.port};transport=tcp;lr",
                "token_check": "introspect",
            },
        )
        cscf = make(settings)
        await cscf.start()
        try:
            token = (
                await token_for(web, client, {"username": "user1", "password": "user1-secret"})
            )["access_token"]
            ca = ssl.create_default_context(cafile=str(ensure_dev_ca(tmp_path).ca_cert))
            url = f"wss://127.0.0.1:{ports[1]}/"
            async with connect(url, subprotocols=SIP, ssl=ca, open_timeout=TIMEOUT) as ws:
                wic = Wic(ws)
                answer = await wic.register(token)
                assert answer.status == 200, answer
                # A token the WAF revoked (logout) is refused at once: introspection.
                await client.post("/revoke", data={"token": token, "client_id": "wic"})
                answer = await wic.register(token)
                assert answer.status == 401
                challenge = answer.www_authenticate[0]
                assert challenge.get("authz_server") == web.url
                assert challenge.get("error") == "invalid_token"
            assert len(fake.of("REGISTER")) == 1
        finally:
            await cscf.close()
            await fake.close()


async def test_s8_13_an_unparsable_message_leaves_the_connection_usable(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        await wic.ws.send("this is not SIP\r\n\r\n")
        two = wic.register_message(None) + wic.register_message(f"Bearer {token}")
        await wic.ws.send(two)  # two SIP messages in one WebSocket message
        # Refused whole (RFC 7118 §5.1): 400, and neither REGISTER goes further.
        assert (await wic.response()).status == 400
        answer = await wic.register(token)
        assert answer.status == 200
        assert answer.cseq.seq == wic.cseq
    assert len(pcscf.core.of("REGISTER")) == 1
