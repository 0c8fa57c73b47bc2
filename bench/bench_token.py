"""The eP-CSCF's local token check, per second on one core.

Target (issue 5): >= 5,000 checks/s.  One check is ``await TokenValidator.validate(t)``
in mode ``local``: the header read and the ES256 allow-list, the key picked by ``kid``
from the cached JWKS, the ECDSA P-256 verification, the claims (iss, aud, exp, iat, the
IMS identities, the scope).  The tokens are the WAF's own (its ``KeyRing`` and
``AccessTokenGenerator`` in a temporary directory), a different one each check, and the
validator holds the WAF's JWKS as it would after its first fetch (``load_jwks``), so no
network is measured: in service the JWKS is fetched once and then only on a new ``kid``.

Prints the rate with its target, and with ``--json`` one JSON line last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from webims.pcscf.token import TokenValidator
from webims.waf.identity import ImsIdentity
from webims.waf.keys import KeyRing
from webims.waf.tokens import AccessTokenGenerator, Grantee, TokenProfile

ISSUER = "https://waf.home1.net"
TARGET = 5000.0


class _Client:
    @staticmethod
    def get_client_id() -> str:
        return "wic"


def _tokens(directory: Path, count: int) -> tuple[list[str], bytes]:
    keys = KeyRing(directory, rotation=30 * 86400.0, token_ttl=600, clock=time.time)
    profile = TokenProfile(
        issuer=ISSUER,
        audience=("home1.net",),
        wwsf="wwsf.home1.net",
        authorization_entity="webrtc_authserver1@thirdparty.net",
        ttl=600,
    )
    generator = AccessTokenGenerator(profile, keys, time.time)
    user = Grantee(
        "user1", ImsIdentity("user1_private@home1.net", ("sip:user1_public1@home1.net",))
    )
    made = [
        generator.make_access_token(_Client(), "authorization_code", user, "ims:register ims:call")
        for _ in range(count)
    ]
    return made, keys.jwks_json()


async def _run(tokens: list[str], jwks: bytes, seconds: float) -> tuple[int, float]:
    validator = TokenValidator(ISSUER, "home1.net", jwks_uri=ISSUER + "/jwks.json")
    validator.load_jwks(json.loads(jwks))
    for token in tokens[:200]:  # warm-up
        await validator.validate(token)
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for token in tokens:
            await validator.validate(token)
        done += len(tokens)
    elapsed = time.perf_counter() - start
    assert validator.jwks_fetches == 0
    await validator.aclose()
    return done, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    with tempfile.TemporaryDirectory() as tmp:
        tokens, jwks = _tokens(Path(tmp) / "waf", args.tokens)
    done, elapsed = asyncio.run(_run(tokens, jwks, args.seconds))
    rate = done / elapsed
    print(
        f"local token check: {rate:,.0f} checks/s on one core "
        f"({elapsed / done * 1e6:.0f} µs each, {done} checks) target >= {TARGET:,.0f}: "
        + ("met" if rate >= TARGET else "NOT met")
    )
    if args.json:
        print(json.dumps({"token_checks_per_s": round(rate), "us_per_check": elapsed / done * 1e6}))


if __name__ == "__main__":
    main()
