"""The HSS provisioning API: JSON over HTTP, on FastAPI and uvicorn.

Resources (every one needs the key in ``X-API-Key``; ``/openapi.json``, the
generated description, does not)::

    GET    /subscribers                 every subscriber
    POST   /subscribers                 add one            201, 409 if taken
    GET    /subscribers/{name}          one                404 if unknown
    PUT    /subscribers/{name}          replace its data   404 if unknown
    DELETE /subscribers/{name}          remove it          404 if unknown
    POST   /publics/{impu}/bar          bar one IMPU       404 if unknown
    POST   /publics/{impu}/unbar        unbar it           (IMPU URL-encoded)
    POST   /subscribers/{name}/deregister
                                        network-initiated  202, 409 if no S-CSCF
                                        deregistration     is assigned

Bodies are :class:`~webims.hss.provisioning.NewSubscriber` (POST) and
:class:`SubscriberUpdate` (PUT); answers are
:class:`~webims.hss.provisioning.SubscriberView`, which never holds a
password or an HA1.  Every error is ``{"error": code, "detail": text}`` with
its status (401, 404, 409, 422, 503), and a request that fails changes
nothing: each change is one store transaction.

``deregister`` is the operator's administrative deregistration in the HSS
(TS 29.228 §6.1.3, Registration-Termination): its body is a
:class:`DeregisterRequest` (the Deregistration-Reason, optionally the IMPUs
whose implicit registration sets go); the identities become not registered at
once and the RTR goes to the assigned S-CSCF in the background, hence 202.
It exists only when :func:`create_app` is given a :data:`Deregistration`
(the running HSS element hands its own).  :func:`request_deregistration` is
its client (``webims subscriber deregister``: an RTR needs the running HSS's
Cx connection, so the command line cannot do it on the store alone).

The key is checked in a middleware, before the body is even read, and
compared in constant time.  :func:`resolve_api_key` finds it: from the
configuration, or from the key file it makes (mode 0600) on first start.

:func:`serve_api` runs the app with uvicorn inside the caller's event loop,
beside the HSS's Diameter listener: no signal handlers of its own (the
process keeps its own), no lifespan, and it stops when its task is
cancelled or when ``should_exit`` is set on the :class:`ApiServer` handed to
``ready``.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, FastAPI, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..diameter.cxdefs import DeregistrationReason
from ..transport.http import HttpServer
from .model import InvalidSubscriber
from .provisioning import (
    NewSubscriber,
    SubscriberFields,
    SubscriberView,
    WebUser,
    describe_errors,
)
from .store import StoreError, SubscriberExists, SubscriberNotFound, SubscriberStore

__all__ = [
    "API_KEY_FILE",
    "API_KEY_HEADER",
    "DEREGISTRATION_REASONS",
    "ApiKey",
    "ApiKeyError",
    "ApiRefusal",
    "ApiServer",
    "DeregisterRequest",
    "Deregistration",
    "NotRegistered",
    "SubscriberUpdate",
    "client_key",
    "create_app",
    "request_deregistration",
    "resolve_api_key",
    "serve_api",
]

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
API_KEY_FILE = "hss-api-key"
_PUBLIC_PATHS = frozenset({"/openapi.json"})


class SubscriberUpdate(SubscriberFields):
    """A PUT body: the fields, and the name if the client repeats it (it
    must then be the one in the path)."""

    name: WebUser | None = None


#: Deregistration-Reason names the deregistration resource takes (TS 29.229 §6.3.17).
DEREGISTRATION_REASONS = (
    "permanent_termination",
    "new_server_assigned",
    "server_change",
    "remove_scscf",
)


class DeregisterRequest(BaseModel):
    """The body of ``POST /subscribers/{name}/deregister``: the
    Deregistration-Reason's Reason-Code (TS 29.229 §6.3.17, by name) and the
    IMPUs whose implicit registration sets are deregistered (all when absent)."""

    model_config = ConfigDict(extra="forbid")

    reason: Literal["permanent_termination", "new_server_assigned", "server_change", "remove_scscf"]
    impus: list[str] | None = None

    @property
    def reason_code(self) -> DeregistrationReason:
        if self.reason == "remove_scscf":
            return DeregistrationReason.REMOVE_S_CSCF
        return DeregistrationReason[self.reason.upper()]


#: Deregister subscriber ``name`` (the IMPUs' sets, or all when None) in the HSS
#: and send the RTR with the reason; False, changing nothing, when no S-CSCF
#: is assigned.  Raises :class:`~webims.hss.store.SubscriberNotFound`.
Deregistration = Callable[[str, DeregistrationReason, Sequence[str] | None], Awaitable[bool]]


class NotRegistered(Exception):
    """A deregistration for a subscriber that no S-CSCF serves."""


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def create_app(
    store: SubscriberStore, api_key: str, *, deregister: Deregistration | None = None
) -> FastAPI:
    """The provisioning API over ``store``, guarded by ``api_key``; with
    ``deregister``, the operator's deregistration resource too."""
    if not api_key:
        raise ValueError("the provisioning API needs a non-empty key")
    expected = api_key.encode()
    app = FastAPI(
        title="webims HSS provisioning",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )

    @app.middleware("http")
    async def require_key(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path not in _PUBLIC_PATHS:
            given = request.headers.get(API_KEY_HEADER)
            # compare_digest takes as long for a wrong key as for a right one.
            if given is None or not hmac.compare_digest(given.encode(), expected):
                return _error(401, "unauthorized", f"missing or wrong {API_KEY_HEADER} header")
        return await call_next(request)

    _install_error_handlers(app)
    app.include_router(_routes(store))
    if deregister is not None:
        app.include_router(_deregistration_route(store, deregister))
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def exists(_: Request, exc: Exception) -> Response:
        return _error(409, "exists", str(exc))

    async def not_found(_: Request, exc: Exception) -> Response:
        return _error(404, "not_found", str(exc))

    async def invalid(_: Request, exc: Exception) -> Response:
        return _error(422, "invalid", str(exc))

    async def store_failed(_: Request, exc: Exception) -> Response:
        log.error("provisioning: store error: %s", exc)
        return _error(503, "store_unavailable", str(exc))

    async def not_registered(_: Request, exc: Exception) -> Response:
        return _error(409, "not_registered", str(exc))

    async def bad_request(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _error(422, "invalid", describe_errors(exc.errors()))

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    app.add_exception_handler(SubscriberExists, exists)
    app.add_exception_handler(SubscriberNotFound, not_found)
    app.add_exception_handler(NotRegistered, not_registered)
    app.add_exception_handler(InvalidSubscriber, invalid)
    app.add_exception_handler(StoreError, store_failed)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _routes(store: SubscriberStore) -> APIRouter:
    # The scheme is declared for the OpenAPI document; the middleware enforces it.
    scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)
    router = APIRouter(dependencies=[Security(scheme)])
    errors: dict[int | str, dict[str, str]] = {
        401: {"description": "Missing or wrong API key"},
        404: {"description": "No such subscriber or identity"},
        409: {"description": "A name, IMPI or IMPU is already provisioned"},
        422: {"description": "Invalid request"},
    }

    async def fetch(name: str) -> SubscriberView:
        sub = await store.get(name)
        if sub is None:
            raise SubscriberNotFound(f"no subscriber {name!r}")
        return SubscriberView.of(sub)

    @router.get("/subscribers", responses=errors)
    async def list_subscribers() -> list[SubscriberView]:
        views = []
        for name in await store.names():
            sub = await store.get(name)
            if sub is not None:  # removed meanwhile
                views.append(SubscriberView.of(sub))
        return views

    @router.post("/subscribers", status_code=201, responses=errors)
    async def add_subscriber(body: NewSubscriber, response: Response) -> SubscriberView:
        await store.add(body.subscriber())
        response.headers["Location"] = f"/subscribers/{quote(body.name, safe='')}"
        return await fetch(body.name)

    @router.get("/subscribers/{name}", responses=errors)
    async def get_subscriber(name: str) -> SubscriberView:
        return await fetch(name)

    @router.put("/subscribers/{name}", responses=errors)
    async def replace_subscriber(
        name: str, body: Annotated[SubscriberUpdate, Body()]
    ) -> SubscriberView:
        if body.name is not None and body.name != name:
            raise InvalidSubscriber(f"the body names {body.name!r}, the path {name!r}")
        existing = await store.get(name)
        if existing is None:
            raise SubscriberNotFound(f"no subscriber {name!r}")
        # A Cx registration landing between this read and the write would be
        # undone by it; provisioning changes are rare enough to accept that.
        await store.replace(body.build(name, existing))
        return await fetch(name)

    @router.delete("/subscribers/{name}", responses=errors)
    async def remove_subscriber(name: str) -> SubscriberView:
        return SubscriberView.of(await store.remove(name))

    @router.post("/publics/{impu:path}/bar", responses=errors)
    async def bar(impu: str) -> SubscriberView:
        return SubscriberView.of(await store.set_barred(impu, True))

    @router.post("/publics/{impu:path}/unbar", responses=errors)
    async def unbar(impu: str) -> SubscriberView:
        return SubscriberView.of(await store.set_barred(impu, False))

    return router


def _deregistration_route(store: SubscriberStore, deregister: Deregistration) -> APIRouter:
    scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)
    router = APIRouter(dependencies=[Security(scheme)])
    errors: dict[int | str, dict[str, str]] = {
        401: {"description": "Missing or wrong API key"},
        404: {"description": "No such subscriber, or the IMPU is not one of its"},
        409: {"description": "No S-CSCF is assigned: nothing to deregister"},
        422: {"description": "Invalid request"},
    }

    @router.post("/subscribers/{name}/deregister", status_code=202, responses=errors)
    async def deregister_subscriber(name: str, body: DeregisterRequest) -> SubscriberView:
        """Network-initiated deregistration (TS 29.228 §6.1.3): the identities
        are not registered from now on; the RTR is on its way to the S-CSCF."""
        if not await deregister(name, body.reason_code, body.impus):
            raise NotRegistered(f"{name!r} is not registered at any S-CSCF")
        sub = await store.get(name)
        if sub is None:  # removed meanwhile
            raise SubscriberNotFound(f"no subscriber {name!r}")
        return SubscriberView.of(sub)

    return router


