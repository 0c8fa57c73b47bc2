"""The eP-CSCF's Bearer token validation (SPEC.md §1.4 A.2–A.4 and B; RFC 8898, 6750, 9068).

TS 33.203 Annex X leaves the token format and its check to the implementation; this is
ours.  The WAF issues RFC 9068 JWT access tokens signed ES256, with ``kid`` in the header
and its public keys at the ``jwks_uri`` of its RFC 8414 metadata (see ``webims.waf``).

Two modes, one per validator:

``local``
    The JWT is checked here, against the WAF's JWKS.  Fast (one ECDSA verification, no
    I/O), but a revoked token stays valid until it expires.
``introspect``
    The same local check first (so junk and forgeries never cost a round trip), then the
    WAF is asked by RFC 7662 introspection (HTTP Basic, client ``pcscf``) whether the token
    is still active: revocation (a logout at the WWSF) takes effect at once.  The claims
    the WAF returns are checked again and must name the same ``jti``.

The local check, in order, refusing at the first failure:

1. shape: three base64url segments (strictly), a JSON object header;
2. header: ``alg`` exactly ``ES256`` (``none``, HS256 and everything else are refused
   *before* any key is looked up, so a public key can never be used as an HMAC secret),
   ``typ`` ``at+jwt``, a string ``kid``, no ``crit``.  An accepted header segment is
   remembered with its kid (all tokens of one WAF key share it), so this step is a dict
   look-up for every token but the first of each key;
3. key: by ``kid`` in the cached JWKS.  The JWKS is fetched (httpx, the only I/O) on first
   use, when it is older than ``jwks_max_age``, and when a token names a ``kid`` not in
   it (the WAF rotated its key), but then at most once every ``jwks_refetch_interval``
   seconds, so a stream of tokens with made-up kids cannot turn the eP-CSCF into a load
   generator against the WAF.  Concurrent fetches are merged into one;
4. signature: ECDSA P-256/SHA-256 on ``cryptography`` directly (JWS R || S, 64 octets);
5. claims: ``iss`` equal to the configured issuer, ``aud`` (string or list) naming one
   of the expected audiences, ``exp`` present and not passed, ``iat`` present and ``nbf``
   (if any) not in the future, each with ``clock_skew`` of leeway; ``sub``, ``jti``,
   ``impi``, ``impu`` (non-empty list), ``wwsf``, ``authorization_entity`` present;
6. scope: the registration scope (``ims:register``) among the space-separated ``scope``.
   Checked last, so only an otherwise valid token is told ``insufficient_scope``.

Failures raise ``TokenError`` subclasses that carry the SIP answer of §1.4 B:
``InvalidToken`` (401, ``error="invalid_token"``), ``InsufficientScope`` (403,
``error="insufficient_scope"`` with the scope needed) and ``TokenUnavailable`` (503: the
WAF could not be reached to get its keys or an introspection answer; the token was
neither accepted nor found bad).  ``www_authenticate`` builds the RFC 8898 challenge and
``bearer_from_authorization`` reads both credential syntaxes of SPEC.md §0.3.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from webims.jws import b64url_decode, verify_es256

from ..sip.message import Request

__all__ = [
    "CALL_SCOPE",
    "REGISTER_SCOPE",
    "ExpiredToken",
    "InsufficientScope",
    "InvalidToken",
    "TokenError",
    "TokenInfo",
    "TokenUnavailable",
    "TokenValidator",
    "UnreadableBearer",
    "bearer_from_authorization",
    "bearer_token",
    "www_authenticate",
]

log = logging.getLogger(__name__)

#: The scope a token needs to register through the eP-CSCF.
REGISTER_SCOPE = "ims:register"
#: The scope a token sent with an INVITE needs besides (``routing``).
CALL_SCOPE = "ims:call"

#: Longest token accepted (characters); the WAF's are under 1 KiB.
MAX_TOKEN_LENGTH = 8192

_TYP = frozenset({"at+jwt", "application/at+jwt"})
_METADATA = "/.well-known/oauth-authorization-server"
#: Distinct accepted JWS headers remembered (one per WAF key in practice).
_HEADER_CACHE = 64

Mode = Literal["local", "introspect"]


# -- results and errors ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a valid token says (SPEC.md §1.4 A.3): who, which IMS identities, from whom."""

    web_user: str
    impi: str
    impus: tuple[str, ...]
    wwsf: str
    authorization_entity: str
    issuer: str
    scopes: frozenset[str]
    expires_at: float
    jti: str


