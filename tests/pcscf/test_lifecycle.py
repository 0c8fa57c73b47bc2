"""A registration's life at the eP-CSCF (SPEC §1.4 F and G, §8 item 25, §9.1 item 2,
§9.2): refresh with an expired token, deregistration (also with an expired token on the
bound connection), failures from the core, the reg event ending a binding, expiry."""

from __future__ import annotations

import asyncio

from tests.waf.conftest import WafSite
from webims.sip import Response

from .conftest import StartPcscf
from .harness import USER1_IMPU, Deployment, wait_until


async def test_s9_1_2_a_re_register_with_an_expired_token_keeps_the_binding(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        [reg] = list(pcscf.app.bindings._by_flow.values())
        site.clock.advance(600 + 31)
        answer = await wic.register(token)
        assert answer.status == 401
        assert answer.www_authenticate[0].get("error") == "invalid_token"
        assert len(pcscf.core.of("REGISTER")) == 1
        assert pcscf.app.bindings.for_flow(reg.flow) is reg
        assert (await wic.send(wic.request_message("MESSAGE"))).status == 200


async def test_s9_2_5_deregistration_with_an_expired_token_on_the_bound_connection(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic, pcscf.wic() as other:
        assert (await wic.register(token)).status == 200
        site.clock.advance(600 + 31)
        # Not on another connection...
        answer = await other.register(token, expires=0)
        assert answer.status == 401
        assert len(pcscf.core.of("REGISTER")) == 1
        # ...but on the one holding the registration (SPEC §1.4 F, project choice).
        answer = await wic.register(token, expires=0)
        assert answer.status == 200
        [_, dereg] = pcscf.core.of("REGISTER")
        [creds] = dereg.authorization
        assert creds.username == "user1_private@home1.net"  # type: ignore[attr-defined]
        assert creds.integrity_protected == "auth-done"  # type: ignore[attr-defined]
        assert len(pcscf.app.bindings) == 0


async def test_s8_25_a_failure_from_the_core_is_forwarded_and_binds_nothing(
    site: WafSite, start_pcscf: StartPcscf
) -> None:
    pcscf = await start_pcscf(site, core={"register_status": 403})
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        answer: Response = await wic.register(token)
        assert answer.status == 403
        assert "P-Charging-Vector" not in answer.headers
        assert len(pcscf.core.of("REGISTER")) == 1
        assert len(pcscf.app.bindings) == 0
        assert pcscf.core.of("SUBSCRIBE") == []
        assert (await wic.send(wic.request_message("INVITE"))).status == 403


async def test_s9_4_12_reg_event_deactivated_removes_the_binding(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        [reg] = list(pcscf.app.bindings._by_flow.values())
        await wait_until(lambda: reg.subscription is not None and reg.subscription.active)
        [subscribe] = pcscf.core.of("SUBSCRIBE")
        sub = reg.subscription
        assert sub is not None and sub.to_tag
        # Another contact of the IMPU ends: this WIC's binding stays.
        pcscf.core.send(
            pcscf.core.notify_for(subscribe, sub.to_tag, "active", "terminated", "expired")
        )
        await wait_until(lambda: len(pcscf.core.responses) == 2)
        assert pcscf.core.responses[-1].status == 200 and len(pcscf.app.bindings) == 1
        # This WIC's contact is deactivated by the network: the binding goes.
        pcscf.core.send(
            pcscf.core.notify_for(
                subscribe,
                sub.to_tag,
                "terminated",
                "terminated",
                "deactivated",
                contact=wic.contact_uri,
                terminated=True,
            )
        )
        await wait_until(lambda: len(pcscf.core.responses) == 3)
        assert pcscf.core.responses[-1].status == 200
        assert len(pcscf.app.bindings) == 0
        assert pcscf.app.bindings.for_impu(USER1_IMPU.lower()) == []
        assert (await wic.send(wic.request_message("INVITE"))).status == 403
        # The subscription is gone too: a later NOTIFY on it is 481.
        pcscf.core.send(pcscf.core.notify_for(subscribe, sub.to_tag, "active", "active", "x"))
        await wait_until(lambda: len(pcscf.core.responses) == 4)
        assert pcscf.core.responses[-1].status == 481


async def test_s9_3_10_a_registration_expires_at_its_own_timer(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token, expires=1)).status == 200
        assert len(pcscf.app.bindings) == 1
        await wait_until(lambda: len(pcscf.app.bindings) == 0, timeout=4)
        assert (await wic.send(wic.request_message("MESSAGE"))).status == 403


async def test_the_reg_event_subscription_is_refreshed_in_its_dialog(
    site: WafSite, start_pcscf: StartPcscf
) -> None:
    pcscf = await start_pcscf(site, core={"sub_expires": 2})
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        await wait_until(lambda: len(pcscf.core.of("SUBSCRIBE")) == 2, timeout=4)
        first, again = pcscf.core.of("SUBSCRIBE")
        assert again.call_id == first.call_id and again.from_tag == first.from_tag
        assert again.to_tag and again.cseq.seq == 2
        # In the dialog: to the notifier's Contact, no Route (the 200 had no Record-Route).
        assert again.uri_text == f"sip:127.0.0.1:{pcscf.core.port};transport=tcp"
        assert "Route" not in again.headers
        # Deregistered: no more refreshes.
        assert (await wic.register(token, expires=0)).status == 200
        count = len(pcscf.core.of("SUBSCRIBE"))
    await asyncio.sleep(1.5)
    assert len(pcscf.core.of("SUBSCRIBE")) == count


async def test_s8_26_notifies_that_are_not_for_our_subscription_are_refused(
    site: WafSite, pcscf: Deployment
) -> None:
    token = (await site.tokens())["access_token"]
    async with pcscf.wic() as wic:
        assert (await wic.register(token)).status == 200
        [reg] = list(pcscf.app.bindings._by_flow.values())
        await wait_until(lambda: reg.subscription is not None and reg.subscription.active)
        [subscribe] = pcscf.core.of("SUBSCRIBE")
        sub = reg.subscription
        assert sub is not None and sub.to_tag
        good = pcscf.core.notify_for(subscribe, sub.to_tag, "terminated", "terminated", "x")
        cases = {
            good.replace(f"tag={sub.from_tag}".encode(), b"tag=not-ours"): 481,
            good.replace(b"Event: reg", b"Event: presence"): 489,
            good.replace(b"application/reginfo+xml", b"text/plain"): 415,
            good.replace(b"<reginfo", b"<nonsense").replace(b"</reginfo>", b"</nonsense>"): 400,
        }
        for n, (notify, status) in enumerate(cases.items(), start=2):
            pcscf.core.send(notify)
            await wait_until(lambda n=n: len(pcscf.core.responses) == n)  # type: ignore[misc]
            assert pcscf.core.responses[-1].status == status, notify
        # None of them touched the binding.
        assert pcscf.app.bindings.for_flow(reg.flow) is reg and reg.impus


async def test_s8_26_one_subscription_per_impu_for_all_its_connections(
    site: WafSite, pcscf: Deployment
) -> None:
    async with pcscf.wic() as first, pcscf.wic() as second:
        assert (await first.register((await site.tokens())["access_token"])).status == 200
        assert (await second.register((await site.tokens())["access_token"])).status == 200
        await wait_until(lambda: len(pcscf.core.responses) == 1)  # the first NOTIFY's 200
        [subscribe] = pcscf.core.of("SUBSCRIBE")
        regs = pcscf.app.bindings.for_impu(USER1_IMPU)
        assert len(regs) == 2 and regs[0].subscription is regs[1].subscription
        sub = regs[0].subscription
        assert sub is not None and sub.to_tag
        # The network ends the first connection's contact: only its binding goes.
        notify = pcscf.core.notify_for(
            subscribe,
            sub.to_tag,
            "active",
            "terminated",
            "deactivated",
            contact=first.contact_uri,
        )
        pcscf.core.send(notify)
        await wait_until(lambda: len(pcscf.core.responses) == 2)
        assert pcscf.core.responses[-1].status == 200
        assert [r.flow_token for r in pcscf.app.bindings.for_impu(USER1_IMPU)] == [
            regs[1].flow_token
        ]
        assert (await first.send(first.request_message("MESSAGE"))).status == 403
        assert (await second.send(second.request_message("MESSAGE"))).status == 200
