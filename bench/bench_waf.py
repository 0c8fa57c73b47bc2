"""WAF throughput over real HTTP, and the local token check a resource server does.

Targets (issue 4), each on one core:
- token issuance >= 300/s: one issuance is the whole code exchange a WIC does, GET
  /authorize (session cookie, PKCE S256 challenge) answered by a redirect with a code,
  then POST /token with the verifier; also reported, /token alone with codes made first;
- introspection >= 2,000/s: POST /introspect with HTTP Basic, a live token each time;
- local JWT verification >= 5,000/s: what the eP-CSCF does with the JWKS key, with
  joserfc (ES256, key picked by ``kid``, claims parsed).

The WAF runs in its own process (this file with ``--serve``: ``Waf.routes()`` in a bare
Starlette app with a bench login route, uvicorn, uvloop), pinned to CPU 0, over plain HTTP
on 127.0.0.1; this process, the client, is pinned to CPU 1 and speaks HTTP/1.1 on
keep-alive connections with a few lines of asyncio (an HTTP library would be the
bottleneck, not the WAF).  The server's CPU time is read from /proc, so each rate is
also given per core-second of the server.

Prints each figure with its target, and with ``--json`` one JSON line last.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TICK = os.sysconf("SC_CLK_TCK")
COOKIE = "bench_session"
COOKIE_KEY = b"bench-cookie-key-not-a-secret"
SECRET = "bench-resource-server-secret-0123456789"


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


# -- the server ---------------------------------------------------------------------


def serve(port: int, data_dir: Path) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from webims.waf import ImsIdentity, Waf, WafConfig

    pin(0)
    base = f"http://127.0.0.1:{port}"

    async def current_user(request: Request) -> str | None:
        user, _, mac = request.cookies.get(COOKIE, "").rpartition(".")
        good = hmac.new(COOKIE_KEY, user.encode(), "sha256").hexdigest()
        return user if user and hmac.compare_digest(mac, good) else None

    async def resolve_identity(web_user: str) -> ImsIdentity | None:
        return ImsIdentity(f"{web_user}_private@home1.net", (f"sip:{web_user}_public1@home1.net",))

    config = WafConfig(issuer=base, resource_servers=(("pcscf", SECRET),))
    waf = Waf(config, data_dir, current_user, resolve_identity)

    async def login(request: Request) -> Response:
        user = request.query_params["user"]
        mac = hmac.new(COOKIE_KEY, user.encode(), "sha256").hexdigest()
        response = PlainTextResponse("ok")
        response.set_cookie(COOKIE, f"{user}.{mac}")
        return response

    app = Starlette(routes=[*waf.routes(), Route("/bench-login", login)])
    print("ready", flush=True)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


# -- a small HTTP/1.1 client --------------------------------------------------------


class Connection:
    """One keep-alive connection; ``request`` sends and reads one response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.cookie = ""

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
        if self.cookie:
            head += f"Cookie: {self.cookie}\r\n"
        if method == "POST":
            head += "Content-Type: application/x-www-form-urlencoded\r\n"
            head += f"Content-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        content = await self.reader.readexactly(int(fields.get("content-length", "0")))
        if "set-cookie" in fields:
            self.cookie = fields["set-cookie"].split(";", 1)[0]
        return status, fields, content

    def close(self) -> None:
        self.writer.close()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


class Wic:
    """What a WIC does on one connection, logged in as ``user``."""

    def __init__(self, conn: Connection, base: str) -> None:
        self.conn = conn
        self.redirect_uri = base + "/callback"

    async def code(self) -> tuple[str, str]:
        verifier, challenge = pkce()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": "wic",
                "redirect_uri": self.redirect_uri,
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        status, fields, _ = await self.conn.request("GET", "/authorize?" + query)
        if status != 302:
            raise RuntimeError(f"/authorize answered {status}")
        return parse_qs(urlsplit(fields["location"]).query)["code"][0], verifier

    async def exchange(self, code: str, verifier: str) -> dict[str, object]:
        form = urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "client_id": "wic",
                "code_verifier": verifier,
            }
        ).encode()
        status, _, body = await self.conn.request("POST", "/token", form)
        if status != 200:
            raise RuntimeError(f"/token answered {status}: {body!r}")
        result: dict[str, object] = json.loads(body)
        return result


# -- the phases ---------------------------------------------------------------------