class TokenError(Exception):
    """A token the eP-CSCF does not accept; ``status`` and ``error`` make the SIP answer."""

    status: int = 401
    error: str | None = "invalid_token"
    scope: str | None = None

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def www_authenticate(self, realm: str | None, authz_server: str | None) -> str | None:
        """The WWW-Authenticate value of the answer, or None when it has none."""
        if self.error is None:
            return None
        return www_authenticate(realm, authz_server, error=self.error, scope=self.scope)


class InvalidToken(TokenError):
    """Malformed, forged, expired, revoked, from another issuer or for another audience."""


class ExpiredToken(InvalidToken):
    """An otherwise good token past its ``exp`` (still 401 ``invalid_token``); told apart
    so that a deregistration on the connection that registered may go through with it
    (SPEC.md §1.4 F)."""


class InsufficientScope(TokenError):
    """A valid token without the scope the request needs: 403 (RFC 6750 §3.1)."""

    status = 403
    error = "insufficient_scope"

    def __init__(self, reason: str, scope: str) -> None:
        super().__init__(reason)
        self.scope = scope


class TokenUnavailable(TokenError):
    """The WAF could not be asked (keys or introspection): neither valid nor invalid."""

    status = 503
    error = None


# -- the header and the credentials --------------------------------------------------------


def _quoted(value: str) -> str:
    """A SIP/HTTP quoted-string: backslash and double quote escaped; control characters
    (CR and LF above all, which would split the header) have no representation."""
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
        raise ValueError("control character in a quoted-string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(
    realm: str | None,
    authz_server: str | None,
    error: str | None = None,
    scope: str | None = None,
) -> str:
    """The value of ``WWW-Authenticate: Bearer ...`` (RFC 8898 §2.1, RFC 6750 §3), e.g.
    ``Bearer realm="home1.net", authz_server="https://waf.example", error="invalid_token"``.
    Parameters given as None are left out."""
    params = [
        f"{name}={_quoted(value)}"
        for name, value in (
            ("realm", realm),
            ("authz_server", authz_server),
            ("error", error),
            ("scope", scope),
        )
        if value is not None
    ]
    return "Bearer " + ", ".join(params) if params else "Bearer"


_LWS = r"[ \t]"
_TOKEN68 = r"[A-Za-z0-9\-._~+/]+=*"
_BEARER_BARE = re.compile(rf"{_LWS}*Bearer{_LWS}+({_TOKEN68}){_LWS}*", re.IGNORECASE)
_BEARER_PARAM = re.compile(
    rf"{_LWS}*Bearer{_LWS}+access_token{_LWS}*={_LWS}*"
    rf'(?:"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*)"|({_TOKEN68})){_LWS}*',
    re.IGNORECASE,
)
_TOKEN68_ONLY = re.compile(_TOKEN68)


def bearer_from_authorization(value: str) -> str | None:
    """The token of an ``Authorization`` value with the Bearer scheme, or None.

    Both syntaxes of SPEC.md §0.3 give the same token: RFC 6750/8898 ``Bearer <token68>``
    and TS 24.371 Annex A's ``Bearer access_token="<token>"`` (the parameter quoted or
    not).  Anything else is None: another scheme, no token, several tokens or parameters,
    a token with characters outside token68, trailing junk.
    """
    if match := _BEARER_BARE.fullmatch(value):
        return match.group(1)
    if match := _BEARER_PARAM.fullmatch(value):
        quoted, bare = match.group(1), match.group(2)
        if bare is not None:
            return bare
        token = re.sub(r"\\(.)", r"\1", quoted)
        return token if _TOKEN68_ONLY.fullmatch(token) else None
    return None


