"""Step 1 of TS 24.371 Annex A.3.2 for the Python WIC: log in on the WWSF and
get an access token with the IMS identities it is for (SPEC §8 4).

The OAuth flow itself is :func:`webims.wic.token.fetch_token` (the one of
``webims token``); it is synchronous (httpx), so it runs in a thread here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from .token import TokenFlowError, fetch_token

__all__ = ["WebLogin", "default_ca", "web_login"]


@dataclass(frozen=True)
class WebLogin:
    """What the WWSF/WAF hands the WIC: the token and the identities."""

    access_token: str
    impi: str
    impus: tuple[str, ...]
    expires_in: int | None


def default_ca(settings: Settings) -> Path | None:
    """The deployment's dev CA when it exists (``<data_dir>/pki/ca.pem``), else
    None (the system's trust store)."""
    dev_ca = settings.data_dir / "pki" / "ca.pem"
    return dev_ca if dev_ca.exists() else None


def _login(base_url: str, user: str, password: str, ca: Path | None) -> WebLogin:
    body = fetch_token(base_url.rstrip("/"), user, password, ca=ca)
    impu = body.get("impu")
    impus = tuple(impu) if isinstance(impu, list) else ((impu,) if isinstance(impu, str) else ())
    if not impus:
        raise TokenFlowError("the token response names no IMPU")
    expires_in = body.get("expires_in")
    return WebLogin(
        body["access_token"],
        str(body.get("impi", "")),
        impus,
        int(expires_in) if isinstance(expires_in, int) else None,
    )


async def web_login(base_url: str, user: str, password: str, ca: Path | None) -> WebLogin:
    """Run the code + PKCE flow at the WWSF ``base_url``; raises :class:`TokenFlowError`."""
    return await asyncio.to_thread(_login, base_url, user, password, ca)
