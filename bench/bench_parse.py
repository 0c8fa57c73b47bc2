"""Parse and serialise a typical 12-header REGISTER.

Targets (issue 2): parse >= 40,000/s and parse + serialise >= 20,000/s on one
core.  "Serialise" here means after a change (a Via added, Max-Forwards
decremented), as a proxy forwards it, so the cached wire bytes cannot be reused.

"Proxy hop" is one REGISTER transaction through a :class:`ProxyCore` in memory,
as the I-CSCF sees it (issue 5): the REGISTER parsed and checked, its To,
Contact and Authorization read, a Route added, the copy forwarded (Via,
Max-Forwards), then the next hop's 200 OK parsed and relayed upstream.  No
sockets: the figure is the SIP stack's own CPU time per hop.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Hashable

from webims.sip import Response, SipURI, make_response, parse_message
from webims.sip.proxy import ProxyConfig, ProxyContext, ProxyCore, Target
from webims.sip.transaction import TimerConfig, TransactionLayer
from webims.sip.uri import URI, parse_uri

REGISTER = (
    b"REGISTER sip:home1.net SIP/2.0\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:user1_public1@home1.net>\r\n"
    b"From: <sip:user1_public1@home1.net>;tag=4fa3\r\n"
    b"Call-ID: apb03a0s09dkjdfglkj49111\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:x7rq@df7jal23ls0d.invalid;transport=ws>"
    b';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1;expires=600\r\n'
    b"Supported: path, outbound, gruu\r\n"
    b"Authorization: Bearer "
    b"eyJhbGciOiJFUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJ1c2VyMSJ9.c2lnbmF0dXJl\r\n"
    b"User-Agent: webims-bench/1.0\r\n"
    b"Expires: 600\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def rate(fn: object, seconds: float) -> float:
    f = fn  # type: ignore[assignment]
    n = 0
    batch = 1000
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            f()  # type: ignore[operator]
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def parse_only() -> None:
    parse_message(REGISTER)


def parse_and_read_core() -> None:
    m = parse_message(REGISTER)
    _ = (m.top_via.branch, m.cseq, m.call_id, m.from_.tag, m.to.tag, m.max_forwards)


def parse_and_serialise() -> None:
    m = parse_message(REGISTER)
    m.headers.add_first("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1234567890")
    m.headers.set("Max-Forwards", str((m.max_forwards or 70) - 1))
    m.serialize()


HOP_REGISTER = REGISTER.replace(
    b"Max-Forwards: 70\r\n",
    b"Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKpcscf1\r\n"
    b"Max-Forwards: 69\r\n"
    b"Route: <sip:icscf.home1.net:5070;transport=tcp;lr>\r\n"
    b"Path: <sip:ZmxvdzE@pcscf.home1.net:5060;transport=tcp;lr;ob>\r\n"
    b'P-Visited-Network-ID: "home1.net"\r\n'
    b'P-Charging-Vector: icid-value="pcscf1-1";orig-ioi=home1.net\r\n',
).replace(
    b"Authorization: Bearer "
    b"eyJhbGciOiJFUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJ1c2VyMSJ9.c2lnbmF0dXJl\r\n",
    b'Authorization: Digest username="user1_private@home1.net", realm="home1.net", '
    b'uri="sip:home1.net", nonce="", response="", integrity-protected="auth-done"\r\n',
)


class _HopLocator:
    """Every name is a TCP peer of its own; this element is the I-CSCF."""

    def next_hop(self, uri: URI) -> Hashable:
        assert isinstance(uri, SipURI)
        return uri.host

    def is_reliable(self, dest: Hashable) -> bool:
        return True

    def local_via(self, dest: Hashable) -> tuple[str, str]:
        return "TCP", "127.0.0.1:5070"

    def is_local(self, uri: URI) -> bool:
        return isinstance(uri, SipURI) and uri.host == "icscf.home1.net"


class _HopApp:
    """Reads what the I-CSCF's registration procedure reads, adds a Route."""

    def __init__(self) -> None:
        self.route = "<sip:scscf.home1.net:5080;transport=tcp;lr>"

    def on_request(self, ctx: ProxyContext, now: float) -> None:
        req = ctx.request
        _ = (req.to.uri, req.authorization, req.contacts, req.expires, req.p_visited_network_id)
        ctx.forward([Target(req.uri, headers_first=[("Route", self.route)])], now=now)

    def on_response(self, ctx: ProxyContext, response: Response, now: float) -> None:
        pass


def proxy_hop_bench() -> object:
    """One REGISTER transaction through a proxy core (see the module notes)."""
    layer = TransactionLayer(TimerConfig())
    core = ProxyCore(layer, _HopApp(), _HopLocator(), ProxyConfig())
    request_uri = parse_uri("sip:home1.net")
    assert isinstance(request_uri, SipURI)
    count = iter(range(1 << 62))

    def hop() -> None:
        n = next(count)
        data = HOP_REGISTER.replace(b"z9hG4bKpcscf1", b"z9hG4bKpcscf%d" % n)
        layer.receive(parse_message(data), "pcscf", True, 0.0)
        core.process_events(0.0)
        ((wire, _),) = layer.datagrams_to_send()
        forwarded = parse_message(wire)  # at the S-CSCF
        ok = make_response(forwarded, 200, to_tag="s1")  # type: ignore[arg-type]
        layer.receive(parse_message(ok.serialize()), "scscf", True, 0.0)
        core.process_events(0.0)
        ((_, upstream),) = layer.datagrams_to_send()
        assert upstream == "pcscf"

    return hop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = {
        "parse_per_s": rate(parse_only, args.seconds),
        "parse_read_core_headers_per_s": rate(parse_and_read_core, args.seconds),
        "parse_modify_serialise_per_s": rate(parse_and_serialise, args.seconds),
    }
    # The servers run with the cyclic collector off (transport.loop.ServerGc).
    gc.collect()
    gc.disable()
    try:
        results["proxy_hop_per_s"] = rate(proxy_hop_bench(), args.seconds)
    finally:
        gc.enable()
    print(f"12-header REGISTER, {len(REGISTER)} bytes, one core")
    print(f"  parse                          {results['parse_per_s']:>10,.0f}/s  (target 40,000/s)")
    print(f"  parse + read core headers      {results['parse_read_core_headers_per_s']:>10,.0f}/s")
    print(
        f"  parse + modify + serialise     {results['parse_modify_serialise_per_s']:>10,.0f}/s"
        "  (target 20,000/s)"
    )
    hop = results["proxy_hop_per_s"]
    print(f"  proxy hop (REGISTER + 200 OK)  {hop:>10,.0f}/s  ({1e6 / hop:.0f} us each)")
    if args.json:
        print(json.dumps({k: round(v) for k, v in results.items()}))


if __name__ == "__main__":
    main()