# -- the key ----------------------------------------------------------------------


class ApiKeyError(Exception):
    """The key file cannot be made or read safely."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    value: str
    #: The file it is kept in; None when it comes from the configuration.
    path: Path | None
    #: Whether this start made it.
    created: bool

    def describe(self) -> str:
        if self.path is None:
            return "provisioning API key: from the configuration"
        made = "new, " if self.created else ""
        return f"provisioning API key: in {self.path} ({made}mode 0600)"


def resolve_api_key(configured: str | None, data_dir: Path) -> ApiKey:
    """The configured key, else the one in ``<data_dir>/hss-api-key``, made
    there (random, mode 0600) if the file does not exist yet."""
    if configured:
        return ApiKey(configured, None, False)
    path = data_dir / API_KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return ApiKey(_read_key(path), path, False)
    except OSError as err:
        raise ApiKeyError(f"cannot create {path}: {err.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return ApiKey(value, path, True)


def _read_key(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ApiKeyError(f"{path} is open to other users; chmod 600 it")
        value = path.read_text().strip()
    except OSError as err:
        raise ApiKeyError(f"cannot read {path}: {err.strerror}") from None
    if len(value) < 16:
        raise ApiKeyError(f"{path} holds no key of at least 16 characters")
    return value


# -- a client of the running HSS's API ---------------------------------------------


class ApiRefusal(Exception):
    """The running HSS's API refused a request, or could not be reached
    (``status`` 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def client_key(configured: str | None, data_dir: Path) -> str:
    """The key a client of the running HSS sends: the configured one, else
    the one in ``<data_dir>/hss-api-key`` (which only the HSS makes)."""
    if configured:
        return configured
    path = data_dir / API_KEY_FILE
    if not path.exists():
        raise ApiKeyError(f"no {path}: the HSS makes it on its first start")
    return _read_key(path)


def request_deregistration(
    host: str,
    port: int,
    key: str,
    name: str,
    *,
    reason: str,
    impus: Sequence[str] | None = None,
    timeout: float = 10.0,
) -> SubscriberView:
    """``POST /subscribers/{name}/deregister`` at the HSS listening on
    ``host``:``port`` (a wildcard host is reached on the loopback); the
    subscriber as the HSS then sees it.  Raises :class:`ApiRefusal`."""
    import httpx  # noqa: PLC0415 (only the command line is a client)

    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    body: dict[str, object] = {"reason": reason}
    if impus:
        body["impus"] = list(impus)
    try:
        answer = httpx.post(
            f"{url}/subscribers/{quote(name, safe='')}/deregister",
            json=body,
            headers={API_KEY_HEADER: key},
            timeout=timeout,
        )
    except httpx.HTTPError as err:
        raise ApiRefusal(0, f"the HSS's API at {url} cannot be reached ({err})") from None
    if answer.status_code != 202:
        try:
            error = answer.json()
            message = f"{error['error']}: {error['detail']}"
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {answer.status_code}"
        raise ApiRefusal(answer.status_code, message)
    return SubscriberView.model_validate(answer.json())


# -- serving ----------------------------------------------------------------------


#: The server :func:`serve_api` hands to ``ready`` (plain HTTP).
ApiServer = HttpServer


async def serve_api(
    app: FastAPI,
    host: str,
    port: int,
    *,
    ready: Callable[[ApiServer], None] | None = None,
) -> None:
    """Serve ``app`` on ``host``:``port`` until cancelled, or until
    ``should_exit`` is set on the server handed to ``ready`` (called once the
    socket is bound, so ``server.port`` tells an ephemeral port)."""
    server = HttpServer(app, host, port)
    if ready is not None:
        ready(server)
    await server.run_until_stopped()
