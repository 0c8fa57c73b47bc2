"""Refresh tokens rotate; a used one presented again revokes its whole family."""

from __future__ import annotations

from tests.waf.conftest import WafSite


async def test_refresh_rotates_the_refresh_token(site: WafSite) -> None:
    first = await site.tokens()
    response = await site.refresh(first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["impi"] == first["impi"] and second["impu"] == first["impu"]
    claims = await site.verify_locally(second["access_token"])
    assert claims["sub"] == "user1" and claims["scope"] == "ims:register ims:call"
    third = await site.refresh(second["refresh_token"])
    assert third.status_code == 200


async def test_reuse_of_a_used_refresh_token_revokes_the_family(site: WafSite) -> None:
    first = await site.tokens()
    second = (await site.refresh(first["refresh_token"])).json()
    bystander = await site.tokens()  # same user, another login: another family
    assert await site.active(first["access_token"])
    assert await site.active(second["access_token"])

    reuse = await site.refresh(first["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # Every token of the family is dead: both access tokens, and the live refresh token.
    assert not await site.active(first["access_token"])
    assert not await site.active(second["access_token"])
    after = await site.refresh(second["refresh_token"])
    assert after.json()["error"] == "invalid_grant"
    # The other family is untouched.
    assert await site.active(bystander["access_token"])
    assert (await site.refresh(bystander["refresh_token"])).status_code == 200


async def test_refresh_scope_can_narrow_but_not_widen(site: WafSite) -> None:
    first = await site.tokens()
    narrowed = await site.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": "wic",
            "scope": "ims:register",
        },
    )
    assert narrowed.status_code == 200
    assert narrowed.json()["scope"] == "ims:register"
    widened = await site.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": narrowed.json()["refresh_token"],
            "client_id": "wic",
            "scope": "ims:register ims:call",
        },
    )
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_scope"
    # Refused, so not used up.
    assert (await site.refresh(narrowed.json()["refresh_token"])).status_code == 200


async def test_refresh_after_the_user_lost_its_identity_is_refused(site: WafSite) -> None:
    first = await site.tokens()
    site.identities["user1"] = None
    refused = await site.refresh(first["refresh_token"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    # Nothing changed: with the identity back, the same refresh token works.
    site.identities["user1"] = site.identities["user2"]
    again = await site.refresh(first["refresh_token"])
    assert again.status_code == 200
    assert again.json()["impi"] == "user2_private@home1.net"


async def test_expired_refresh_token_is_refused(site: WafSite) -> None:
    first = await site.tokens()
    site.clock.advance(86400 + 1)
    response = await site.refresh(first["refresh_token"])
    assert response.json()["error"] == "invalid_grant"
