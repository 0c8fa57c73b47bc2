"""The eP-CSCF's token validation against a real WAF (SPEC.md §1.4 A.3 and B, §8 items
15-17 and 19): real tokens from the real code + PKCE flow, the JWKS and introspection over
HTTP; every bad kind of token gets its 401 or 403."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey

from tests.waf.conftest import USER1, WafFactory, WafSite, pkce_pair
from webims.pcscf.token import (
    REGISTER_SCOPE,
    InsufficientScope,
    InvalidToken,
    TokenError,
    TokenInfo,
    TokenUnavailable,
    TokenValidator,
    bearer_from_authorization,
    www_authenticate,
)

DAY = 86400.0

MakeValidator = Callable[..., TokenValidator]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    return _segment(head), _segment(body)


def _segment(segment: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def _resign(token: str, key: ECKey, **header_changes: Any) -> str:
    """The token's header and claims signed ES256 by another key."""
    header, claims = _parts(token)
    header.update({k: v for k, v in header_changes.items() if v is not None})
    for name in [k for k, v in header_changes.items() if v is None]:
        del header[name]
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    private = key.private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    r, s = decode_dss_signature(private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@pytest.fixture
async def validators() -> AsyncIterator[MakeValidator]:
    made: list[TokenValidator] = []

    def make(site: WafSite, **options: Any) -> TokenValidator:
        options.setdefault("clock", site.clock)
        validator = TokenValidator(options.pop("issuer", site.base), "home1.net", **options)
        made.append(validator)
        return validator

    yield make
    for validator in made:
        await validator.aclose()


async def _token_with_scope(site: WafSite, scope: str) -> str:
    await site.login("user1")
    verifier, challenge = pkce_pair()
    response = await site.exchange(await site.code(challenge, scope=scope), verifier)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == scope
    token: str = response.json()["access_token"]
    return token


async def _refused(validator: TokenValidator, token: str) -> TokenError:
    with pytest.raises(TokenError) as caught:
        await validator.validate(token)
    return caught.value


async def _invalid(validator: TokenValidator, token: str) -> InvalidToken:
    error = await _refused(validator, token)
    assert isinstance(error, InvalidToken), error
    assert error.status == 401 and error.error == "invalid_token"
    return error


# -- valid tokens ---------------------------------------------------------------------------


async def test_a_valid_token_gives_the_ims_identities(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    validator = validators(site)
    info = await validator.validate(body["access_token"])
    claims = await site.verify_locally(body["access_token"])
    assert info == TokenInfo(
        web_user="user1",
        impi=USER1.impi,
        impus=USER1.impus,
        wwsf="wwsf.home1.net",
        authorization_entity="webrtc_authserver1@thirdparty.net",
        issuer=site.base,
        scopes=frozenset({"ims:register", "ims:call"}),
        expires_at=float(claims["exp"]),
        jti=claims["jti"],
    )
    assert validator.jwks_fetches == 1  # discovered through the metadata, fetched once
    for _ in range(5):
        assert await validator.validate(body["access_token"]) == info
    assert validator.jwks_fetches == 1


async def test_tokens_arriving_during_the_first_jwks_fetch_wait_for_it(
    site: WafSite, validators: MakeValidator
) -> None:
    """A fresh eP-CSCF receiving many REGISTERs at once fetches the JWKS once,
    and every token checked meanwhile is checked against what it brings
    (none is refused as signed by an unknown key)."""
    body = await site.tokens()
    validator = validators(site)
    infos = await asyncio.gather(*(validator.validate(body["access_token"]) for _ in range(8)))
    assert {info.impi for info in infos} == {USER1.impi}
    assert validator.jwks_fetches == 1


async def test_introspection_mode_accepts_a_live_token(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    validator = validators(site, mode="introspect", client_secret=site.pcscf_auth[1])
    info = await validator.validate(body["access_token"])
    assert info.impi == USER1.impi and info.impus == USER1.impus


async def test_an_audience_among_several_is_enough(
    waf_site_factory: WafFactory, validators: MakeValidator
) -> None:
    site = await waf_site_factory(audience=("visited.net", "home1.net"))
    body = await site.tokens()
    assert (await validators(site).validate(body["access_token"])).impi == USER1.impi


# -- bad tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "!!!.e30.AAAA",
        _b64(b"[1]") + ".e30.AAAA",
        _b64(b"{not json") + ".e30.AAAA",
        "x" * 9000,
    ],
)
async def test_malformed_tokens_are_invalid(
    site: WafSite, validators: MakeValidator, token: str
) -> None:
    await _invalid(validators(site), token)


async def test_a_token_re_signed_with_another_key_is_invalid(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    validator = validators(site)
    intruder = ECKey.generate_key("P-256", private=True)
    error = await _invalid(validator, _resign(body["access_token"], intruder))
    assert error.reason == "bad token signature"
    # The WAF's signature over other claims (another IMPU swapped in) is no better.
    _, claims = _parts(body["access_token"])
    claims["impu"] = ["sip:someone_else@home1.net"]
    head, _, signature = body["access_token"].split(".")
    await _invalid(validator, f"{head}.{_b64(json.dumps(claims).encode())}.{signature}")
    # A truncated signature too.
    await _invalid(validator, body["access_token"][:-4])
    assert (await validator.validate(body["access_token"])).impi == USER1.impi


async def test_an_expired_token_is_invalid_after_the_skew(
    waf_site_factory: WafFactory, validators: MakeValidator
) -> None:
    site = await waf_site_factory(access_token_ttl=60)
    body = await site.tokens()
    validator = validators(site, clock_skew=30)
    site.clock.advance(60 + 29)  # expired, but within the clock skew
    assert (await validator.validate(body["access_token"])).impi == USER1.impi
    site.clock.advance(1)
    error = await _invalid(validator, body["access_token"])
    assert error.reason == "token expired"


async def test_a_token_issued_in_the_future_is_invalid(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    behind = validators(site, clock=lambda: site.clock.now - 31, clock_skew=30)
    error = await _invalid(behind, body["access_token"])
    assert error.reason == "token issued in the future"
    within = validators(site, clock=lambda: site.clock.now - 29, clock_skew=30)
    assert (await within.validate(body["access_token"])).impi == USER1.impi


async def test_a_token_for_another_audience_is_invalid(
    waf_site_factory: WafFactory, validators: MakeValidator
) -> None:
    site = await waf_site_factory(audience=("other.net",))
    body = await site.tokens()
    error = await _invalid(validators(site), body["access_token"])
    assert error.reason == "token for another audience"


async def test_a_token_of_another_issuer_is_invalid(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    # Same keys (the JWKS named directly), but this eP-CSCF trusts another issuer.
    validator = validators(
        site, issuer="https://waf.elsewhere.net", jwks_uri=site.base + "/jwks.json"
    )
    error = await _invalid(validator, body["access_token"])
    assert error.reason == "token from another issuer"


async def test_an_issuer_without_metadata_is_unavailable(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    # RFC 8414 discovery for an issuer with a path: no such metadata at this WAF.
    validator = validators(site, issuer=site.base + "/tenant")
    error = await _refused(validator, body["access_token"])
    assert isinstance(error, TokenUnavailable) and error.status == 503


async def test_a_revoked_token_is_invalid_with_introspection(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    other = await site.tokens()
    local = validators(site)
    introspecting = validators(site, mode="introspect", client_secret=site.pcscf_auth[1])
    assert await introspecting.validate(body["access_token"])
    revoked = await site.http.post(
        "/revoke", data={"token": body["access_token"], "client_id": "wic"}
    )
    assert revoked.status_code == 200
    error = await _invalid(introspecting, body["access_token"])
    assert error.reason == "token not active (revoked or expired)"
    assert (await introspecting.validate(other["access_token"])).impi == USER1.impi
    # The local check cannot know: that is what the introspection mode is for.
    assert (await local.validate(body["access_token"])).impi == USER1.impi


async def test_introspection_with_a_wrong_secret_is_unavailable(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    validator = validators(site, mode="introspect", client_secret="not-the-secret-at-all")
    error = await _refused(validator, body["access_token"])
    assert isinstance(error, TokenUnavailable)
    assert error.www_authenticate("home1.net", site.base) is None


async def test_a_token_without_the_register_scope_is_insufficient(
    site: WafSite, validators: MakeValidator
) -> None:
    token = await _token_with_scope(site, "ims:call")
    error = await _refused(validators(site), token)
    assert isinstance(error, InsufficientScope)
    assert (error.status, error.error, error.scope) == (403, "insufficient_scope", "ims:register")
    assert error.www_authenticate("home1.net", None) == (
        'Bearer realm="home1.net", error="insufficient_scope", scope="ims:register"'
    )
    register_only = await _token_with_scope(site, REGISTER_SCOPE)
    assert (await validators(site).validate(register_only)).scopes == {"ims:register"}


async def test_an_expired_token_without_the_scope_is_invalid_not_insufficient(
    waf_site_factory: WafFactory, validators: MakeValidator
) -> None:
    site = await waf_site_factory(access_token_ttl=60)
    token = await _token_with_scope(site, "ims:call")
    site.clock.advance(600)
    await _invalid(validators(site), token)


async def test_alg_none_and_hs256_are_refused_before_any_key_lookup(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    header, claims = _parts(body["access_token"])
    payload = _b64(json.dumps(claims).encode())
    validator = validators(site)

    none_head = _b64(json.dumps({**header, "alg": "none"}).encode())
    for token in (f"{none_head}.{payload}.", f"{none_head}.{payload}"):
        error = await _invalid(validator, token)
    # HS256 keyed with the WAF's public key: the classic algorithm confusion.
    jwk = (await site.jwks()).keys[0]
    assert isinstance(jwk, ECKey)
    public_pem = jwk.as_pem(private=False)
    hs_head = _b64(json.dumps({**header, "alg": "HS256"}).encode())
    mac = hmac.new(public_pem, f"{hs_head}.{payload}".encode(), hashlib.sha256).digest()
    error = await _invalid(validator, f"{hs_head}.{payload}.{_b64(mac)}")
    assert error.reason == "token algorithm not allowed"
    for alg in ("RS256", "ES384", "es256", "EdDSA"):
        other_head = _b64(json.dumps({**header, "alg": alg}).encode())
        await _invalid(validator, f"{other_head}.{payload}.{body['access_token'].split('.')[2]}")
    assert validator.jwks_fetches == 0  # not one key was looked up
    assert (await validator.validate(body["access_token"])).impi == USER1.impi


async def test_a_token_that_is_not_an_access_token_is_invalid(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    intruder = ECKey.generate_key("P-256", private=True)
    # Made with the intruder's key, but refused on the header alone: nothing is fetched.
    validator = validators(site)
    for changes in ({"typ": "JWT"}, {"typ": None}, {"crit": ["exp"]}, {"kid": 7}):
        await _invalid(validator, _resign(body["access_token"], intruder, **changes))
    assert validator.jwks_fetches == 0


# -- keys ---------------------------------------------------------------------------------------


async def test_key_rotation_refetches_the_jwks(
    waf_site_factory: WafFactory, validators: MakeValidator
) -> None:
    site = await waf_site_factory(key_rotation_days=1.0, access_token_ttl=600)
    old = await site.tokens()
    validator = validators(site)
    await validator.validate(old["access_token"])
    assert validator.jwks_fetches == 1

    site.clock.advance(DAY)  # the WAF rotates its signing key
    new = await site.tokens()
    assert _parts(new["access_token"])[0]["kid"] != _parts(old["access_token"])[0]["kid"]
    assert (await validator.validate(new["access_token"])).impi == USER1.impi
    assert validator.jwks_fetches == 2
    assert (await validator.validate(new["access_token"])).impi == USER1.impi
    assert validator.jwks_fetches == 2


async def test_unknown_kids_refetch_at_most_once_per_interval(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    validator = validators(site, jwks_refetch_interval=10)
    await validator.validate(body["access_token"])
    assert validator.jwks_fetches == 1
    intruder = ECKey.generate_key("P-256", private=True)
    made_up = _resign(body["access_token"], intruder, kid="no-such-key")

    site.clock.advance(10)
    error = await _invalid(validator, made_up)
    assert error.reason == "token signed by an unknown key"
    assert validator.jwks_fetches == 2
    for _ in range(20):  # a flood of unknown kids within the interval: no fetch
        site.clock.advance(0.4)
        await _invalid(validator, made_up)
    assert validator.jwks_fetches == 2
    site.clock.advance(2)
    await _invalid(validator, made_up)
    assert validator.jwks_fetches == 3
    # Concurrent unknown kids past the interval share one fetch.
    site.clock.advance(10)
    results = await asyncio.gather(
        *(validator.validate(made_up) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, InvalidToken) for r in results)
    assert validator.jwks_fetches == 4
    assert (await validator.validate(body["access_token"])).impi == USER1.impi


async def test_an_unreachable_waf_is_unavailable_not_invalid(
    validators: MakeValidator, site: WafSite
) -> None:
    body = await site.tokens()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    validator = validators(site, jwks_uri=f"http://127.0.0.1:{port}/jwks.json")
    error = await _refused(validator, body["access_token"])
    assert isinstance(error, TokenUnavailable) and error.status == 503
    # Within the refetch interval nothing is fetched, and the token is still not called
    # invalid (a WIC told invalid_token would throw a good token away).
    site.clock.advance(1)
    error = await _refused(validator, body["access_token"])
    assert isinstance(error, TokenUnavailable)
    assert validator.jwks_fetches == 1


async def test_the_jwks_can_be_loaded_without_fetching(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    validator = validators(site, jwks_uri="http://127.0.0.1:9/unused")
    assert validator.load_jwks((await site.http.get("/jwks.json")).json()) == 1
    assert (await validator.validate(body["access_token"])).impi == USER1.impi
    assert validator.jwks_fetches == 0
    assert (
        validator.load_jwks({"keys": [{"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}]}) == 0
    )


# -- the Authorization header -------------------------------------------------------------------

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln-_"


@pytest.mark.parametrize(
    "value",
    [
        f"Bearer {JWT}",
        f"bearer  {JWT} ",
        f"BEARER\t{JWT}",
        f'Bearer access_token="{JWT}"',
        f'Bearer access_token = "{JWT}"',
        f"Bearer access_token={JWT}",
        f'Bearer ACCESS_TOKEN="{JWT}"',
        f'Bearer access_token="{JWT[:5]}\\{JWT[5:]}"',  # a quoted-pair is its character
    ],
)
def test_both_authorization_syntaxes_give_the_token(value: str) -> None:
    assert bearer_from_authorization(value) == JWT


def test_token68_padding_is_part_of_the_token() -> None:
    assert bearer_from_authorization("Bearer abc+/==") == "abc+/=="


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Bearer",
        "Bearer ",
        f"Digest {JWT}",
        f"Basic {JWT}",
        f"Bearer{JWT}",
        f"Bearer {JWT} {JWT}",
        f"Bearer {JWT}, realm=x",
        f'Bearer access_token="{JWT}", realm="x"',
        f'Bearer access_token="{JWT}',
        'Bearer access_token=""',
        'Bearer access_token="a b"',
        'Bearer access_token="a\\"b"',
        f"Bearer token={JWT}",
        "Bearer a=b",
        f"Bearer {JWT}\r\n",
        f"Bearer {JWT};x",
    ],
)
def test_junk_authorization_values_give_no_token(value: str) -> None:
    assert bearer_from_authorization(value) is None


async def test_both_syntaxes_validate_as_the_same_token(
    site: WafSite, validators: MakeValidator
) -> None:
    body = await site.tokens()
    validator = validators(site)
    bare = bearer_from_authorization(f"Bearer {body['access_token']}")
    param = bearer_from_authorization(f'Bearer access_token="{body["access_token"]}"')
    assert bare == param == body["access_token"]
    assert bare is not None and param is not None
    assert await validator.validate(bare) == await validator.validate(param)


# -- the challenge ----------------------------------------------------------------------


def test_the_www_authenticate_challenge() -> None:
    assert www_authenticate("home1.net", "https://waf.home1.net") == (
        'Bearer realm="home1.net", authz_server="https://waf.home1.net"'
    )
    assert www_authenticate("home1.net", "https://waf.home1.net", error="invalid_token") == (
        'Bearer realm="home1.net", authz_server="https://waf.home1.net", error="invalid_token"'
    )
    assert www_authenticate(
        "home1.net", None, error="insufficient_scope", scope="ims:register ims:call"
    ) == ('Bearer realm="home1.net", error="insufficient_scope", scope="ims:register ims:call"')
    assert www_authenticate(None, None) == "Bearer"


def test_the_challenge_escapes_quoted_strings() -> None:
    assert www_authenticate('a "b" \\c', None) == 'Bearer realm="a \\"b\\" \\\\c"'
    assert www_authenticate("tab\there", None) == 'Bearer realm="tab\there"'
    for bad in ("a\r\nWWW-Authenticate: Digest", "a\nb", "a\x00", "a\x7f"):
        with pytest.raises(ValueError, match="control character"):
            www_authenticate(bad, None)


async def test_invalid_token_answer_names_the_error(
    site: WafSite, validators: MakeValidator
) -> None:
    error = await _invalid(validators(site), "a.b.c")
    assert error.www_authenticate("home1.net", site.base) == (
        f'Bearer realm="home1.net", authz_server="{site.base}", error="invalid_token"'
    )
