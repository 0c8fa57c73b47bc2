"""The web app of the co-located WWSF + WAF: one HTTPS origin (Starlette).

Routes::

    GET  /                    the WIC (webims/wic/static/index.html), or a placeholder
    GET  /callback            the WIC again (it reads the authorisation code)
    GET  /static/…            the WIC's files;  /wwsf/static/… this package's
    GET  /login?next=PATH     the login form, with the session's CSRF token
    POST /login               username, password, csrf_token, next -> 303 to next
    POST /guest               csrf_token, next: a pool identity (TS 33.203 X.4) -> 303
    POST /logout              csrf_token (form or X-CSRF-Token) -> tokens revoked, 303 /login
    GET  /api/config          JSON: what the WIC needs (URLs, client id, scope, csrf_token)
    GET  /trace               the last registration of the user's IMPUs as a ladder
                              (logged-in users, not in production; webims.observe.web)
    GET  /favicon.ico         204 (no icon)
    …                         the WAF's routes (/authorize, /token, /introspect, /revoke,
                              /.well-known/oauth-authorization-server, /jwks.json)

The WAF is built by ``waf_factory`` from the two callables the WWSF lends it
(:meth:`Wwsf.current_user`, :meth:`Wwsf.resolve_identity`), and mounted here.

Login rules: the CSRF token of the form must be the one of the session the
cookie names (compared in constant time), else 403 and nothing changes;
``next`` must be a path on this origin (``/…``, never ``//host`` or a URL),
else 400; failed logins are limited per user and per address (429 with
``Retry-After``, :mod:`.limits`); a wrong password and an unknown user get
the same answer (401, same page, same time).  A successful login starts a
new session (:mod:`.sessions`).  Guests take pool identities within a limit
per client address (429).  A form body needs a Content-Length (411) of at
most :data:`MAX_FORM_BYTES` (413), checked before it is read.

Every answer carries the security headers of :mod:`.headers`, which also
refuses plain HTTP in production (SPEC statement 1).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..config import Settings
from ..observe.trace import TraceRecorder
from ..observe.web import trace_endpoint
from ..waf.identity import CurrentUser, ImsIdentity, ResolveIdentity
from .accounts import AccountStore
from .db import WwsfDatabase
from .headers import SecurityHeaders
from .limits import LoginLimiter
from .pool import IdentityPool, PoolExhausted, PoolPair, is_guest
from .sessions import COOKIE_NAME, Session, SessionStore

__all__ = [
    "CLIENT_ID",
    "SCOPE",
    "WafFactory",
    "WafLike",
    "Wwsf",
    "create_web_app",
    "safe_next",
    "wic_static_dir",
]

log = logging.getLogger(__name__)

#: The WIC as an OAuth client of the WAF, and what it asks for (contract).
CLIENT_ID = "wic"
SCOPE = "ims:register ims:call"

_HERE = Path(__file__).parent
_TEMPLATES = _HERE / "templates"
_OWN_STATIC = _HERE / "static"


def wic_static_dir() -> Path:
    """Where the WIC's browser files are (the ``webims.wic`` package)."""
    return _HERE.parent / "wic" / "static"


class WafLike(Protocol):
    """What the WWSF needs of the WAF."""

    def routes(self) -> Sequence[BaseRoute]: ...

    async def revoke_user_tokens(self, web_user: str) -> int: ...

    async def close(self) -> None: ...


