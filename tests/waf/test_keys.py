"""Signing keys: ES256 with RFC 7638 kids, kept on disk privately, rotated; a retired key
stays in the JWKS exactly as long as tokens it signed can be alive."""

from __future__ import annotations

import base64
import json

from joserfc.jwk import ECKey

from tests.waf.conftest import WafFactory, WafSite
from webims.waf.keys import KEY_LEEWAY

DAY = 86400.0


def _kid(token: str) -> str:
    head = token.split(".", maxsplit=1)[0]
    kid: str = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]
    return kid


async def test_keys_have_thumbprint_kids_and_private_files(site: WafSite) -> None:
    jwks = (await site.http.get("/jwks.json")).json()["keys"]
    assert len(jwks) == 1
    key = ECKey.import_key(jwks[0])
    assert jwks[0]["kid"] == key.thumbprint()
    assert jwks[0]["crv"] == "P-256" and jwks[0]["alg"] == "ES256"
    assert "d" not in jwks[0]
    directory = site.data_dir / "waf"
    assert directory.stat().st_mode & 0o777 == 0o700
    stored = directory / "signing-keys.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert "d" in json.loads(stored.read_text())["keys"][0]["jwk"]


async def test_rotation_keeps_old_key_until_its_tokens_expire(
    waf_site_factory: WafFactory,
) -> None:
    site = await waf_site_factory(key_rotation_days=1.0, access_token_ttl=600)
    old = await site.tokens()
    old_kid = _kid(old["access_token"])

    site.clock.advance(DAY)  # the signing key is due
    new = await site.tokens()
    new_kid = _kid(new["access_token"])
    assert new_kid != old_kid
    published = [k.kid for k in (await site.jwks()).keys]
    assert set(published) == {old_kid, new_kid}
    # A token signed just before the rotation verifies through the JWKS after it.
    assert (await site.verify_locally(old["access_token"]))["jti"]
    assert (await site.verify_locally(new["access_token"]))["jti"]
    assert await site.active(new["access_token"])

    # The last token the old key could have signed expires at rotation + ttl.
    site.clock.advance(600 + KEY_LEEWAY - 1)
    assert old_kid in [k.kid for k in (await site.jwks()).keys]
    site.clock.advance(1)
    published = [k.kid for k in (await site.jwks()).keys]
    assert published == [new_kid]
    assert not await site.active(old["access_token"])
    stored = json.loads((site.data_dir / "waf" / "signing-keys.json").read_text())
    assert [k["jwk"]["kid"] for k in stored["keys"]] == [new_kid]


async def test_keys_survive_a_restart(waf_site_factory: WafFactory) -> None:
    first = await waf_site_factory()
    token = (await first.tokens())["access_token"]
    second = await waf_site_factory(data_dir=first.data_dir)
    assert [k.kid for k in (await second.jwks()).keys] == [_kid(token)]
    assert second.waf.resource_server_secrets == first.waf.resource_server_secrets
