"""A proxy on real sockets: SipEndpoint + ProxyCore between a UDP client and a
UDP/TCP server, and the stateless answers to requests it cannot use."""

from __future__ import annotations

import asyncio
import socket

from webims.sip import Request, Response, make_response, new_tag, parse_message
from webims.sip.proxy import LooseRouter, ProxyCore
from webims.sip.transaction import RequestReceived, TransactionLayer
from webims.transport.endpoint import LayerOnly, SipEndpoint
from webims.transport.layer import ListenSpec


class Uas(LayerOnly):
    """Answers every request 200, copying the Via path (a minimal UAS)."""

    def __init__(self, layer: TransactionLayer) -> None:
        super().__init__(layer)
        self.seen: list[Request] = []

    def process_events(self, now: float) -> None:
        while (ev := self.layer.next_event()) is not None:
            if isinstance(ev, RequestReceived):
                self.seen.append(ev.request)
                self.layer.send_response(
                    ev.tx, make_response(ev.request, 200, to_tag=new_tag()), now
                )


def request(
    target: str, me: int, *, branch: str, extra: str = "", cseq: str = "1 OPTIONS"
) -> bytes:
    return (
        f"OPTIONS {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch={branch}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
        f"Call-ID: {branch}\r\n"
        + (f"CSeq: {cseq}\r\n" if cseq else "")
        + extra
        + "Content-Length: 0\r\n\r\n"
    ).encode()


async def exchange(sock: socket.socket, data: bytes, port: int) -> Response:
    loop = asyncio.get_running_loop()
    sock.sendto(data, ("127.0.0.1", port))
    raw = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
    msg = parse_message(raw)
    assert isinstance(msg, Response)
    return msg


async def test_proxy_on_real_sockets_and_its_error_answers() -> None:
    uases: list[Uas] = []

    def make_uas(ep: SipEndpoint) -> Uas:
        uases.append(Uas(ep.layer))
        return uases[0]

    uas = SipEndpoint(make_uas)
    await uas.start([ListenSpec("tcp", "127.0.0.1", 0)])
    proxy = SipEndpoint(lambda ep: ProxyCore(ep.layer, LooseRouter(ep), ep))
    await proxy.start([ListenSpec("udp", "127.0.0.1", 0), ListenSpec("tcp", "127.0.0.1", 0)])
    p_port = proxy.listener("udp").local[1]
    u_port = uas.listener("tcp").local[1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    me = sock.getsockname()[1]
    try:
        # Forwarded over TCP to the UAS and back to us over UDP.
        target = f"sip:b@127.0.0.1:{u_port};transport=tcp"
        resp = await exchange(sock, request(target, me, branch="z9hG4bK-ok"), p_port)
        assert resp.status == 200 and len(resp.vias) == 1
        (seen,) = uases[0].seen
        assert seen.max_forwards == 69 and seen.top_via.transport == "TCP"
        assert seen.vias[1].branch == "z9hG4bK-ok"

        # Addressed to the proxy itself: answered there.
        resp = await exchange(
            sock, request(f"sip:127.0.0.1:{p_port}", me, branch="z9hG4bK-me"), p_port
        )
        assert resp.status == 200 and "OPTIONS" in (resp.headers.get("Allow") or "")

        # Max-Forwards 0: 483, nothing forwarded.
        bad = request(target, me, branch="z9hG4bK-mf").replace(
            b"Max-Forwards: 70", b"Max-Forwards: 0"
        )
        assert (await exchange(sock, bad, p_port)).status == 483

        # No CSeq: the transaction layer cannot take it; a stateless 400.
        resp = await exchange(sock, request(target, me, branch="z9hG4bK-nocseq", cseq=""), p_port)
        assert resp.status == 400

        # Unknown Proxy-Require: 420 with Unsupported.
        pr = request(target, me, branch="z9hG4bK-pr", extra="Proxy-Require: teleport\r\n")
        resp = await exchange(sock, pr, p_port)
        assert resp.status == 420 and resp.headers.get("Unsupported") == "teleport"

        # An unknown URI scheme: 416.
        resp = await exchange(
            sock, request("mailto:b@example.com", me, branch="z9hG4bK-scheme"), p_port
        )
        assert resp.status == 416
        assert len(uases[0].seen) == 1  # none of the bad ones went through
    finally:
        sock.close()
        await proxy.close()
        await uas.close()