#: Builds the WAF from the WWSF's ``current_user`` and ``resolve_identity``.
WafFactory = Callable[[CurrentUser, ResolveIdentity], WafLike]


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a path on this origin, ``"/"`` if empty, else None.

    Refused: anything with a scheme or a host (``https://x``, ``//x``),
    backslashes (``/\\x`` is ``//x`` to some browsers), control characters
    and whitespace, and anything not starting with ``/``.
    """
    if not value:
        return "/"
    if len(value) > 4096 or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


#: The largest form body taken (the forms here are a few hundred bytes).
MAX_FORM_BYTES = 16 * 1024


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


@dataclass
class Wwsf:
    """The WWSF's state and handlers; :func:`create_web_app` wires them."""

    settings: Settings
    accounts: AccountStore
    pool: IdentityPool
    sessions: SessionStore
    limiter: LoginLimiter
    guest_limiter: LoginLimiter
    templates: Jinja2Templates
    waf: WafLike | None = None
    #: The web element's message trace (``webims trace``); None: not recorded.
    tracer: TraceRecorder | None = None

    # -- what the WAF is lent ---------------------------------------------------------

    def session_of(self, request: Request) -> Session | None:
        return self.sessions.from_cookie(request.cookies.get(COOKIE_NAME))

    async def current_user(self, request: Request) -> str | None:
        """The logged-in web user of the request's session cookie, or None."""
        session = self.session_of(request)
        return session.user if session is not None else None

    async def resolve_identity(self, web_user: str) -> ImsIdentity | None:
        """The IMS identities of ``web_user``: its account's, or for a guest
        the pool pair it holds (renewed: tokens may be issued for it now)."""
        if is_guest(web_user):
            return self.pool.identity(web_user)
        account = self.accounts.get(web_user)
        if account is None or account.impi is None or not account.impus:
            return None
        return ImsIdentity(account.impi, account.impus)

    # -- answers ----------------------------------------------------------------------

    def _cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE_NAME,
            self.sessions.cookie_value(session),
            max_age=int(self.sessions.lifetime),
            path="/",
            secure=True,
            httponly=True,
            samesite="lax",
        )

    def _drop_cookie(self, response: Response) -> None:
        response.delete_cookie(COOKIE_NAME, path="/", secure=True, httponly=True, samesite="lax")

    def page(
        self, request: Request, name: str, status_code: int = 200, **context: object
    ) -> Response:
        context.setdefault("domain", self.settings.sip.domain)
        response = self.templates.TemplateResponse(request, name, context, status_code=status_code)
        response.headers["Cache-Control"] = "no-store"
        return response

    def error(
        self,
        request: Request,
        status: int,
        title: str,
        detail: str,
        *,
        code: str = "error",
        headers: dict[str, str] | None = None,
    ) -> Response:
        if _wants_json(request) or request.url.path.startswith("/api/"):
            response: Response = JSONResponse(
                {"error": code, "error_description": detail}, status_code=status
            )
            response.headers["Cache-Control"] = "no-store"
        else:
            response = self.page(
                request, "error.html", status, status=status, title=title, detail=detail
            )
        response.headers.update(headers or {})
        return response

    def _login_form(
        self,
        request: Request,
        session: Session,
        next_path: str,
        *,
        status: int = 200,
        error: str = "",
        username: str = "",
        headers: dict[str, str] | None = None,
    ) -> Response:
        response = self.page(
            request,
            "login.html",
            status,
            csrf_token=session.csrf,
            next=next_path,
            error=error,
            username=username,
            guests=self.pool.size > 0,
        )
        response.headers.update(headers or {})
        return response

    async def _form(self, request: Request) -> FormData | Response:
        """The request's form, or the error answer for a body that is missing
        its length or too large (read no further)."""
        length = request.headers.get("content-length", "")
        if not (length.isascii() and length.isdigit()):
            return self.error(
                request,
                411,
                "Length required",
                "A form needs a Content-Length.",
                code="invalid_request",
            )
        if int(length) > MAX_FORM_BYTES:
            return self.error(
                request,
                413,
                "Too large",
                f"A form here has at most {MAX_FORM_BYTES} bytes.",
                code="invalid_request",
            )
        return await request.form()

    def _bad_next(self, request: Request) -> Response:
        return self.error(
            request,
            400,
            "Bad request",
            "The page to return to must be a path on this site.",
            code="invalid_request",
        )

    def _csrf_refused(self, request: Request) -> Response:
        return self.error(
            request,
            403,
            "Forbidden",
            "The form was not sent from this site's page (CSRF check failed); reload it.",
            code="csrf",
        )

    # -- handlers ---------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        next_path = safe_next(request.query_params.get("next"))
        if next_path is None:
            return self._bad_next(request)
        session = self.session_of(request)
        if session is not None and session.user is not None:
            return RedirectResponse(next_path, status_code=303)
        fresh = session is None
        if session is None:
            session = self.sessions.new()
        response = self._login_form(request, session, next_path)
        if fresh:
            self._cookie(response, session)
        return response

    async def login(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        session = self.session_of(request)
        if session is None or not session.csrf_matches(_field(form, "csrf_token")):
            return self._csrf_refused(request)
        next_path = safe_next(_field(form, "next"))
        if next_path is None:
            return self._bad_next(request)
        username, password = _field(form, "username"), _field(form, "password")
        keys = self.limiter.keys(username, _client_address(request))
        wait = self.limiter.retry_after(keys)
        if wait is not None:
            return self._login_form(
                request,
                session,
                next_path,
                status=429,
                error=f"Too many failed logins; try again in {wait} s.",
                username=username,
                headers={"Retry-After": str(wait)},
            )
        stored = self.accounts.password_hash(username) if username else None
        check = await asyncio.to_thread(self.accounts.check_password, stored, password)
        if self.tracer is not None:
            self.tracer.http(request, 303 if check.ok else 401, username)
        if not check.ok:
            self.limiter.record(keys)
            log.info("failed login for %r from %s", username, _client_address(request))
            return self._login_form(
                request,
                session,
                next_path,
                status=401,
                error="Wrong web user or password.",
                username=username,
            )
        if check.rehash is not None:
            self.accounts.update_hash(username, check.rehash)
        self.limiter.clear(keys[0])
        return self._start_session(session, username, next_path)

    def _start_session(self, old: Session, user: str, next_path: str) -> Response:
        self.sessions.end(old)
        session = self.sessions.new(user)
        response = RedirectResponse(next_path, status_code=303)
        response.headers["Cache-Control"] = "no-store"
        self._cookie(response, session)
        return response

    async def guest(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        session = self.session_of(request)
        given = _field(form, "csrf_token") or request.headers.get("x-csrf-token", "")
        if session is None or not session.csrf_matches(given):
            return self._csrf_refused(request)
        next_path = safe_next(_field(form, "next"))
        if next_path is None:
            return self._bad_next(request)
        if self.pool.size == 0:
            return self.error(
                request, 403, "No guests", "This WWSF admits no guests.", code="access_denied"
            )
        held = session.user
        if held is not None and is_guest(held) and self.pool.identity(held, renew=False):
            return RedirectResponse(next_path, status_code=303)
        lends = (f"guest:{_client_address(request)}",)
        wait = self.guest_limiter.retry_after(lends)
        if wait is not None:
            return self.error(
                request,
                429,
                "Too many guests",
                f"This address took its share of guest identities; try again in {wait} s.",
                code="slow_down",
                headers={"Retry-After": str(wait)},
            )
        name = self.pool.new_guest_name()
        try:
            self.pool.lend(name)
        except PoolExhausted as err:
            return self.error(
                request,
                503,
                "No identity free",
                f"Every guest identity is in use ({err}).",
                code="temporarily_unavailable",
                headers={"Retry-After": "60"},
            )
        self.guest_limiter.record(lends)
        return self._start_session(session, name, next_path)

    async def logout(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        session = self.session_of(request)
        revoked = 0
        user = None
        if session is not None:
            given = _field(form, "csrf_token") or request.headers.get("x-csrf-token", "")
            if not session.csrf_matches(given):
                return self._csrf_refused(request)
            user = session.user
            self.sessions.end(session)
            if user is not None:
                self.sessions.end_user(user)
                if self.waf is not None:
                    revoked = await self.waf.revoke_user_tokens(user)
                if is_guest(user):
                    self.pool.give_back(user)
        response: Response
        if _wants_json(request):
            response = JSONResponse({"logged_out": user, "revoked_tokens": revoked})
        else:
            response = RedirectResponse("/login", status_code=303)
        response.headers["Cache-Control"] = "no-store"
        self._drop_cookie(response)
        return response

    async def config(self, request: Request) -> Response:
        web = self.settings.web
        base = web.public_url.rstrip("/")
        body: dict[str, object] = {
            "pcscf_url": web.pcscf_url,
            "domain": self.settings.sip.domain,
            "client_id": CLIENT_ID,
            "authorize_url": f"{base}/authorize",
            "token_url": f"{base}/token",
            "redirect_uri": f"{base}/callback",
            "scope": SCOPE,
            "logout_url": f"{base}/logout",
            "guests": self.pool.size > 0,
        }
        session = self.session_of(request)
        if session is not None:
            body["csrf_token"] = session.csrf
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def wic(self, request: Request) -> Response:
        index = wic_static_dir() / "index.html"
        if index.is_file():
            return FileResponse(index, headers={"Cache-Control": "no-cache"})
        return self.page(request, "placeholder.html")

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        titles = {404: "Not found", 405: "Method not allowed"}
        return self.error(
            request,
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            str(exc.detail),
            code="not_found" if exc.status_code == 404 else "http_error",
            headers=dict(exc.headers or {}),
        )


def create_web_app(
    settings: Settings,
    db: WwsfDatabase,
    *,
    session_key: bytes,
    waf_factory: WafFactory | None = None,
    token_ttl: float = 600.0,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The WWSF (+ the WAF ``waf_factory`` builds) over the database ``db``.

    ``app.state.wwsf`` is the :class:`Wwsf`.  ``token_ttl`` is the WAF's
    access-token lifetime: a pool pair given back stays out of the pool
    until the tokens issued for it have expired.
    """
    web = settings.web
    if web.production and not web.public_url.startswith("https://"):
        raise ValueError("[web] production = true needs an https:// public_url")
    pool = IdentityPool(
        db,
        [PoolPair(p.impi, p.impu) for p in web.pool],
        lease=max(web.pool_lease, token_ttl + 180),
        token_ttl=token_ttl,
        clock=clock,
    )
    wwsf = Wwsf(
        settings=settings,
        accounts=AccountStore(db, clock=clock),
        pool=pool,
        sessions=SessionStore(session_key, web.session_lifetime, clock=clock),
        limiter=LoginLimiter(web.login_failures, web.login_window),
        guest_limiter=LoginLimiter(web.guest_lends, web.login_window),
        templates=Jinja2Templates(directory=str(_TEMPLATES)),
    )
    if waf_factory is not None:
        wwsf.waf = waf_factory(wwsf.current_user, wwsf.resolve_identity)
    routes: list[BaseRoute] = [*(wwsf.waf.routes() if wwsf.waf is not None else [])]
    routes += [
        Route("/", wwsf.wic, methods=["GET", "HEAD"]),
        Route("/callback", wwsf.wic, methods=["GET", "HEAD"]),
        Route("/login", wwsf.login_page, methods=["GET", "HEAD"]),
        Route("/login", wwsf.login, methods=["POST"]),
        Route("/guest", wwsf.guest, methods=["POST"]),
        Route("/logout", wwsf.logout, methods=["POST"]),
        Route("/api/config", wwsf.config, methods=["GET", "HEAD"]),
        Route("/trace", trace_endpoint(wwsf), methods=["GET", "HEAD"]),
        # Browsers ask for it on every page; no icon, and no 404 in their console.
        Route("/favicon.ico", lambda _: Response(status_code=204), methods=["GET", "HEAD"]),
        Mount("/wwsf/static", StaticFiles(directory=_OWN_STATIC), name="wwsf-static"),
        Mount(
            "/static", StaticFiles(directory=wic_static_dir(), check_dir=False), name="wic-static"
        ),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: wwsf.http_error})
    app.add_middleware(SecurityHeaders, settings=settings)
    app.state.wwsf = wwsf
    return app
