"""The WAF's signing keys: ES256 (P-256) JWKs, rotated, published as a JWKS.

One key signs at a time.  It is replaced by a fresh one every ``rotation`` seconds; the
retired key signs nothing more but stays in the published JWKS until every token it signed
has expired (retirement + the access-token lifetime + a clock-skew leeway), so a resource
server that caches the JWKS keeps verifying tokens issued just before a rotation.  Past
that, the key leaves the JWKS and its private half is deleted from disk.

Every key carries ``kid`` = its RFC 7638 thumbprint, so a verifier picks the key by the
token header's ``kid`` alone.

On disk: ``<data_dir>/waf/signing-keys.json`` (mode 0600, the directory 0700), rewritten
whole through a temporary file and a rename, so a crash leaves the old set or the new one::

    {"keys": [{"jwk": {...private JWK...}, "created": 1764080000.0, "retired": null}]}

The parsed keys (joserfc's, to sign; ``cryptography``'s public keys, to verify) and the
serialized JWKS are kept in memory; the file is read once at start
and written only when the set changes (a rotation or a key leaving the set).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

__all__ = ["KEY_LEEWAY", "KeyRing", "SigningKey"]

log = logging.getLogger(__name__)

#: Seconds a retired key outlives the last token it signed (clock skew of verifiers).
KEY_LEEWAY = 60.0

_FILE_NAME = "signing-keys.json"


@dataclass(slots=True)
class SigningKey:
    """One ES256 key, when it started signing, and when it stopped (None: it signs now)."""

    key: ECKey
    created: float
    retired: float | None = None

    @property
    def kid(self) -> str:
        kid = self.key.kid
        assert kid is not None  # every key is made or loaded with its thumbprint as kid
        return kid


def _public(key: ECKey) -> ec.EllipticCurvePublicKey:
    public = key.public_key
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return public


def _new_key(now: float) -> SigningKey:
    key = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, private=True)
    key.ensure_kid()
    return SigningKey(key, created=now)


class KeyRing:
    """The signing key of the moment and the public keys still published.

    ``rotation``: seconds a key signs before it is replaced; ``token_ttl``: the longest
    access-token lifetime, which bounds how long a retired key stays published.
    """

    def __init__(
        self,
        directory: Path,
        *,
        rotation: float,
        token_ttl: float,
        clock: Callable[[], float],
    ) -> None:
        if rotation <= 0:
            raise ValueError("key rotation period must be positive")
        self._path = directory / _FILE_NAME
        self._rotation = rotation
        self._retention = token_ttl + KEY_LEEWAY
        self._clock = clock
        self._keys: list[SigningKey] = []
        self._jwks_json = b""
        self._verifying: dict[str, ec.EllipticCurvePublicKey] = {}
        #: Earliest time the set must change (the next rotation or a key leaving it).
        self._next_change = 0.0
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        self._load()
        self._refresh(self._clock())

    # -- the key of the moment ------------------------------------------------------

    def signing_key(self) -> SigningKey:
        """The key to sign with now; rotates first when the current one is due."""
        now = self._clock()
        if now >= self._next_change:
            self._refresh(now)
        return self._keys[-1]

    def jwks_json(self) -> bytes:
        """The published JWKS (public halves only), serialized once per change of the set."""
        now = self._clock()
        if now >= self._next_change:
            self._refresh(now)
        return self._jwks_json

    def jwks(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.jwks_json())
        return result

    def verifying_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The public half of the published key named ``kid``, ready for ``cryptography``,
        or None (unknown, or past its retention)."""
        now = self._clock()
        if now >= self._next_change:
            self._refresh(now)
        return self._verifying.get(kid)

    # -- rotation -------------------------------------------------------------------

    def _refresh(self, now: float) -> None:
        changed = False
        current = self._keys[-1] if self._keys else None
        if current is None or now - current.created >= self._rotation:
            if current is not None:
                current.retired = now
                log.info("signing key %s retired", current.kid)
            fresh = _new_key(now)
            self._keys.append(fresh)
            log.info("signing key %s created", fresh.kid)
            changed = True
        kept = [k for k in self._keys if k.retired is None or now < k.retired + self._retention]
        if len(kept) != len(self._keys):
            for gone in self._keys:
                if gone not in kept:
                    log.info("key %s left the JWKS", gone.kid)
            self._keys = kept
            changed = True
        if changed:
            self._save()
        self._verifying = {k.kid: _public(k.key) for k in self._keys}
        self._jwks_json = json.dumps(
            {"keys": [k.key.as_dict(private=False) for k in self._keys]},
            separators=(",", ":"),
        ).encode()
        deadlines = [self._keys[-1].created + self._rotation]
        deadlines += [k.retired + self._retention for k in self._keys if k.retired is not None]
        self._next_change = min(deadlines)

    # -- persistence ----------------------------------------------------------------

    def _load(self) -> None:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return
        data = json.loads(raw)
        keys: list[SigningKey] = []
        for item in data["keys"]:
            key = ECKey.import_key(item["jwk"])
            if not key.is_private or key.get("crv") != "P-256":
                raise ValueError(f"{self._path}: not a private P-256 key")
            key.ensure_kid()
            keys.append(SigningKey(key, float(item["created"]), item.get("retired")))
        # The signing key is the one not retired, last; a file with several unretired
        # keys (edited by hand) keeps the newest signing and retires the others now.
        keys.sort(key=lambda k: (k.retired is None, k.created))
        now = self._clock()
        for k in keys[:-1]:
            if k.retired is None:
                k.retired = now
        self._keys = keys

    def _save(self) -> None:
        data = {
            "keys": [
                {"jwk": k.key.as_dict(private=True), "created": k.created, "retired": k.retired}
                for k in self._keys
            ]
        }
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self._path)
