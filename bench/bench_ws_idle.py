"""Memory of the eP-CSCF per registered, idle WIC.

Each WIC is the Python WIC of ``webims.wic.client``: a WSS connection
(subprotocol ``sip``), a REGISTER with a Bearer token and its 200 OK through
the I-CSCF and the S-CSCF; then it stays connected, silent (no WebSocket
ping), as a browser tab does between refreshes.  What the eP-CSCF holds for
it is the TLS session, the WebSocket, the flow, and the registration
binding (Service-Route, identities, token expiry, its reg event
subscription).

The elements run as separate processes (``webims run hss``, ``wwsf``,
``icscf``, ``scscf``, ``pcscf``, one data directory), so the eP-CSCF's
VmRSS (``/proc/<pid>/status``) counts the eP-CSCF alone; ``--up`` runs one
``webims up`` instead (then the S-CSCF's registrar is counted too).  The
subscribers ``idle00001`` … are provisioned in the HSS store before the
start, and their tokens are signed with the WAF's key from the data
directory (``webims.wic.bench.mint_logins``): 20,000 logins would cost
20,000 argon2 hashes.

A warm-up batch is registered first and the eP-CSCF's RSS is read once it is
settled; then the rest, and the RSS again.  KiB per connection = growth /
connections after the warm-up.  Target: <= 32 KiB.

File descriptors: every element process and every client process gets
RLIMIT_NOFILE raised (root may raise the hard limit too); the clients are
spread over ``--workers`` processes, all from 127.0.0.1 (20,000 fit in the
ephemeral range, ``/proc/sys/net/ipv4/ip_local_port_range``).

    python bench/bench_ws_idle.py [--connections 20000] [--warmup 500]
                                  [--workers 4] [--up] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_register import SRC, separate_elements, webims_up, write_config

sys.path.insert(0, str(SRC))
TARGET_KIB = 32.0


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE to ``wanted`` (the hard limit too, when allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
        return wanted
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def settled_rss(pid: int, *, settle: float = 2.0, timeout: float = 30.0) -> int:
    """VmRSS once it stopped moving for ``settle`` seconds."""
    last, since = rss_kib(pid), time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = rss_kib(pid)
        if abs(now - last) > 64:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return now
    return last


# -- the clients, in worker processes ------------------------------------------------


def worker(logins: list[tuple[str, str]], url: str, ca: str, pipe: Connection) -> None:
    """Register one WIC per login as told, keep them, report counts."""
    raise_nofile(len(logins) + 1024)
    from webims.transport.loop import install_event_loop_policy
    from webims.wic.client import WicClient, WicError, client_ssl_context

    install_event_loop_policy()

    async def run() -> None:
        ctx = client_ssl_context(Path(ca))
        held: list[WicClient] = []
        failures: dict[str, int] = {}
        gate = asyncio.Semaphore(32)
        loop = asyncio.get_running_loop()

        async def one(impu: str, token: str) -> None:
            async with gate:
                wic = WicClient(url, impu, token, ssl_context=ctx, ping_interval=None)
                try:
                    await wic.connect()
                    outcome = await wic.register(3600)
                except WicError as err:
                    failures[type(err).__name__] = failures.get(type(err).__name__, 0) + 1
                    await wic.close()
                    return
                if outcome.ok:
                    held.append(wic)
                else:
                    key = f"{outcome.status} {outcome.reason}"
                    failures[key] = failures.get(key, 0) + 1
                    await wic.close()

        done = 0
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command[0] == "register":
                upto = command[1]
                await asyncio.gather(*(one(i, t) for i, t in logins[done:upto]))
                done = max(done, upto)
                pipe.send(("registered", len(held), failures))
            elif command[0] == "stop":
                await asyncio.gather(*(w.close() for w in held), return_exceptions=True)
                pipe.send(("stopped", len(held), failures))
                return

    asyncio.run(run())


class Workers:
    """Client processes, each with its share of the logins."""

    def __init__(self, logins: list[tuple[str, str]], url: str, ca: Path, count: int) -> None:
        ctx = mp.get_context("spawn")
        self.shares = [logins[i::count] for i in range(count)]
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for share in self.shares:
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker, args=(share, url, str(ca), theirs), daemon=True)
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)

    def register(self, total: int) -> tuple[int, dict[str, int]]:
        """Have ``total`` WICs registered in all (spread over the workers)."""
        n = len(self.shares)
        for i, pipe in enumerate(self.pipes):
            pipe.send(("register", total // n + (1 if i < total % n else 0)))
        return self._collect()

    def _collect(self) -> tuple[int, dict[str, int]]:
        held, failures = 0, {}
        for pipe in self.pipes:
            _, count, fails = pipe.recv()
            held += count
            for k, v in fails.items():
                failures[k] = failures.get(k, 0) + v
        return held, failures

    def stop(self) -> tuple[int, dict[str, int]]:
        for pipe in self.pipes:
            pipe.send(("stop",))
        out = self._collect()
        for proc in self.procs:
            proc.join(10)
        return out


# -- the system ----------------------------------------------------------------------


@contextlib.contextmanager
def measured_process(config: Path, nofile: int, *, up: bool) -> Iterator[int]:
    """The pid whose memory is measured: ``webims up``'s, or ``webims run pcscf``'s."""
    if up:
        with webims_up(config, nofile=nofile) as proc:
            yield proc.pid
    else:
        with separate_elements(config, nofile) as pids:
            yield pids["pcscf"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--up", action="store_true", help="One `webims up` process.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    if args.connections > high - low:
        sys.exit(f"{args.connections} connections exceed the ephemeral range {low}-{high}")
    # The eP-CSCF needs a descriptor per connection plus its own (listeners, Mw
    # connections, files); without CAP_SYS_RESOURCE the hard limit caps them.
    wanted = args.connections + 256
    nofile = raise_nofile(wanted)
    if nofile < wanted:
        print(
            f"RLIMIT_NOFILE cannot go above {nofile} here (no CAP_SYS_RESOURCE):"
            f" {nofile - 256} connections instead of {args.connections}"
        )
        args.connections = nofile - 256
    with tempfile.TemporaryDirectory(prefix="webims-idle-") as tmp:
        config = write_config(Path(tmp), token_ttl=7200)
        from webims.config import load_settings
        from webims.wic.bench import mint_logins, provision_bench_subscribers

        settings = load_settings(config)
        t0 = time.monotonic()
        subs = asyncio.run(
            provision_bench_subscribers(
                settings, args.connections, prefix="idle", web_accounts=False
            )
        )
        print(f"provisioned {args.connections} subscribers in {time.monotonic() - t0:.1f} s")
        with measured_process(config, nofile, up=args.up) as pid:
            # Signed with the key the web element made at its start.
            logins = [(lg.impus[0], lg.access_token) for lg in mint_logins(settings, subs)]
            ca = settings.data_dir / "pki" / "ca.pem"
            workers = Workers(logins, settings.web.pcscf_url, ca, args.workers)
            try:
                # One first, alone: the eP-CSCF fetches the WAF's JWKS on its first token.
                workers.register(1)
                t0 = time.monotonic()
                warm, failures = workers.register(args.warmup)
                before = settled_rss(pid)
                print(f"warm-up: {warm} WICs registered, eP-CSCF VmRSS {before} KiB")
                held, failures = workers.register(args.connections)
                took = time.monotonic() - t0
                after = settled_rss(pid)
                print(
                    f"{held} WICs registered and idle in {took:.1f} s"
                    f" ({held / took:.0f}/s), eP-CSCF VmRSS {after} KiB"
                )
            finally:
                workers.stop()
    grown = held - warm
    per = (after - before) / grown if grown > 0 else float("nan")
    what = "webims up (all elements)" if args.up else "webims run pcscf"
    print(
        f"ws idle registered: {per:.1f} KiB per connection ({grown} connections,"
        f" {what}; target <= {TARGET_KIB:.0f} KiB) {'ok' if per <= TARGET_KIB else 'ABOVE TARGET'}"
    )
    if failures:
        print("failures: " + ", ".join(f"{k}: {v}" for k, v in sorted(failures.items())))
    if args.json:
        print(
            json.dumps(
                {
                    "kib_per_connection": round(per, 2),
                    "connections": held,
                    "rss_before_kib": before,
                    "rss_after_kib": after,
                    "failures": failures,
                    "process": what,
                }
            )
        )


if __name__ == "__main__":
    main()
