"""The WAF element: its configuration, its HTTP routes on Starlette, and the WWSF's hooks.

Routes (mounted by the WWSF's app on the one HTTPS origin of the web element)::

    GET  /authorize                                authorisation endpoint (RFC 6749 §4.1.1)
    POST /token                                    token endpoint (§4.1.3, §6)
    POST /introspect                               RFC 7662, resource servers only
    POST /revoke                                   RFC 7009, the client's own tokens
    GET  /.well-known/oauth-authorization-server   RFC 8414 metadata
    GET  /jwks.json                                the public signing keys (RFC 7517)

The glue is thin: a handler reads the request (query or form), awaits what Authlib's
synchronous core cannot (the web user of the session, its IMS identities), builds a
``WafRequest``, runs the core inside one store transaction, and turns Authlib's
``(status, body, headers)`` into a Starlette response.

/authorize validates the client, redirect URI, scope and PKCE first, then sends a visitor
without a session to ``/login?next=<this /authorize request>``; a logged-in web user whose
identity resolves to None is sent back to the client with ``error=access_denied``.  The WIC
is the WWSF's own first-party client, so there is no consent page.
"""

from __future__ import annotations

import functools
import html
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from webims.config import Settings
from webims.observe.trace import TraceRecorder
from webims.waf.identity import CurrentUser, ImsIdentity, ResolveIdentity
from webims.waf.keys import KeyRing
from webims.waf.server import SCOPES, OAuthServer, PublicClient, ResourceServer, WafRequest
from webims.waf.store import WafStore
from webims.waf.tokens import AccessTokenGenerator, TokenProfile, TokenVerifier

__all__ = ["WIC_CLIENT_ID", "Waf", "WafConfig"]

log = logging.getLogger(__name__)

#: The OAuth client id of the WIC.
WIC_CLIENT_ID = "wic"

_SECRET_MIN = 16
#: Largest form body an endpoint reads (bytes); a token request is a few hundred.
_MAX_FORM = 16384

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class WafConfig:
    """The WAF's settings, resolved: every default filled in from the deployment."""

    issuer: str
    wwsf_identity: str = "wwsf.home1.net"
    authorization_entity: str = "webrtc_authserver1@thirdparty.net"
    audience: tuple[str, ...] = ("home1.net",)
    access_token_ttl: int = 600
    refresh_token_ttl: int = 86400
    key_rotation_days: float = 30.0
    #: name -> secret ("" : made on first start into ``<data_dir>/waf/<name>-secret``)
    resource_servers: tuple[tuple[str, str], ...] = (("pcscf", ""),)
    #: The WIC's redirect URIs; empty: ``<issuer>/callback``.
    redirect_uris: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> WafConfig:
        waf, web = settings.waf, settings.web
        return cls(
            issuer=(waf.issuer or web.public_url).rstrip("/"),
            wwsf_identity=web.wwsf_identity,
            authorization_entity=waf.authorization_entity,
            audience=tuple(waf.audience),
            access_token_ttl=waf.access_token_ttl,
            refresh_token_ttl=waf.refresh_token_ttl,
            key_rotation_days=waf.key_rotation_days,
            resource_servers=tuple(waf.resource_servers.items()),
            redirect_uris=tuple(waf.redirect_uris) or (web.public_url.rstrip("/") + "/callback",),
        )


def _resource_server_secret(directory: Path, name: str, configured: str) -> str:
    """The configured secret, or the one kept in ``<name>-secret`` (made when missing)."""
    if configured:
        if len(configured) < _SECRET_MIN:
            raise ValueError(f"resource server {name}: secret shorter than {_SECRET_MIN}")
        return configured
    path = directory / f"{name}-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret


