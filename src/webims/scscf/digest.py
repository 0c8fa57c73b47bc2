"""SIP Digest at the S-CSCF (TS 24.229 5.4.1.2.1B/5.4.1.2.2B, TS 33.203 N;
RFC 2617 / RFC 7616 MD5 with ``qop=auth``; RFC 3261 §22.4).

The HSS keeps the secret: the MAA's SIP-Digest-Authenticate carries the realm
and H(A1) (TS 29.229 6.3.36), and the S-CSCF checks the response with it.
The nonces it hands out are random and remembered (with the H(A1) once the
HSS gave it) for :attr:`DigestNonces.lifetime` seconds, so that a UA can
re-register with the same nonce and a higher ``nc`` without a new MAR; a
repeated or lower ``nc`` is a replay and fails: :func:`verify` tells it from a
wrong response, as a UA that sends its last Authorization again on a refresh
(SIP.js 0.21 does) is answered with a new nonce and ``stale=true``, not 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from ..sip.auth import DigestCredentials

__all__ = ["DigestNonces", "NonceState", "Verdict", "challenge", "expected_response", "verify"]


@dataclass(slots=True)
class NonceState:
    """What the S-CSCF remembers of one nonce it issued."""

    realm: str
    created: float
    #: The IMPU the challenge was for (lookup form).
    impu: str
    #: Known once the HSS answered the MAR for this nonce.
    impi: str | None = None
    ha1: str | None = None
    last_nc: int = 0


class DigestNonces:
    """The nonces issued, oldest first, at most ``limit`` of them."""

    def __init__(self, lifetime: float = 3600.0, limit: int = 100_000) -> None:
        self.lifetime = lifetime
        self.limit = limit
        self._nonces: OrderedDict[str, NonceState] = OrderedDict()

    def issue(
        self, realm: str, impu: str, now: float, *, impi: str | None = None, ha1: str | None = None
    ) -> str:
        nonce = secrets.token_urlsafe(24)
        self._nonces[nonce] = NonceState(realm, now, impu, impi, ha1)
        while len(self._nonces) > self.limit:
            self._nonces.popitem(last=False)
        return nonce

    def get(self, nonce: str | None, now: float) -> NonceState | None:
        """The state of a nonce we issued and that has not gone stale."""
        if not nonce:
            return None
        state = self._nonces.get(nonce)
        if state is None:
            return None
        if now - state.created > self.lifetime:
            del self._nonces[nonce]
            return None
        return state

    def forget(self, nonce: str) -> None:
        self._nonces.pop(nonce, None)


def challenge(realm: str, nonce: str, *, stale: bool = False) -> str:
    """The ``WWW-Authenticate`` value of a 401 (RFC 2617 §3.2.1)."""
    value = f'Digest realm="{realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'
    return value + ", stale=true" if stale else value


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def expected_response(creds: DigestCredentials, ha1: str, method: str) -> str | None:
    """The ``response`` RFC 2617 §3.2.2.1 asks for, or None if the credentials
    lack what it needs or name another algorithm or qop."""
    algorithm = (creds.algorithm or "MD5").upper()
    if algorithm != "MD5":
        return None
    nonce, uri = creds.nonce, creds.uri
    if not nonce or uri is None:
        return None
    ha2 = _md5(f"{method}:{uri}")
    qop = creds.qop
    if qop is None:
        return _md5(f"{ha1}:{nonce}:{ha2}")
    if qop.lower() != "auth" or not creds.nc or not creds.cnonce:
        return None
    return _md5(f"{ha1}:{nonce}:{creds.nc}:{creds.cnonce}:auth:{ha2}")


class Verdict(Enum):
    """What :func:`verify` found."""

    #: The response answers the nonce with the secret, with a new ``nc``.
    VALID = "valid"
    #: It does not (or cannot be checked): authentication failed.
    WRONG = "wrong"
    #: A right response whose ``nc`` was already used with this nonce (RFC 7616
    #: §3.4.5): a replay, or a UA sending its last credentials again.  The
    #: answer is a new nonce (RFC 2617 §3.2.1 ``stale``), which a replayer
    #: without the secret cannot answer.
    REPLAYED = "replayed"


def verify(creds: DigestCredentials, state: NonceState, ha1: str, method: str) -> Verdict:
    """Whether ``creds`` answer the nonce with ``ha1``; a valid answer moves the
    nonce's ``nc`` on."""
    expected = expected_response(creds, ha1, method)
    given = creds.response or ""
    if expected is None or not hmac.compare_digest(expected, given.lower()):
        return Verdict.WRONG
    if creds.qop is not None:
        try:
            nc = int(creds.nc or "", 16)
        except ValueError:
            return Verdict.WRONG
        if nc <= state.last_nc:
            return Verdict.REPLAYED
        state.last_nc = nc
    return Verdict.VALID
