"""HTTP(S) servers inside the running event loop, on uvicorn: the web
element (WWSF + WAF) and the HSS's provisioning API.

The socket is bound before the server starts, so a busy port is an
``OSError`` for the caller and port 0 picks a free one; uvicorn installs no
signal handlers (the process keeps its own) and runs no lifespan.  The TLS
context is the caller's (TLS 1.2+, the dev CA's certificate or a configured
one); ``ssl_context=None`` serves plain HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

__all__ = ["HttpServer"]


class HttpServer(uvicorn.Server):
    """One ASGI app on one socket; :meth:`start_serving` and :meth:`stop`."""

    def __init__(
        self, app: ASGIApp, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
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
