"""The eP-CSCF in front of the real core, all in this process on real sockets: the HSS
(temporary SQLite store, demo subscribers), the I-CSCF and the S-CSCF as ``webims run``
makes them, tokens from the real WAF.  What the stand-in core of the other tests cannot
show: the S-CSCF accepts the eP-CSCF's REGISTER and its reg event subscription, a
message from one WIC reaches another along Service-Route, LIR and Path, and a
deregistration or a lost WebSocket ends where it should."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.ports import free_port
from tests.waf.conftest import WafSite
from webims.config import Settings
from webims.devca import ensure_dev_ca
from webims.hss.element import HssElement, HssOptions
from webims.hss.provisioning import seed_demo
from webims.icscf.element import make as make_icscf
from webims.ims.element import Cscf
from webims.pcscf.element import make as make_pcscf
from webims.pcscf.token import TokenValidator
from webims.scscf.element import make as make_scscf

from .harness import USER1_IMPU, USER2_IMPU, Deployment, FakeCore, wait_until


@pytest.fixture
async def chain(
    tmp_path: Path, site: WafSite, request: pytest.FixtureRequest
) -> AsyncIterator[Deployment]:
    options = getattr(request, "param", {})
    hss = HssElement(
        HssOptions(
            store=str(tmp_path / "hss.sqlite3"),
            identity="hss.home1.net",
            realm="home1.net",
            host="127.0.0.1",
            diameter_port=0,
            api_port=0,
            api_key=None,
            data_dir=tmp_path,
            home_networks=frozenset({"home1.net"}),
        )
    )
    await hss.start()
    await seed_demo(hss.raw_store)
    ports: list[int] = []
    while len(ports) < 4:
        if (port := free_port()) not in ports:
            ports.append(port)
    pcscf_port, wss_port, icscf_port, scscf_port = ports
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "sip": {"host": "127.0.0.1"},
            "pcscf": {
                "sip_port": pcscf_port,
                "ws_port": 0,
                "wss_port": wss_port,
                "waf_issuer": site.base,
                **options,
            },
            "icscf": {"sip_port": icscf_port, "cx": {"identity": "icscf.home1.net"}},
            "scscf": {"sip_port": scscf_port, "cx": {"identity": "scscf.home1.net"}},
            "hss": {"diameter_port": hss.diameter_port, "api_port": 0},
        }
    )
    elements: list[Cscf] = [make_scscf(settings), make_icscf(settings)]
    validator = TokenValidator(site.base, "home1.net", clock=site.clock)
    pcscf = make_pcscf(settings, validator=validator)
    elements.append(pcscf)
    for element in elements:
        await element.start()
    ca = ssl.create_default_context(cafile=str(ensure_dev_ca(settings.data_dir).ca_cert))
    try:
        yield Deployment(pcscf, FakeCore(0), ca, wss_port, 0, pcscf_port)
    finally:
        for element in reversed(elements):
            with contextlib.suppress(Exception):
                await element.close()
        await hss.close()


async def test_s8_26_s9_5_register_subscribe_message_and_deregister_through_the_real_core(
    site: WafSite, chain: Deployment
) -> None:
    app = chain.app
    async with chain.wic() as alice, chain.wic() as bob:
        answer = await alice.register((await site.tokens("user1"))["access_token"])
        assert answer.status == 200, answer
        assert [str(a.uri) for a in answer.p_associated_uri][:1] == [USER1_IMPU]
        assert "P-Charging-Vector" not in answer.headers
        [reg] = app.bindings.for_impu(USER1_IMPU)
        # §8 26: the S-CSCF accepts the eP-CSCF's subscription; its NOTIFY is answered.
        await wait_until(lambda: reg.subscription is not None and reg.subscription.active)
        answer = await bob.register((await site.tokens("user2"))["access_token"], impu=USER2_IMPU)
        assert answer.status == 200, answer
        # Alice -> Bob: Service-Route, S-CSCF, I-CSCF (LIR), S-CSCF, Bob's Path, Bob's flow.
        await alice.ws.send(alice.request_message("MESSAGE", to=USER2_IMPU))
        message = await bob.request()
        assert message.method == "MESSAGE"
        assert [str(a.uri) for a in message.p_asserted_identity] == [USER1_IMPU]
        assert "P-Charging-Vector" not in message.headers
        await bob.answer(message, 200)
        assert (await alice.response()).status == 200
        # Deregistration: the binding goes, later requests are refused.
        token = (await site.tokens("user1"))["access_token"]
        assert (await alice.register(token, expires=0)).status == 200
        assert app.bindings.for_impu(USER1_IMPU) == []
        assert (await alice.send(alice.request_message("MESSAGE", to=USER2_IMPU))).status == 403


async def test_s9_6_20_a_lost_websocket_fails_terminating_requests(
    site: WafSite, chain: Deployment
) -> None:
    async with chain.wic() as alice:
        token = (await site.tokens("user1"))["access_token"]
        assert (await alice.register(token)).status == 200
        async with chain.wic() as bob:
            token2 = (await site.tokens("user2"))["access_token"]
            assert (await bob.register(token2, impu=USER2_IMPU)).status == 200
        [bob_reg] = chain.app.bindings.for_impu(USER2_IMPU)
        await wait_until(lambda: bob_reg.dead)
        answer = await alice.send(alice.request_message("MESSAGE", to=USER2_IMPU))
        assert answer.status in (430, 480), answer


@pytest.mark.parametrize("chain", [{"deregister_on_close": True}], indirect=True)
async def test_s9_6_22_with_deregistration_on_close_the_core_forgets_the_wic(
    site: WafSite, chain: Deployment
) -> None:
    async with chain.wic() as alice:
        token = (await site.tokens("user1"))["access_token"]
        assert (await alice.register(token)).status == 200
        async with chain.wic() as bob:
            token2 = (await site.tokens("user2"))["access_token"]
            assert (await bob.register(token2, impu=USER2_IMPU)).status == 200
        await wait_until(lambda: chain.app.bindings.for_impu(USER2_IMPU) == [])
        # Not registered any more in the core: the S-CSCF (or I-CSCF) says 480.
        answer = await alice.send(alice.request_message("MESSAGE", to=USER2_IMPU))
        assert answer.status == 480, answer
