"""Token validation against the whole web element over HTTPS (the WWSF with its WAF, the
dev CA): discovery, JWKS and introspection through TLS, the CA given as a file or a
context, and a WAF whose certificate is not trusted is unavailable, not a source of keys."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tests.wwsf.conftest import running_web
from tests.wwsf.test_login import seed_user1
from tests.wwsf.test_with_waf import token_for
from webims.pcscf.token import TokenUnavailable, TokenValidator

LOGIN = {"username": "user1", "password": "user1-secret"}


async def test_validation_over_https_with_the_dev_ca(tmp_path: Path) -> None:
    seed_user1(tmp_path)
    async with running_web(tmp_path, with_waf=True) as web, web.client() as c:
        assert web.url.startswith("https://")
        token = (await token_for(web, c, LOGIN))["access_token"]
        waf = web.wwsf.waf
        assert waf is not None
        secret = waf.resource_server_secrets["pcscf"]  # type: ignore[attr-defined]
        context = ssl.create_default_context(cafile=str(web.ca))
        validators = [
            TokenValidator(web.url, "home1.net", verify=str(web.ca)),
            TokenValidator(
                web.url, "home1.net", verify=context, mode="introspect", client_secret=secret
            ),
        ]
        untrusting = TokenValidator(web.url, "home1.net")  # the system CAs only
        try:
            for validator in validators:
                info = await validator.validate(token)
                assert info.impi == "user1_private@home1.net"
                assert info.impus == ("sip:user1_public1@home1.net",)
                assert info.issuer == web.url
            with pytest.raises(TokenUnavailable) as caught:
                await untrusting.validate(token)
            assert caught.value.status == 503
            assert untrusting.jwks_fetches == 1
        finally:
            for validator in [*validators, untrusting]:
                await validator.aclose()
