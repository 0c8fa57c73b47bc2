"""HTTP(S) servers inside the running event loop, on uvicorn: the web
element (WWSF + WAF) and the HSS's provisioning API.

The socket is bound before the server starts, so a busy port is an
``OSError`` for the caller and port 0 picks a free one; uvicorn installs no
signal handlers (the process keeps its own) and runs no lifespan.  The TLS
context is the caller's (TLS 1.2+, the dev CA's certificate or a configured
one); ``ssl_context=None`` serves plain HTTP.

Requests are parsed by httptools, which sets no bound on a request's head:
a client could make the server hold megabytes of request line and header
fields.  :class:`BoundedHeadProtocol` answers a head over
:data:`MAX_REQUEST_HEAD` bytes with 431 (RFC 6585 §5) and closes.  Nor does
uvicorn bound a body: :class:`BoundedBody` answers 413 (RFC 9110 §15.5.14)
to a body over :data:`MAX_REQUEST_BODY` bytes, announced or as it arrives,
before the application has read more than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "MAX_REQUEST_BODY",
    "MAX_REQUEST_HEAD",
    "BoundedBody",
    "BoundedHeadProtocol",
    "HttpServer",
]

#: The largest request head (request line and header fields) read, in bytes.
MAX_REQUEST_HEAD = 64 * 1024
#: The largest request body read, in bytes (forms, tokens, provisioning JSON).
MAX_REQUEST_BODY = 1024 * 1024


class _BodyTooLarge(Exception):
    pass


class BoundedBody:
    """ASGI middleware: 413 for a request body over ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int = MAX_REQUEST_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _too_large(send)  # (httptools has refused a malformed one already)
                return
        received = 0
        exceeded = False  # then the app's own answer (a 500, say) gives way to the 413
        answered = False

        async def bounded_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if not exceeded:
                await send(message)
            elif not answered:
                answered = True
                await _too_large(send)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, bounded_receive, guarded_send)
        if exceeded and not answered:
            await _too_large(send)


async def _too_large(send: Send) -> None:
    body = b"request body too large"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_TOO_LARGE = b"request header fields too large"


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over
    :data:`MAX_REQUEST_HEAD` bytes: 431, then the connection is closed.

    Bytes are counted while a head is being read; when a chunk would go
    over the bound, the parser gets only what the bound allows, and the rest
    only if the head ended within it (the body, or the next request)."""

    _in_head = True
    _head_bytes = 0

    def data_received(self, data: bytes) -> None:
        while self._in_head and self._head_bytes + len(data) > MAX_REQUEST_HEAD:
            allowed = MAX_REQUEST_HEAD - self._head_bytes
            self._head_bytes = MAX_REQUEST_HEAD
            super().data_received(data[:allowed])
            if self.transport.is_closing():
                return
            if self._reading_head():  # (the parser's callbacks change it)
                self._too_large()
                return
            data = data[allowed:]  # the head ended: on with its body or the next one
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)

    def _reading_head(self) -> bool:
        return self._in_head

    def _too_large(self) -> None:
        self._in_head = False
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE), _TOO_LARGE)
        )
        self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0


class HttpServer(uvicorn.Server):
    """One ASGI app on one socket; :meth:`start_serving` and :meth:`stop`."""

    def __init__(
        self, app: ASGIApp, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        config = uvicorn.Config(
            BoundedBody(app),
            host=host,
            port=port,
            lifespan="off",
            http=BoundedHeadProtocol,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        config.load()
        config.ssl = ssl_context  # uvicorn hands it to create_server as is
        super().__init__(config)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family)
        self.socket.setblocking(False)
        self.scheme = "https" if ssl_context is not None else "http"

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{shown}:{self.port}"

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the process's own handlers stay in place

    async def run_until_stopped(self) -> None:
        sockets = [self.socket]
        try:
            await self.serve(sockets=sockets)
        except asyncio.CancelledError:
            if self.started:
                self.should_exit = True
                await self.shutdown(sockets=sockets)
            raise
        finally:
            self.socket.close()

    async def start_serving(self) -> asyncio.Task[None]:
        """Serve in a task; returns once the server accepts connections."""
        task = asyncio.ensure_future(self.run_until_stopped())
        while not self.started:
            if task.done():
                task.result()  # raises what stopped it
                raise OSError(f"the HTTP server did not start on {self.url}")
            await asyncio.sleep(0.01)
        return task

    async def stop(self, task: asyncio.Task[None]) -> None:
        self.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)
