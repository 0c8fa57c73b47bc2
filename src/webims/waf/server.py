"""The OAuth 2.0 authorisation server, on Authlib's framework-agnostic core.

What is allowed, and nothing else:

- ``response_type=code`` with PKCE ``S256`` (RFC 7636), required: a request without a
  ``code_challenge``, or with ``plain``, is refused (Authlib accepts ``plain`` by default,
  and lets a request without a challenge through at /authorize; both are closed here);
- ``grant_type=authorization_code`` and ``grant_type=refresh_token`` for the public client
  (the WIC, no secret); each refresh hands out a new refresh token and uses up the old
  one, and reuse of a used one revokes its whole family (OAuth 2.0 Security BCP, RFC 9700
  §4.14.2) with the access tokens issued from it;
- RFC 7009 revocation by the client of its own tokens, RFC 7662 introspection by the
  resource servers (HTTP Basic), nobody else.

Authlib's request and grant objects are synchronous; everything they need that is async
(the WWSF's session lookup and identity mapping) is awaited by the HTTP layer first and
handed in on the request (``WafRequest.identities``).  Error flow: Authlib's ``OAuth2Error``
subclasses, answered as RFC 6749 §5.2 JSON or, at /authorize once the redirect URI is
known to be the client's, as a redirect carrying ``error``/``state`` (§4.1.2.1).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Payload,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from webims.waf.identity import ImsIdentity
from webims.waf.store import AuthorizationCode, RefreshToken, WafStore
from webims.waf.tokens import (
    AccessTokenGenerator,
    Grantee,
    TokenClaims,
    TokenVerifier,
    unverified_claims,
)

__all__ = [
    "SCOPES",
    "OAuthServer",
    "PublicClient",
    "ResourceServer",
    "WafRequest",
]

log = logging.getLogger(__name__)

#: The scopes a WIC may ask for; asking for none gets them all.
SCOPES = ("ims:register", "ims:call")


# -- clients ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicClient:
    """A public client (the WIC): no secret, PKCE instead; token and revocation only."""

    client_id: str
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...] = SCOPES

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(self.scopes)
        asked = scope.split()
        return " ".join(s for s in self.scopes if s in asked)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none" and endpoint in ("token", "revocation")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass(frozen=True, slots=True)
class ResourceServer:
    """A resource server (the eP-CSCF): HTTP Basic with its secret, introspection only."""

    client_id: str
    secret: str

    def get_client_id(self) -> str:
        return self.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret.encode(), self.secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic" and endpoint == "introspection"

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def get_default_redirect_uri(self) -> None:
        return None

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return False


Client = PublicClient | ResourceServer


# -- the request Authlib sees -------------------------------------------------------


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, params: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: dict[str, list[str]] = {}
        for key, value in params:
            self._data.setdefault(key, value)
            self._datalist.setdefault(key, []).append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class WafRequest(OAuth2Request):  # type: ignore[misc]
    """An HTTP request already read: query parameters for GET, the form body for POST.

    ``identities`` holds, per web user, the IMS identities the HTTP layer resolved before
    Authlib's synchronous code runs (None: the user has none).
    """

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        params: list[tuple[str, str]],
        identities: dict[str, ImsIdentity | None] | None = None,
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = _Payload(params)
        self.identities = identities or {}

    @property
    def args(self) -> dict[str, str]:
        result: dict[str, str] = self.payload.data
        return result

    @property
    def form(self) -> dict[str, str]:
        result: dict[str, str] = self.payload.data
        return result

    def grantee(self, web_user: str) -> Grantee:
        identity = self.identities.get(web_user)
        if identity is None:
            raise InvalidGrantError("The web user has no IMS identity.")
        return Grantee(web_user, identity)


# -- grants -------------------------------------------------------------------------


class S256Challenge(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only, required at /authorize and at /token."""

    DEFAULT_CODE_CHALLENGE_METHOD = "plain"  # RFC 7636 §4.3; refused below
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge' (PKCE S256 is required).")
        method = data.get("code_challenge_method", self.DEFAULT_CODE_CHALLENGE_METHOD)
        if method not in self.SUPPORTED_CODE_CHALLENGE_METHOD:
            raise InvalidRequestError("Unsupported 'code_challenge_method': only S256.")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    @property
    def store(self) -> WafStore:
        store: WafStore = self.server.store
        return store

    def save_authorization_code(self, code: str, request: WafRequest) -> None:
        data = request.payload.data
        self.store.save_code(
            code,
            client_id=request.client.get_client_id(),
            redirect_uri=data.get("redirect_uri", ""),
            scope=request.scope,
            web_user=request.user.web_user,
            challenge=data["code_challenge"],
            challenge_method=data.get("code_challenge_method", "plain"),
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        return self.store.find_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        self.store.delete_code(authorization_code)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Grantee:
        request: WafRequest = self.request
        return request.grantee(authorization_code.web_user)


class _RefreshCredential:
    """What Authlib needs of a refresh token's row."""

    def __init__(self, row: RefreshToken) -> None:
        self.row = row

    def check_client(self, client: Client) -> bool:
        return client.get_client_id() == self.row.client_id

    def get_scope(self) -> str:
        return self.row.scope


class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> _RefreshCredential | None:
        store: WafStore = self.server.store
        row = store.find_refresh_token(refresh_token)
        if row is None or row.state == "revoked":
            return None
        if row.state == "used":
            # Reuse: one of two holders of this family is not the client.  Revoke it all.
            revoked = store.revoke_family(row.family)
            log.warning(
                "refresh token reused: family of %s revoked (%d tokens)", row.web_user, revoked
            )
            return None
        return _RefreshCredential(row)

    def authenticate_user(self, refresh_token: _RefreshCredential) -> Grantee:
        request: WafRequest = self.request
        return request.grantee(refresh_token.row.web_user)

    def revoke_old_credential(self, refresh_token: _RefreshCredential) -> None:
        store: WafStore = self.server.store
        if not store.mark_refresh_token_used(refresh_token.row):
            raise InvalidGrantError()


# -- revocation and introspection ---------------------------------------------------


@dataclass(slots=True)
class _AccessToken:
    """A verified access token, as the RFC 7009/7662 endpoints see it."""

    claims: TokenClaims
    store: WafStore = field(repr=False)

    def check_client(self, client: Client) -> bool:
        return bool(self.claims.get("client_id") == client.get_client_id())

    def is_expired(self) -> bool:
        return False  # TokenVerifier let through unexpired tokens only

    def is_revoked(self) -> bool:
        return not self.store.access_token_live(self.claims["jti"])


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["none"]

    def query_token(
        self, token_string: str, token_type_hint: str | None
    ) -> _AccessToken | _RefreshCredential | None:
        server: OAuthServer = self.server
        if token_type_hint != "refresh_token":
            claims = server.verifier.claims(token_string)
            if claims is not None:
                return _AccessToken(claims, server.store)
        row = server.store.find_refresh_token(token_string)
        return _RefreshCredential(row) if row is not None else None

    def revoke_token(self, token: _AccessToken | _RefreshCredential, request: WafRequest) -> None:
        server: OAuthServer = self.server
        if isinstance(token, _AccessToken):
            server.store.revoke_access_token(token.claims["jti"])
        else:  # a refresh token takes its family with it (RFC 7009 §2.1)
            server.store.revoke_family(token.row.family)


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _AccessToken | None:
        server: OAuthServer = self.server
        claims = server.verifier.claims(token_string)
        return _AccessToken(claims, server.store) if claims is not None else None

    def check_permission(self, token: _AccessToken, client: Client, request: WafRequest) -> bool:
        return isinstance(client, ResourceServer)

    def introspect_token(self, token: _AccessToken) -> dict[str, Any]:
        return {"active": True, "token_type": "Bearer", **token.claims}


# -- the server ---------------------------------------------------------------------


class OAuthServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's ``AuthorizationServer`` over our clients, store, keys and tokens.

    ``handle_response`` hands back Authlib's ``(status, body, headers)`` as it is: the
    HTTP layer turns it into a Starlette response.
    """

    def __init__(
        self,
        clients: dict[str, Client],
        store: WafStore,
        generator: AccessTokenGenerator,
        verifier: TokenVerifier,
        refresh_token_ttl: float,
    ) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.clients = clients
        self.store = store
        self.verifier = verifier
        self.refresh_token_ttl = refresh_token_ttl
        self.register_token_generator("default", generator)
        self.register_grant(CodeGrant, [S256Challenge(required=True)])
        self.register_grant(RefreshGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)

    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: WafRequest) -> None:
        """Record the access token's jti (for revocation) and the new refresh token,
        in the family of the refresh token just used, or a new family for a code."""
        claims = unverified_claims(token["access_token"])  # made a moment ago, here
        used: _RefreshCredential | None = request.refresh_token
        family = used.row.family if used is not None else secrets.token_urlsafe(16)
        web_user = request.user.web_user
        self.store.save_access_token(
            claims["jti"], family=family, web_user=web_user, expires_at=claims["exp"]
        )
        if "refresh_token" in token:
            self.store.save_refresh_token(
                token["refresh_token"],
                family=family,
                client_id=request.client.get_client_id(),
                web_user=web_user,
                scope=token["scope"],
                ttl=self.refresh_token_ttl,
            )

    def create_oauth2_request(self, request: WafRequest) -> WafRequest:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def access_denied(self, redirect_uri: str, state: str | None) -> Any:
        """The /authorize answer for a web user without an IMS identity."""
        error = AccessDeniedError(
            "The web user has no IMS identity.", redirect_uri=redirect_uri, state=state
        )
        return self.handle_error_response(None, error)