async def closed_loop(
    label: str,
    calls: list[Callable[[], Awaitable[object]]],
    *,
    seconds: float,
    server_pid: int,
    target: float,
    unit: str = "",
) -> dict[str, float]:
    """Each callable in ``calls`` runs back to back on its own connection for ``seconds``."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(call: Callable[[], Awaitable[object]]) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await call()
            done += 1

    cpu0 = cpu_seconds(server_pid)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in calls))
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(server_pid) - cpu0
    rate = done / elapsed
    per_core = done / cpu if cpu else float("inf")
    verdict = "ok" if rate >= target else "SHORT"
    print(
        f"{label}: {rate:,.0f}/s{unit} over {elapsed:.1f} s, {len(calls)} connections; "
        f"server CPU {cpu / elapsed * 100:.0f}% of one core, {per_core:,.0f} per core-second "
        f"(target >= {target:,.0f}/s) {verdict}"
    )
    return {"rate": rate, "per_core_second": per_core, "target": target}


def local_verification(token: str, jwks: dict[str, object], seconds: float) -> dict[str, float]:
    """joserfc ES256 verification with the JWKS, as the eP-CSCF will do, one core."""
    from joserfc import jws
    from joserfc.jwk import KeySet

    keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    n = 0
    t0 = time.perf_counter()
    stop_at = t0 + seconds
    while time.perf_counter() < stop_at:
        for _ in range(100):
            obj = jws.deserialize_compact(token, keys, algorithms=["ES256"])
            claims = json.loads(obj.payload)
            if claims["exp"] <= time.time():
                raise RuntimeError("expired")
        n += 100
    rate = n / (time.perf_counter() - t0)
    verdict = "ok" if rate >= 5000 else "SHORT"
    print(
        f"local JWT verification (joserfc, ES256, key by kid from the JWKS, claims parsed): "
        f"{rate:,.0f}/s on one core, {1e6 / rate:.0f} µs each (target >= 5,000/s) {verdict}"
    )
    return {"rate": rate, "target": 5000}


async def run(port: int, server_pid: int, seconds: float, connections: int) -> dict[str, object]:
    base = f"http://127.0.0.1:{port}"
    conns = [await Connection.open(port) for _ in range(connections)]
    wics = [Wic(c, base) for c in conns]
    for n, conn in enumerate(conns):
        await conn.request("GET", f"/bench-login?user=bench{n}")

    async def issue(wic: Wic) -> None:
        await wic.exchange(*await wic.code())

    for wic in wics:  # warm up
        await issue(wic)
    issuance = await closed_loop(
        "token issuance, GET /authorize + POST /token per token",
        [lambda w=w: issue(w) for w in wics],
        seconds=seconds,
        server_pid=server_pid,
        target=300,
    )

    # /token alone: codes made first (they live 60 s), then exchanged.
    codes: list[list[tuple[str, str]]] = [[] for _ in wics]
    per_conn = int(issuance["rate"] * seconds * 1.5 / len(wics)) + 10
    for wic, stock in zip(wics, codes, strict=True):
        stock.extend([await wic.code() for _ in range(per_conn)])

    async def exchange_only(wic: Wic, stock: list[tuple[str, str]]) -> None:
        await wic.exchange(*stock.pop())

    exchange = await closed_loop(
        "code exchange alone, POST /token with codes made beforehand",
        [lambda w=w, s=s: exchange_only(w, s) for w, s in zip(wics, codes, strict=True)],
        seconds=seconds / 2,
        server_pid=server_pid,
        target=300,
    )

    tokens = [str((await wics[0].exchange(*await wics[0].code()))["access_token"])]
    tokens += [str((await w.exchange(*await w.code()))["access_token"]) for w in wics]
    auth = base64.b64encode(f"pcscf:{SECRET}".encode()).decode()
    forms = [urlencode({"token": t}).encode() for t in tokens]

    async def introspect(conn: Connection, form: bytes) -> None:
        status, _, body = await conn.request(
            "POST", "/introspect", form, f"Authorization: Basic {auth}\r\n"
        )
        if status != 200 or not json.loads(body)["active"]:
            raise RuntimeError(f"introspection answered {status}: {body!r}")

    introspection = await closed_loop(
        "introspection, POST /introspect (HTTP Basic) of a live token",
        [lambda c=c, f=f: introspect(c, f) for c, f in zip(conns, forms, strict=False)],
        seconds=seconds,
        server_pid=server_pid,
        target=2000,
    )
    _, _, jwks = await conns[0].request("GET", "/jwks.json")
    for conn in conns:
        conn.close()
    local = local_verification(tokens[0], json.loads(jwks), seconds)
    return {
        "issuance": issuance,
        "exchange_only": exchange,
        "introspection": introspection,
        "local_verification": local,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="bench-waf-") as data:
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), data],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                raise SystemExit("the WAF did not start")
            for _ in range(200):  # until uvicorn listens
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            pin(1)
            import uvloop

            result = uvloop.run(run(port, server.pid, args.seconds, args.connections))
        finally:
            server.terminate()
            server.wait(10)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
