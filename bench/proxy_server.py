"""A stateful proxy that forwards every request to one next hop; the process
that bench_proxy.py measures.

    python bench/proxy_server.py LISTEN_PORT NEXT_HOP_PORT
"""

from __future__ import annotations

import asyncio
import sys

from webims.sip.message import Response
from webims.sip.proxy import Hop, ProxyContext, ProxyCore, Target
from webims.transport.endpoint import EndpointConfig, SipEndpoint
from webims.transport.layer import ListenSpec
from webims.transport.loop import ServerGc, install_event_loop_policy


class ForwardAll:
    def __init__(self, hop: Hop) -> None:
        self.hop = hop

    def on_request(self, ctx: ProxyContext, now: float) -> None:
        ctx.forward([Target(ctx.request.uri, dest=self.hop)], now=now)

    def on_response(self, ctx: ProxyContext, response: Response, now: float) -> None:
        return None


async def main(port: int, next_port: int) -> None:
    app = ForwardAll(Hop("UDP", "127.0.0.1", next_port))
    ep = SipEndpoint(lambda e: ProxyCore(e.layer, app, e), EndpointConfig())
    await ep.start([ListenSpec("udp", "127.0.0.1", port)])
    ServerGc(asyncio.get_running_loop()).start()
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await ep.close()


if __name__ == "__main__":
    install_event_loop_policy()
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
