"""Access tokens: RFC 9068 JWTs signed ES256, made and checked here.

A token's header is ``{"alg": "ES256", "kid": <thumbprint>, "typ": "at+jwt"}``; its claims::

    iss                   the WAF's issuer URL (equal to the RFC 8414 metadata ``issuer``)
    aud                   the IMS domain(s) the eP-CSCF serves: a string, or a list of several
    sub                   the web user
    client_id             the OAuth client ("wic")
    impi, impu            the IMS private identity and the list of public identities
    wwsf                  the WWSF identity
    authorization_entity  the identity the eP-CSCF names as authorisation entity
    scope, iat, exp, jti  space-separated scopes; issue and expiry times; a unique id

Why not Authlib's ``rfc9068.JWTBearerTokenGenerator``: it reads ``time.time()`` itself
(the WAF takes its clock as an argument, so expiry and key rotation are tested without
waiting) and puts no ``kid`` in the header unless handed a key set to pick from.  The
generator below is Authlib's ``BearerTokenGenerator`` with our access-token maker: it
builds the same RFC 9068 claims plus the IMS ones.

``TokenVerifier`` is what introspection and revocation use: ES256 only (``alg: none``,
HS256 and every other algorithm are refused before any key is looked at), the key chosen
by ``kid`` among the published ones, ``typ`` ``at+jwt``, our issuer, not expired.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6750 import BearerTokenGenerator
from cryptography.exceptions import InvalidSignature
from joserfc import jws

from webims.jws import b64url_decode, verify_es256
from webims.waf.identity import ImsIdentity
from webims.waf.keys import KeyRing

__all__ = ["AccessTokenGenerator", "Grantee", "TokenClaims", "TokenVerifier", "unverified_claims"]

TokenClaims = dict[str, Any]

_ALGORITHMS = ["ES256"]


@dataclass(frozen=True, slots=True)
class Grantee:
    """The resource owner of a grant: the web user and the IMS identities it maps to."""

    web_user: str
    identity: ImsIdentity

    def get_user_id(self) -> str:
        return self.web_user


@dataclass(frozen=True, slots=True)
class TokenProfile:
    """What every token of this WAF says besides the user's own claims."""

    issuer: str
    audience: Sequence[str]
    wwsf: str
    authorization_entity: str
    ttl: int


class AccessTokenGenerator(BearerTokenGenerator):  # type: ignore[misc]
    """Authlib's token generator with RFC 9068 JWT access tokens and the IMS identities.

    The token response carries, besides ``access_token``, ``token_type``, ``expires_in``,
    ``refresh_token`` and ``scope``, the IMS identities of Annex A.3.2 step 1 (the WIC
    receives the token *and* the identities): ``impi`` and ``impu`` (a list).
    """

    def __init__(self, profile: TokenProfile, keys: KeyRing, clock: Callable[[], float]) -> None:
        super().__init__(
            self.make_access_token,
            refresh_token_generator=self.make_refresh_token,
            expires_generator=profile.ttl,
        )
        self.profile = profile
        self._keys = keys
        self._clock = clock
        aud = list(profile.audience)
        self._aud: str | list[str] = aud[0] if len(aud) == 1 else aud

    def make_access_token(self, client: Any, grant_type: str, user: Grantee, scope: str) -> str:
        now = int(self._clock())
        claims = {
            "iss": self.profile.issuer,
            "aud": self._aud,
            "sub": user.web_user,
            "client_id": client.get_client_id(),
            "impi": user.identity.impi,
            "impu": list(user.identity.impus),
            "wwsf": self.profile.wwsf,
            "authorization_entity": self.profile.authorization_entity,
            "scope": scope,
            "iat": now,
            "exp": now + self.profile.ttl,
            "jti": secrets.token_urlsafe(16),
        }
        signing = self._keys.signing_key()
        header = {"alg": "ES256", "kid": signing.kid, "typ": "at+jwt"}
        payload = json.dumps(claims, separators=(",", ":"))
        return jws.serialize_compact(header, payload, signing.key, algorithms=_ALGORITHMS)

    @staticmethod
    def make_refresh_token(client: Any, grant_type: str, user: Grantee, scope: str) -> str:
        return secrets.token_urlsafe(32)

    def generate(  # noqa: PLR0917 (Authlib's signature, called positionally)
        self,
        grant_type: str,
        client: Any,
        user: Grantee | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        if user is None:  # every grant here has a resource owner
            raise ValueError("a token needs a web user")
        token: dict[str, Any] = super().generate(
            grant_type, client, user, scope, expires_in, include_refresh_token
        )
        token["impi"] = user.identity.impi
        token["impu"] = list(user.identity.impus)
        return token


class TokenVerifier:
    """Checks a presented access token; ``claims()`` gives them when it is one of ours and
    unexpired, None otherwise.  Revocation is the store's to say, not this class's.

    The JWS is checked here on ``cryptography``'s ECDSA directly, with the public keys
    parsed once per change of the key set: joserfc's general path costs about 60 µs more
    per token than the 85 µs signature check itself, and introspection is a hot path.
    The order of checks matters: the header is read first, so a token whose ``alg`` is
    not ES256 (``none``, HS256...) or whose ``kid`` is not published is refused before
    any cryptography runs.
    """

    def __init__(self, issuer: str, keys: KeyRing, clock: Callable[[], float]) -> None:
        self._issuer = issuer
        self._keys = keys
        self._clock = clock

    def claims(self, token: str) -> TokenClaims | None:
        try:
            return self._claims(token)
        except (ValueError, TypeError, KeyError, InvalidSignature):
            return None

    def _claims(self, token: str) -> TokenClaims | None:
        head, payload, signature = token.split(".")
        header = json.loads(b64url_decode(head))
        if not isinstance(header, dict):
            return None
        if header.get("alg") != "ES256" or header.get("typ") != "at+jwt":
            return None
        kid = header.get("kid")
        key = self._keys.verifying_key(kid) if isinstance(kid, str) else None
        if key is None:
            return None
        verify_es256(key, head, payload, signature)
        claims = json.loads(b64url_decode(payload))
        if not isinstance(claims, dict) or claims.get("iss") != self._issuer:
            return None
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= self._clock():
            return None
        if not isinstance(claims.get("jti"), str):
            return None
        return claims


def unverified_claims(token: str) -> TokenClaims:
    """The claims of a token this WAF has just made, read without checking the signature:
    for bookkeeping right after issuance, never for a token someone presented."""
    claims: TokenClaims = json.loads(b64url_decode(token.split(".")[1]))
    return claims
