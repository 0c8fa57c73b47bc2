"""The two JWS operations both token checkers need (the WAF's introspection
and the eP-CSCF's local check): strict base64url and the ES256 signature.

ES256 is ECDSA P-256 with SHA-256; a JWS carries the signature as R || S,
32 octets each (RFC 7518 §3.4), which ``cryptography`` wants as DER.
"""

from __future__ import annotations

import base64
import re

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = ["b64url_decode", "verify_es256"]

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def b64url_decode(segment: str) -> bytes:
    """base64url without padding (RFC 7515 §2), strictly: other characters
    raise ValueError."""
    if not _B64URL.fullmatch(segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def verify_es256(key: ec.EllipticCurvePublicKey, head: str, payload: str, signature: str) -> None:
    """Check the ES256 signature of a compact JWS ``head.payload.signature``;
    raises ValueError (malformed) or cryptography's InvalidSignature."""
    raw = b64url_decode(signature)
    if len(raw) != 64:
        raise ValueError("an ES256 signature is 64 octets")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, f"{head}.{payload}".encode("ascii"), _ECDSA_SHA256)
