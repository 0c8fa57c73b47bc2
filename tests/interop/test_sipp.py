"""Interoperability with SIPp (Debian's sip-tester), a real peer on real sockets.

* SIPp as UAC sends REGISTER and OPTIONS over UDP and TCP to a responder built
  on the core (SipEndpoint + TransactionLayer + a small TU).  Our responder
  loses the first final response to every request, so each is retransmitted by
  SIPp and must be absorbed by our server transaction (the TU sees it once);
  SIPp's own ``-lost`` drops more at random.
* SIPp as UAS answers INVITEs our client starts.  Our client loses its first
  INVITE of every call, so Timer A retransmits it; ACK for the 2xx and a BYE
  close each call.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Hashable
from pathlib import Path

import pytest

from webims.sip import Response, make_response, new_tag
from webims.sip.proxy import Hop
from webims.sip.transaction import (
    RequestReceived,
    ResponseReceived,
    TimedOut,
    TimerConfig,
    TransactionLayer,
    TransportFailed,
)
from webims.sip.uac import ack_for_2xx, new_branch, new_call_id, new_request
from webims.transport.endpoint import EndpointConfig, LayerOnly, SipEndpoint
from webims.transport.layer import ListenSpec

# SIPp is a test dependency (.ci/run installs Debian's sip-tester): without it
# these tests fail rather than skip.
pytestmark = pytest.mark.sipp

SCENARIOS = Path(__file__).resolve().parents[2] / "conformance" / "sipp"
FAST = TimerConfig(T1=0.1, T2=0.4, T4=0.5)


class LossyEndpoint(SipEndpoint):
    """Drops the first transmission of chosen messages (per Call-ID and kind)."""

    def __init__(self, drop_first: set[str], **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.drop_first = drop_first
        self.seen: Counter[tuple[str, str]] = Counter()
        self.dropped = 0

    def _send(self, data: bytes, dest: Hashable) -> bool:
        head = data.split(b"\r\n", 1)[0].decode()
        kind = head.split(" ")[0] if not head.startswith("SIP/2.0") else head.split(" ")[1]
        call_id = next(
            (
                line.split(b":", 1)[1].strip().decode()
                for line in data.split(b"\r\n")
                if line.lower().startswith((b"call-id:", b"i:"))
            ),
            "",
        )
        key = (kind, call_id)
        self.seen[key] += 1
        if kind in self.drop_first and self.seen[key] == 1:
            self.dropped += 1
            return True
        return super()._send(data, dest)


class Responder(LayerOnly):
    """A UAS answering REGISTER (with Contact and Expires) and OPTIONS with 200."""

    def __init__(self, layer: TransactionLayer) -> None:
        super().__init__(layer)
        self.requests: Counter[str] = Counter()

    def process_events(self, now: float) -> None:
        while (ev := self.layer.next_event()) is not None:
            if isinstance(ev, RequestReceived):
                req = ev.request
                self.requests[req.method] += 1
                if req.method == "ACK":
                    continue
                if req.method in ("REGISTER", "OPTIONS"):
                    extra = []
                    if req.method == "REGISTER":
                        extra = [(n, v) for n, v in req.headers if n.lower() in ("contact", "m")]
                        extra.append(("Expires", str(req.expires or 3600)))
                    else:
                        extra.append(("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"))
                    resp = make_response(req, 200, to_tag=new_tag(), extra=extra)
                else:
                    resp = make_response(req, 501, to_tag=new_tag())
                self.layer.send_response(ev.tx, resp, now)


async def udp_port_taken(port: int, timeout: float = 15.0) -> None:
    """Wait until something (SIPp) has bound UDP ``port`` on 127.0.0.1."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on udp/{port} after {timeout:g} s")


async def run_sipp(*args: str, timeout: float = 60) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "sipp",
        *args,
        "-nostdin",
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout + 15)
    except TimeoutError:
        proc.kill()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.parametrize("scenario", ["uac_register.xml", "uac_options.xml"])
