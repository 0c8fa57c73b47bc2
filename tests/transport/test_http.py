"""The HTTP(S) server of the web element and the HSS API (transport/http.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from webims.transport.http import MAX_REQUEST_BODY, MAX_REQUEST_HEAD, HttpServer


async def _echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"{request.url.path} {len(body)}")


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[int]:
    app = Starlette(routes=[Route("/{p:path}", _echo, methods=["GET", "POST"])])
    server = HttpServer(app, "127.0.0.1", 0)
    task = await server.start_serving()
    try:
        yield server.port
    finally:
        await server.stop(task)


async def exchange(port: int, data: bytes) -> bytes:
    """What the server sends for ``data`` until it closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    got = b""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(2):
            while chunk := await reader.read(65536):
                got += chunk
    writer.close()
    return got


def get(path: str, extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"


async def test_a_request_head_over_the_bound_gets_431_and_the_connection_closes() -> None:
    async with serving() as port:
        big = b"X-Big: " + b"a" * MAX_REQUEST_HEAD + b"\r\n"
        answer = await exchange(port, get("/", big))
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert answer.count(b"HTTP/1.1") == 1  # nothing after it: closed
        long_url = await exchange(port, get("/" + "u" * (2 * MAX_REQUEST_HEAD)))
        assert long_url.startswith(b"HTTP/1.1 431 ")


async def test_heads_within_the_bound_bodies_and_pipelining_are_served() -> None:
    async with serving() as port:
        near = b"X-Near: " + b"a" * (MAX_REQUEST_HEAD - 1024) + b"\r\n"
        assert (await exchange(port, get("/near", near + b"Connection: close\r\n"))).startswith(
            b"HTTP/1.1 200 "
        )
        # A body larger than the head bound is not a head; three requests in a row.
        body = b"b" * (2 * MAX_REQUEST_HEAD)
        post = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        answer = await exchange(port, post + get("/one") + get("/two", b"Connection: close\r\n"))
        assert answer.count(b"HTTP/1.1 200 ") == 3, answer[:300]
        assert b"/p %d" % len(body) in answer and b"/one 0" in answer and b"/two 0" in answer


async def test_a_body_over_the_bound_gets_413_before_the_app_reads_it_all() -> None:
    async with serving() as port:
        body = b"b" * (MAX_REQUEST_BODY + 1)
        announced = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        answer = await exchange(port, announced + body)
        assert answer.startswith(b"HTTP/1.1 413 ")
        chunked = b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunks = b"".join(b"%x\r\n%s\r\n" % (65536, b"c" * 65536) for _ in range(17))
        answer = await exchange(port, chunked + chunks + b"0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 413 ")
        fits = b"b" * MAX_REQUEST_BODY
        post = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        answer = await exchange(port, post % len(fits) + fits)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"/p %d" % len(fits) in answer
