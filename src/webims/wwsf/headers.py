"""Security headers of every answer, and production's refusal of plain HTTP.

Every answer carries a CSP that lets the page run only this origin's scripts
and styles and connect only here and to the eP-CSCF's ``wss:`` URL (no
inline script, no framing, forms posting only here), ``X-Frame-Options:
DENY``, ``Referrer-Policy: no-referrer`` (a URL never leaks to another
site), ``X-Content-Type-Options: nosniff`` and ``Cross-Origin-Opener-Policy:
same-origin``.  In production (``[web] production = true``) also HSTS, and a
request that came over plain HTTP is refused (SPEC statement 1): a GET or
HEAD is redirected (308) to the same path at the https ``public_url``,
anything else gets 403 ``https_required``.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings

__all__ = ["SecurityHeaders", "content_security_policy"]


def content_security_policy(pcscf_url: str) -> str:
    """Scripts, styles and fetches of this origin only, plus the eP-CSCF's WebSocket."""
    parts = urlsplit(pcscf_url)
    ws_origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src 'self' {ws_origin}".rstrip(),
            "media-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """Adds the security headers to every answer; in production, refuses
    requests that did not come over HTTPS."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.production = settings.web.production
        self.public_url = settings.web.public_url.rstrip("/")
        headers = [
            ("content-security-policy", content_security_policy(settings.web.pcscf_url)),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("x-content-type-options", "nosniff"),
            ("cross-origin-opener-policy", "same-origin"),
        ]
        if self.production:
            headers.append(("strict-transport-security", "max-age=31536000"))
        self.headers = [(k.encode(), v.encode()) for k, v in headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        if self.production and scope.get("scheme") != "https":
            await self._refuse_plain(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)

    async def _refuse_plain(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response
        if scope.get("method") in ("GET", "HEAD"):
            path = quote(scope.get("path", "/"), safe="/%:@!$&'()*+,;=-._~")
            query = scope.get("query_string", b"").decode("latin-1")
            target = self.public_url + path + (f"?{query}" if query else "")
            response = RedirectResponse(target, status_code=308)
        else:
            response = JSONResponse(
                {"error": "https_required", "error_description": "this WWSF serves HTTPS only"},
                status_code=403,
            )
        await response(scope, receive, send)