class UnreadableBearer(Exception):
    """An Authorization header with the Bearer scheme whose token cannot be read."""


def bearer_token(req: Request) -> str | None:
    """The one Bearer token of a request, None without one; ``UnreadableBearer`` when
    a Bearer credential cannot be read or two differ."""
    found: str | None = None
    for value in req.headers.get_all("Authorization"):
        scheme = value.split(None, 1)
        if not scheme or scheme[0].lower() != "bearer":
            continue
        token = bearer_from_authorization(value)
        if token is None or (found is not None and token != found):
            raise UnreadableBearer("unreadable or repeated Bearer credentials")
        found = token
    return found


# -- keys -----------------------------------------------------------------------------------


def _parse_jwks(jwks: Any) -> dict[str, ec.EllipticCurvePublicKey]:
    """The ES256 verification keys of a JWKS by kid; keys of other kinds are skipped."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise ValueError("not a JWKS")
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for jwk in jwks["keys"]:
        if not isinstance(jwk, Mapping):
            continue
        kid, x, y = jwk.get("kid"), jwk.get("x"), jwk.get("y")
        if (
            jwk.get("kty") != "EC"
            or jwk.get("crv") != "P-256"
            or jwk.get("alg", "ES256") != "ES256"
            or jwk.get("use", "sig") != "sig"
            or not isinstance(kid, str)
            or not isinstance(x, str)
            or not isinstance(y, str)
        ):
            continue
        try:
            xb, yb = b64url_decode(x), b64url_decode(y)
            if len(xb) != 32 or len(yb) != 32:
                continue
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(xb, "big"), int.from_bytes(yb, "big"), ec.SECP256R1()
            )
            keys[kid] = numbers.public_key()  # refuses a point not on the curve
        except (ValueError, binascii.Error):
            log.warning("JWKS key %r is not a valid P-256 point; skipped", kid)
    return keys


def _metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known suffix goes between the host and the issuer's path."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, _METADATA + path, "", ""))


# -- the validator ----------------------------------------------------------------------------


class TokenValidator:
    """Checks Bearer tokens for the eP-CSCF; ``await validate(token)`` -> ``TokenInfo``.

    ``issuer``: the WAF's issuer URL (compared exactly with ``iss``); ``audience``: the
    domain(s) this eP-CSCF serves; ``scope``: what a REGISTER needs; ``jwks_uri`` and
    ``introspection_uri``: None to take them from the WAF's RFC 8414 metadata; ``verify``:
    an ``ssl.SSLContext``, a CA file path, or True for the system CAs, for every HTTPS
    request to the WAF; ``client_id``/``client_secret``: the eP-CSCF's introspection
    credentials (``mode="introspect"``); ``clock``: seconds since the epoch (time.time but
    for tests), which also paces the JWKS refetches.
    """

    def __init__(
        self,
        issuer: str,
        audience: str | Collection[str],
        *,
        scope: str = REGISTER_SCOPE,
        mode: Mode = "local",
        jwks_uri: str | None = None,
        introspection_uri: str | None = None,
        client_id: str = "pcscf",
        client_secret: str = "",
        verify: ssl.SSLContext | str | bool = True,
        clock_skew: float = 30.0,
        jwks_refetch_interval: float = 10.0,
        jwks_max_age: float = 3600.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in {"local", "introspect"}:
            raise ValueError(f"token validation mode {mode!r}: 'local' or 'introspect'")
        if mode == "introspect" and not client_secret:
            raise ValueError("introspection needs the eP-CSCF's client secret")
        self.issuer = issuer
        self.audience = frozenset({audience} if isinstance(audience, str) else audience)
        if not self.audience:
            raise ValueError("no audience to accept")
        self.scope = scope
        self.mode: Mode = mode
        self._jwks_uri = jwks_uri
        self._introspection_uri = introspection_uri
        self._client_auth = (client_id, client_secret)
        self._skew = clock_skew
        self._refetch_interval = jwks_refetch_interval
        self._max_age = jwks_max_age
        self._clock = clock
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        self._http = httpx.AsyncClient(verify=verify, timeout=timeout, follow_redirects=False)
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._fetched_at: float | None = None  # last JWKS fetch attempt
        self._fetch_failed = False  # whether that attempt failed
        self._fetch_lock = asyncio.Lock()
        #: Accepted header segments and their kid: all tokens of one key share a header.
        self._headers: dict[str, str] = {}
        #: JWKS fetches attempted so far (for the rate limit's tests and for metrics).
        self.jwks_fetches = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- public ---------------------------------------------------------------------------

    async def validate(self, token: str) -> TokenInfo:
        """The token's ``TokenInfo``, or a ``TokenError`` saying what the answer is."""
        info = await self._check_locally(token)
        if self.mode == "introspect":
            claims = await self._introspect(token)
            checked = self._check_claims(claims)
            if checked.jti != info.jti:
                raise InvalidToken("introspection answered for another token")
            info = checked
        if self.scope not in info.scopes:
            raise InsufficientScope(f"token scope lacks {self.scope}", self.scope)
        return info

    def load_jwks(self, jwks: Mapping[str, Any]) -> int:
        """Replace the cached keys by those of ``jwks`` (as fetched); returns their count."""
        self._keys = _parse_jwks(jwks)
        self._fetch_failed = False
        self._fetched_at = self._clock()
        return len(self._keys)

    # -- the local check --------------------------------------------------------------------

    async def _check_locally(self, token: str) -> TokenInfo:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed token")
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("malformed token: not a JWS in compact form")
        head, payload, signature = parts
        kid = self._headers.get(head)
        if kid is None:
            kid = _kid_of_header(head)
            if len(self._headers) >= _HEADER_CACHE:
                self._headers.clear()
            self._headers[head] = kid
        key = await self._key(kid)
        try:
            verify_es256(key, head, payload, signature)
        except (ValueError, binascii.Error, InvalidSignature) as exc:
            raise InvalidToken("bad token signature") from exc
        try:
            claims = json.loads(b64url_decode(payload))
        except (ValueError, binascii.Error) as exc:
            raise InvalidToken("malformed token claims") from exc
        if not isinstance(claims, dict):
            raise InvalidToken("malformed token claims")
        return self._check_claims(claims)

    def _check_claims(self, claims: Mapping[str, Any]) -> TokenInfo:
        """The claim checks, the same for a verified JWT and an introspection answer."""
        if claims.get("iss") != self.issuer:
            raise InvalidToken("token from another issuer")
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud
        if not isinstance(auds, list) or not any(
            isinstance(a, str) and a in self.audience for a in auds
        ):
            raise InvalidToken("token for another audience")
        now = self._clock()
        exp = _number(claims, "exp")
        if exp is None:
            raise InvalidToken("token without expiry")
        if now - self._skew >= exp:
            raise ExpiredToken("token expired")
        iat = _number(claims, "iat")
        if iat is None or iat > now + self._skew:
            raise InvalidToken("token issued in the future")
        if "nbf" in claims:
            nbf = _number(claims, "nbf")
            if nbf is None or nbf > now + self._skew:
                raise InvalidToken("token not yet valid")
        sub, jti, impi = claims.get("sub"), claims.get("jti"), claims.get("impi")
        wwsf, entity = claims.get("wwsf"), claims.get("authorization_entity")
        impus, scope = claims.get("impu"), claims.get("scope", "")
        if not (
            isinstance(sub, str)
            and isinstance(jti, str)
            and isinstance(impi, str)
            and isinstance(wwsf, str)
            and isinstance(entity, str)
            and isinstance(scope, str)
            and isinstance(impus, list)
            and impus
            and all(isinstance(i, str) for i in impus)
        ):
            raise InvalidToken("token lacks IMS claims")
        return TokenInfo(
            web_user=sub,
            impi=impi,
            impus=tuple(impus),
            wwsf=wwsf,
            authorization_entity=entity,
            issuer=self.issuer,
            scopes=frozenset(scope.split()),
            expires_at=float(exp),
            jti=jti,
        )

    # -- the keys ---------------------------------------------------------------------------

    async def _key(self, kid: str) -> ec.EllipticCurvePublicKey:
        now = self._clock()
        key = self._keys.get(kid)
        fetched = self._fetched_at
        if key is not None and fetched is not None and now - fetched < self._max_age:
            return key
        if fetched is None or now - fetched >= self._refetch_interval:
            await self._refresh_keys()
            key = self._keys.get(kid)
        elif key is None and self._fetch_lock.locked():
            # A fetch another token started is under way (the first REGISTERs after a
            # start, or after a key rotation, arrive together): wait for its keys.
            async with self._fetch_lock:
                key = self._keys.get(kid)
        if key is None:
            if self._fetch_failed:  # the kid may well be the WAF's: say nothing about it
                raise TokenUnavailable("the WAF's keys cannot be fetched")
            raise InvalidToken("token signed by an unknown key")
        return key

    async def _refresh_keys(self) -> None:
        # The attempt is stamped before the first await: a task arriving during the fetch
        # sees it and does not fetch again; the lock serializes fetches all the same.
        async with self._fetch_lock:
            self._fetched_at = self._clock()
            self.jwks_fetches += 1
            try:
                uri = self._jwks_uri or await self._discover("jwks_uri")
                response = await self._http.get(uri)
                response.raise_for_status()
                self._keys = _parse_jwks(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("JWKS of %s not fetched: %s", self.issuer, exc)
                self._fetch_failed = True
                return  # keep verifying with the keys we have, if any
            self._fetch_failed = False
            log.info("JWKS of %s fetched: %d key(s)", self.issuer, len(self._keys))

    async def _discover(self, name: str) -> str:
        """An endpoint from the WAF's RFC 8414 metadata, whose issuer must be ours."""
        response = await self._http.get(_metadata_url(self.issuer))
        response.raise_for_status()
        metadata = response.json()
        if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer:
            raise ValueError("authorisation server metadata of another issuer")
        uri = metadata.get(name)
        if not isinstance(uri, str):
            raise ValueError(f"authorisation server metadata without {name}")
        if name == "jwks_uri":
            self._jwks_uri = uri
        else:
            self._introspection_uri = uri
        return uri

    # -- introspection ----------------------------------------------------------------------

    async def _introspect(self, token: str) -> dict[str, Any]:
        try:
            uri = self._introspection_uri or await self._discover("introspection_endpoint")
            response = await self._http.post(
                uri,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._client_auth,
            )
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("introspection at %s failed: %s", self.issuer, exc)
            raise TokenUnavailable("the WAF cannot be asked about the token") from exc
        if not isinstance(answer, dict):
            raise TokenUnavailable("introspection answer is not an object")
        if answer.get("active") is not True:
            raise InvalidToken("token not active (revoked or expired)")
        return answer


def _kid_of_header(head: str) -> str:
    """The ``kid`` of an acceptable JWS header segment; InvalidToken for any other."""
    try:
        header = json.loads(b64url_decode(head))
    except (ValueError, binascii.Error) as exc:
        raise InvalidToken("malformed token header") from exc
    if not isinstance(header, dict):
        raise InvalidToken("malformed token header")
    if header.get("alg") != "ES256":
        raise InvalidToken("token algorithm not allowed")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _TYP:
        raise InvalidToken("not an access token (typ)")
    if "crit" in header:
        raise InvalidToken("token has critical header parameters")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise InvalidToken("token names no key")
    return kid


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