@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_sipp_uac_against_our_responder(scenario: str, transport: str) -> None:
    responders: list[Responder] = []

    def make_tu(ep: SipEndpoint) -> Responder:
        responders.append(Responder(ep.layer))
        return responders[0]

    # Losing a response only makes sense where SIPp retransmits: over UDP.
    ep = LossyEndpoint(
        drop_first={"200"} if transport == "u1" else set(),
        make_tu=make_tu,
        config=EndpointConfig(),  # RFC timers: SIPp retransmits with T1 = 500 ms
    )
    kind = "udp" if transport == "u1" else "tcp"
    await ep.start([ListenSpec(kind, "127.0.0.1", 0)])
    port = ep.listener(kind).local[1]
    calls = 30
    try:
        args = ["-sf", str(SCENARIOS / scenario), f"127.0.0.1:{port}", "-i", "127.0.0.1"]
        args += ["-t", transport, "-m", str(calls), "-r", "50", "-l", "20"]
        if transport == "u1":
            args += ["-lost", "10"]
        code, out = await run_sipp(*args)
    finally:
        await ep.close()
    assert code == 0, out[-3000:]
    method = "REGISTER" if "register" in scenario else "OPTIONS"
    # Every call reached the TU once: retransmissions were absorbed.
    assert responders[0].requests[method] == calls
    if transport == "u1":
        # Our dropped final responses forced SIPp to retransmit each request.
        assert ep.dropped == calls


class Client(LayerOnly):
    """Collects the transaction layer's events for a test UAC."""

    def __init__(self, layer: TransactionLayer) -> None:
        super().__init__(layer)
        self.queue: asyncio.Queue[ResponseReceived | TimedOut | TransportFailed] = asyncio.Queue()

    def process_events(self, now: float) -> None:
        while (ev := self.layer.next_event()) is not None:
            if isinstance(ev, ResponseReceived | TimedOut | TransportFailed):
                self.queue.put_nowait(ev)

    async def next_response(self) -> ResponseReceived:
        ev = await asyncio.wait_for(self.queue.get(), 20)
        if not isinstance(ev, ResponseReceived):
            raise AssertionError(f"{ev.tx.request.method} transaction failed: {ev}")
        return ev


async def test_our_invite_client_against_sipp_uas() -> None:
    clients: list[Client] = []

    def make_tu(ep: SipEndpoint) -> Client:
        clients.append(Client(ep.layer))
        return clients[0]

    ep = LossyEndpoint(drop_first={"INVITE"}, make_tu=make_tu, config=EndpointConfig(timers=FAST))
    await ep.start([ListenSpec("udp", "127.0.0.1", 0)])
    client = clients[0]
    _, our_port = ep.listener("udp").local
    sipp_port = 15000 + (our_port % 20000)
    calls = 10
    sipp = asyncio.ensure_future(
        run_sipp(
            "-sf",
            str(SCENARIOS / "uas_invite.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(sipp_port),
            "-t",
            "u1",
            "-m",
            str(calls),
            "-lost",
            "10",
            timeout=60,
        )
    )
    await udp_port_taken(sipp_port)  # SIPp is listening
    dest = Hop("UDP", "127.0.0.1", sipp_port)
    via_host = f"127.0.0.1:{our_port}"
    try:
        for i in range(calls):
            call_id = new_call_id("127.0.0.1")
            invite = new_request(
                "INVITE",
                f"sip:sipp@127.0.0.1:{sipp_port}",
                from_=f"<sip:webims@127.0.0.1>;tag={new_tag()}",
                to=f"<sip:sipp@127.0.0.1:{sipp_port}>",
                call_id=call_id,
                cseq=1,
                via=f"SIP/2.0/UDP {via_host};branch={new_branch()};rport",
                contact=f"<sip:webims@{via_host}>",
            )
            ep.layer.send_request(invite, dest, False, ep.now())
            ep.flush()
            statuses = []
            final: Response | None = None
            while final is None:
                ev = await client.next_response()
                statuses.append(ev.response.status)
                if ev.response.status >= 200:
                    final = ev.response
            assert final.status == 200, (i, statuses)
            ack = ack_for_2xx(invite, final, via=f"SIP/2.0/UDP {via_host};branch={new_branch()}")
            ep.layer.send_stateless(ack, dest)
            bye = new_request(
                "BYE",
                ack.uri_text,
                from_=invite.headers.get("From") or "",
                to=final.headers.get("To") or "",
                call_id=call_id,
                cseq=2,
                via=f"SIP/2.0/UDP {via_host};branch={new_branch()};rport",
            )
            ep.layer.send_request(bye, dest, False, ep.now())
            ep.flush()
            while True:
                ev = await client.next_response()
                if ev.response.cseq.method == "INVITE" and ev.response.status == 200:
                    ep.layer.send_stateless(ack, dest)  # §13.2.2.4: a 2xx again, ACK again
                    ep.flush()
                elif ev.response.cseq.method == "BYE" and ev.response.status >= 200:
                    break
            assert ev.response.status == 200
        code, out = await sipp
    finally:
        await ep.close()
        if not sipp.done():
            sipp.cancel()
    assert code == 0, out[-3000:]
    # Every first INVITE was lost on purpose: Timer A brought each call through.
    assert ep.dropped == calls
    assert all(n >= 2 for (kind, _), n in ep.seen.items() if kind == "INVITE")
