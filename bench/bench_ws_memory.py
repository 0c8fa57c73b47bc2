"""Memory per idle SIP-over-WebSocket connection on the transport layer's WS listener.

The server (a TransportLayer with one WS listener on 127.0.0.1) runs in a
child process; this process opens the client connections (subprotocol
``sip``) with the websockets asyncio client and reads the child's VmRSS from
/proc before and after.  A first batch of connections warms the server up
(imports, code paths, allocator arenas) so that only the steady cost per
connection is measured.

    python bench/bench_ws_memory.py [--connections 2000] [--warmup 200] [--loop uvloop]

Prints ``ws idle memory: X KiB per connection (N connections)``; target:
about 5.5 KiB (DESIGN.md).  Loopback only; stops by itself (--timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
TARGET_KIB = 5.5


# -- the server, in the child process ------------------------------------------
async def serve(loop_name: str) -> None:
    from webims.transport import TransportConfig, TransportLayer

    layer = TransportLayer(lambda msg, flow: None, config=TransportConfig(ws_idle_timeout=None))
    listener = await layer.listen_ws("127.0.0.1", 0)
    print(f"port {listener.local[1]} {loop_name}", flush=True)
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()
    loop.add_reader(sys.stdin.fileno(), lambda: commands.put_nowait(sys.stdin.readline()))
    try:
        while True:
            command = (await commands.get()).strip()
            if command == "count":
                print(len(layer.table), flush=True)
            elif command == "gc":
                gc.collect()
                print("ok", flush=True)
            else:  # "quit" or EOF
                break
    finally:
        loop.remove_reader(sys.stdin.fileno())
        await layer.close()


def run_server(loop_name: str) -> None:
    if loop_name == "uvloop":
        from webims.transport import install_event_loop_policy

        if not install_event_loop_policy():
            loop_name = "asyncio"
    asyncio.run(serve(loop_name))


# -- the clients, in this process -------------------------------------------------
def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        sys.exit(f"RLIMIT_NOFILE is {soft}; {needed} file descriptors are needed")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server:
    def __init__(self, loop_name: str) -> None:
        env = dict(
            os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
        )
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--loop", loop_name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        words = self.ask(None).split()
        self.port, self.loop_name = int(words[1]), words[2]

    def ask(self, command: str | None) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the server process exited")
        return line.strip()

    async def wait_for_connections(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while int(await asyncio.to_thread(self.ask, "count")) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not see {n} connections")
            await asyncio.sleep(0.1)

    async def settled_rss(self) -> int:
        await asyncio.to_thread(self.ask, "gc")
        await asyncio.sleep(0.5)
        return rss_kib(self.proc.pid)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, BrokenPipeError, OSError):
            self.ask("quit")
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def open_clients(port: int, n: int, batch: int = 100) -> list[object]:
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    async def one() -> object:
        ws = await connect(
            f"ws://127.0.0.1:{port}/",
            subprotocols=[Subprotocol("sip")],
            ping_interval=None,
            open_timeout=30,
        )
        assert ws.subprotocol == "sip"
        return ws

    clients: list[object] = []
    for start in range(0, n, batch):
        clients += await asyncio.gather(*(one() for _ in range(min(batch, n - start))))
    return clients


async def measure(args: argparse.Namespace) -> None:
    raise_fd_limit(2 * (args.connections + args.warmup) + 256)
    server = Server(args.loop)
    clients: list[object] = []
    try:
        async with asyncio.timeout(args.timeout):
            clients += await open_clients(server.port, args.warmup)
            await server.wait_for_connections(args.warmup, 30)
            before = await server.settled_rss()
            clients += await open_clients(server.port, args.connections)
            await server.wait_for_connections(args.warmup + args.connections, 60)
            after = await server.settled_rss()
            for ws in clients:
                await ws.close()  # type: ignore[attr-defined]
    finally:
        server.stop()
    per_conn = (after - before) / args.connections
    print(f"server loop: {server.loop_name}; RSS {before} KiB -> {after} KiB")
    print(f"ws idle memory: {per_conn:.1f} KiB per connection ({args.connections} connections)")
    print(f"target: about {TARGET_KIB} KiB per connection")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_server(args.loop)
    else:
        asyncio.run(measure(args))


if __name__ == "__main__":
    main()