class Waf:
    """The authorisation server of one deployment.

    ``current_user`` and ``resolve_identity`` come from the WWSF (see ``identity.py``);
    ``clock`` (seconds since the epoch) is ``time.time`` but for tests.
    """

    def __init__(
        self,
        settings: Settings | WafConfig,
        data_dir: Path,
        current_user: CurrentUser,
        resolve_identity: ResolveIdentity,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        config = settings if isinstance(settings, WafConfig) else WafConfig.from_settings(settings)
        self.config = config
        self._current_user = current_user
        self._resolve_identity = resolve_identity
        directory = Path(data_dir) / "waf"
        self.keys = KeyRing(
            directory,
            rotation=config.key_rotation_days * 86400.0,
            token_ttl=config.access_token_ttl,
            clock=clock,
        )
        self.store = WafStore(Path(data_dir) / "waf.sqlite3", clock)
        #: Resource-server name -> secret (HTTP Basic at /introspect).
        self.resource_server_secrets = {
            name: _resource_server_secret(directory, name, secret)
            for name, secret in config.resource_servers
        }
        redirect_uris = config.redirect_uris or (config.issuer + "/callback",)
        clients: dict[str, PublicClient | ResourceServer] = {
            WIC_CLIENT_ID: PublicClient(WIC_CLIENT_ID, redirect_uris)
        }
        for name, secret in self.resource_server_secrets.items():
            clients[name] = ResourceServer(name, secret)
        profile = TokenProfile(
            issuer=config.issuer,
            audience=config.audience,
            wwsf=config.wwsf_identity,
            authorization_entity=config.authorization_entity,
            ttl=config.access_token_ttl,
        )
        self.verifier = TokenVerifier(config.issuer, self.keys, clock)
        self.server = OAuthServer(
            clients,
            self.store,
            AccessTokenGenerator(profile, self.keys, clock),
            self.verifier,
            refresh_token_ttl=config.refresh_token_ttl,
        )
        self._metadata = self._make_metadata()
        #: The web element's message trace (``webims trace``); None: not recorded.
        self.tracer: TraceRecorder | None = None

    # -- what the WWSF calls --------------------------------------------------------

    def routes(self) -> list[Route]:
        oauth = _answering_oauth_errors
        return [
            Route("/authorize", oauth(self.authorize), methods=["GET"]),
            Route("/token", oauth(self.token), methods=["POST"]),
            Route("/introspect", oauth(self.introspect), methods=["POST"]),
            Route("/revoke", oauth(self.revoke), methods=["POST"]),
            Route("/.well-known/oauth-authorization-server", self.metadata, methods=["GET"]),
            Route("/jwks.json", self.jwks, methods=["GET"]),
        ]

    async def revoke_user_tokens(self, web_user: str) -> int:
        """Revoke every live access and refresh token of ``web_user`` (the WWSF's logout);
        how many there were."""
        with self.store.transaction():
            count = self.store.revoke_user(web_user)
        log.info("revoked %d tokens of %s", count, web_user)
        return count

    async def start(self) -> None:
        """Nothing to start: the keys and the store are opened by the constructor."""

    async def close(self) -> None:
        self.store.close()

    # -- endpoints ------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        oauth = _oauth_request(request, list(request.query_params.multi_items()))
        try:
            grant = self.server.get_consent_grant(oauth)
        except OAuth2Error as error:
            return self._authorize_error(oauth, error)
        web_user = await self._current_user(request)
        if web_user is None:
            target = request.url.path + "?" + request.url.query
            return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=302)
        identity = await self._resolve_identity(web_user)
        if identity is None:
            log.info("authorisation refused: %s has no IMS identity", web_user)
            return _response(self.server.access_denied(grant.redirect_uri, oauth.payload.state))
        oauth.identities[web_user] = identity
        with self.store.transaction():
            result = self.server.create_authorization_response(
                oauth, grant_user=oauth.grantee(web_user), grant=grant
            )
        if self.tracer is not None:
            self.tracer.http(request, result[0], web_user, identity.impus)
        return _response(result)

    def _authorize_error(self, oauth: WafRequest, error: OAuth2Error) -> Response:
        if error.redirect_uri:  # the client's own, checked: tell it there
            return _response(self.server.handle_error_response(oauth, error))
        # Unknown client or redirect URI: never redirect (RFC 6749 §4.1.2.1); tell the user.
        status = error.status_code
        text = html.escape(f"{error.error}: {error.description or ''}")
        page = f"<!doctype html><title>Authorisation refused</title><h1>{status}</h1><p>{text}"
        return Response(page, status_code=status, media_type="text/html")

    async def token(self, request: Request) -> Response:
        params = await _form(request)
        oauth = _oauth_request(request, params)
        await self._resolve_grant_identity(oauth)
        with self.store.transaction():
            result = self.server.create_token_response(oauth)
        if self.tracer is not None:
            user, identity = next(iter(oauth.identities.items()), (None, None))
            self.tracer.http(request, result[0], user, identity.impus if identity else ())
        return _response(result)

    async def _resolve_grant_identity(self, oauth: WafRequest) -> None:
        """Await the identity of the web user behind the code or refresh token, if any,
        for the synchronous grant to find (it refuses with invalid_grant when None)."""
        data = oauth.payload.data
        web_user: str | None = None
        if data.get("grant_type") == "authorization_code" and data.get("client_id"):
            code = self.store.find_code(data.get("code", ""), data["client_id"])
            web_user = code.web_user if code else None
        elif data.get("grant_type") == "refresh_token":
            row = self.store.find_refresh_token(data.get("refresh_token", ""))
            web_user = row.web_user if row and row.state == "active" else None
        if web_user is not None:
            identity: ImsIdentity | None = await self._resolve_identity(web_user)
            oauth.identities[web_user] = identity

    async def introspect(self, request: Request) -> Response:
        oauth = _oauth_request(request, await _form(request))
        result = self.server.create_endpoint_response("introspection", oauth)
        if self.tracer is not None:
            self.tracer.http(request, result[0])
        return _response(result)

    async def revoke(self, request: Request) -> Response:
        oauth = _oauth_request(request, await _form(request))
        with self.store.transaction():
            result = self.server.create_endpoint_response("revocation", oauth)
        return _response(result)

    async def metadata(self, request: Request) -> Response:
        return JSONResponse(self._metadata, headers={"Cache-Control": "max-age=3600"})

    async def jwks(self, request: Request) -> Response:
        # Short caching: a verifier meeting an unknown kid fetches again anyway.
        return Response(
            self.keys.jwks_json(),
            media_type="application/jwk-set+json",
            headers={"Cache-Control": "max-age=300"},
        )

    def _make_metadata(self) -> dict[str, Any]:
        """RFC 8414 §2 metadata of this authorisation server."""
        base = self.config.issuer
        return {
            "issuer": base,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/token",
            "jwks_uri": base + "/jwks.json",
            "introspection_endpoint": base + "/introspect",
            "revocation_endpoint": base + "/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": list(SCOPES),
        }


# -- Starlette <-> Authlib ----------------------------------------------------------


async def _form(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body's fields (RFC 6749 §3.2); any other media type is no field.

    ``parse_qsl`` on the body: the OAuth endpoints take short urlencoded forms only, and
    Starlette's general form parser costs several times more per request."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return []
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            raise InvalidRequestError("Request body too large.")
    try:
        return parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidRequestError("Request body is not UTF-8.") from None


def _oauth_request(request: Request, params: list[tuple[str, str]]) -> WafRequest:
    # Starlette's headers stay case-insensitive: Authlib looks up "Authorization".
    return WafRequest(request.method, str(request.url), request.headers, params)


def _answering_oauth_errors(handler: Endpoint) -> Endpoint:
    """An OAuth error escaping a handler (Authlib's transport check: http on a non-loopback
    address) becomes its RFC 6749 §5.2 JSON answer instead of a 500."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuth2Error as error:
            return _response(error())

    return wrapped


def _response(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    status, body, headers = result
    if isinstance(body, dict):
        return JSONResponse(body, status_code=status, headers=dict(headers))
    return Response(body or b"", status_code=status, headers=dict(headers))
