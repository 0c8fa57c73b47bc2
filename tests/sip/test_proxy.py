"""The stateful proxy core (RFC 3261 §16), driven in memory with a fake clock.

Elements are named nodes on a :class:`ProxyNet`: a UAC and UASes are bare
transaction layers the test drives by hand, the proxy is a ProxyCore over its
own transaction layer.  Destinations are node names.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable

import pytest

from webims.sip import Request, Response, SipURI, make_response, parse_message
from webims.sip.proxy import ProxyConfig, ProxyContext, ProxyCore, Target
from webims.sip.transaction import (
    AckReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    TimerConfig,
    TransactionLayer,
)
from webims.sip.uac import ack_for_2xx, new_request
from webims.sip.uri import URI, parse_uri

PROXY = "proxy.test"


class Locator:
    def next_hop(self, uri: URI) -> Hashable:
        assert isinstance(uri, SipURI)
        return uri.host

    def is_reliable(self, dest: Hashable) -> bool:
        return False

    def local_via(self, dest: Hashable) -> tuple[str, str]:
        return "UDP", f"{PROXY}:5060"

    def is_local(self, uri: URI) -> bool:
        return isinstance(uri, SipURI) and uri.host == PROXY


class App:
    """Routes by a table of Request-URI user -> targets; records what it saw."""

    def __init__(self) -> None:
        self.targets: dict[str, list[str]] = {}
        self.parallel = True
        self.record_route: str | None = None
        self.seen: list[Request] = []
        self.responses: list[int] = []
        self.defer = False
        self.pending: list[ProxyContext] = []

    def on_request(self, ctx: ProxyContext, now: float) -> None:
        self.seen.append(ctx.request)
        if self.defer:
            self.pending.append(ctx)
            return
        user = ctx.request.uri.user if isinstance(ctx.request.uri, SipURI) else None
        hosts = self.targets.get(user or "")
        if hosts is None:
            ctx.forward(record_route=self.record_route, now=now)
            return
        targets = [Target(uri=parse_uri(f"sip:{user}@{h}")) for h in hosts]
        ctx.forward(targets, parallel=self.parallel, record_route=self.record_route, now=now)

    def on_response(self, ctx: ProxyContext, response: Response, now: float) -> None:
        self.responses.append(response.status)


class ProxyNet:
    def __init__(self, config: TimerConfig | None = None) -> None:
        self.now = 0.0
        cfg = config or TimerConfig()
        self.layers: dict[str, TransactionLayer] = {}
        self.events: dict[str, list[Event]] = {}
        self.app = App()
        self.proxy_layer = TransactionLayer(cfg)
        self.proxy = ProxyCore(self.proxy_layer, self.app, Locator(), ProxyConfig())
        self.layers[PROXY] = self.proxy_layer
        for name in ("uac", "uas1", "uas2", "uas3"):
            self.layers[name] = TransactionLayer(cfg)
            self.events[name] = []
        self.wire: list[tuple[str, str, bytes]] = []
        self.drop: set[str] = set()

    def pump(self) -> None:
        for _ in range(100):
            moved = False
            for name, layer in self.layers.items():
                for data, dest in layer.datagrams_to_send():
                    moved = True
                    self.wire.append((name, str(dest), data))
                    if dest in self.drop:
                        continue
                    msg = parse_message(data)
                    self.layers[str(dest)].receive(msg, name, False, self.now)
            self.proxy.process_events(self.now)
            for name, layer in self.layers.items():
                if name == PROXY:
                    continue
                while (ev := layer.next_event()) is not None:
                    self.events[name].append(ev)
            if not moved:
                return
        raise AssertionError("network did not settle")

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            timers = [t for t in (self.proxy.get_timer(),) if t is not None]
            timers += [
                t
                for n, lay in self.layers.items()
                if n != PROXY
                if (t := lay.get_timer()) is not None
            ]
            nxt = min(timers, default=None)
            if nxt is None or nxt > end:
                break
            self.now = max(self.now, nxt)
            self.proxy.handle_timer(self.now)
            for n, lay in self.layers.items():
                if n != PROXY:
                    lay.handle_timer(self.now)
            self.pump()
        self.now = end
        self.pump()

    def take(self, name: str, kind: type[Event]) -> list[Event]:
        got = [e for e in self.events[name] if isinstance(e, kind)]
        self.events[name] = [e for e in self.events[name] if not isinstance(e, kind)]
        return got

    def requests_at(self, name: str) -> list[RequestReceived]:
        return [e for e in self.take(name, RequestReceived) if isinstance(e, RequestReceived)]

    def responses_at(self, name: str) -> list[Response]:
        return [
            e.response for e in self.take(name, ResponseReceived) if isinstance(e, ResponseReceived)
        ]

    def send(self, req: Request) -> None:
        self.layers["uac"].send_request(req, PROXY, False, self.now)
        self.pump()

    def answer(self, name: str, ev: RequestReceived, status: int, tag: str = "t1") -> Response:
        resp = make_response(ev.request, status, to_tag=tag)
        if status < 300 and ev.request.method == "INVITE":
            resp.headers.add("Contact", f"<sip:callee@{name}>")
            for rr in ev.request.headers.get_all("Record-Route"):
                resp.headers.add("Record-Route", rr)
        self.layers[name].send_response(ev.tx, resp, self.now)
        self.pump()
        return resp


_counter = itertools.count(1)


def request(method: str = "REGISTER", uri: str = "sip:bob@uas1", **kw: object) -> Request:
    n = next(_counter)
    return new_request(
        method,
        uri,
        from_="<sip:alice@home1.net>;tag=a1",
        to="<sip:bob@home1.net>",
        call_id=f"call-{n}",
        cseq=1,
        via=f"SIP/2.0/UDP uac.test:5060;branch=z9hG4bKuac{n}",
        **kw,  # type: ignore[arg-type]
    )


def test_forwards_a_register_and_its_response() -> None:
    net = ProxyNet()
    net.send(request())
    (ev,) = net.requests_at("uas1")
    fwd = ev.request
    assert [v.host for v in fwd.vias] == [PROXY, "uac.test"]
    assert fwd.top_via.branch is not None and fwd.top_via.branch.startswith("z9hG4bK")
    assert fwd.max_forwards == 69
    net.answer("uas1", ev, 200)
    (resp,) = net.responses_at("uac")
    assert resp.status == 200 and [v.host for v in resp.vias] == ["uac.test"]


def test_invite_gets_100_at_once_and_provisionals_are_relayed() -> None:
    net = ProxyNet()
    net.send(request("INVITE"))
    assert [r.status for r in net.responses_at("uac")] == [100]
    (ev,) = net.requests_at("uas1")
    net.answer("uas1", ev, 180)
    net.answer("uas1", ev, 200)
    statuses = [r.status for r in net.responses_at("uac")]
    assert statuses == [180, 200]


def test_ack_for_2xx_is_forwarded_statelessly_along_the_record_route() -> None:
    net = ProxyNet()
    net.app.record_route = f"sip:{PROXY};lr"
    invite = request("INVITE")
    net.send(invite)
    (ev,) = net.requests_at("uas1")
    assert str(ev.request.record_routes[0].uri) == f"sip:{PROXY};lr"
    net.answer("uas1", ev, 200)
    ok = next(r for r in net.responses_at("uac") if r.status == 200)
    ack = ack_for_2xx(invite, ok, via="SIP/2.0/UDP uac.test:5060;branch=z9hG4bKack1")
    assert [str(r.uri) for r in ack.routes] == [f"sip:{PROXY};lr"]
    net.layers["uac"].send_stateless(ack, PROXY)
    net.pump()
    acks = net.take("uas1", AckReceived)
    assert len(acks) == 1
    fwd = acks[0].request  # type: ignore[attr-defined]
    assert fwd.method == "ACK" and fwd.uri_text == "sip:callee@uas1"
    assert "Route" not in fwd.headers  # our own Route entry was consumed
    assert len(fwd.vias) == 2


def test_parallel_fork_best_is_the_200_and_other_branches_are_cancelled() -> None:
    net = ProxyNet()
    net.app.targets["bob"] = ["uas1", "uas2"]
    net.send(request("INVITE", "sip:bob@proxy.test"))
    (e1,) = net.requests_at("uas1")
    (e2,) = net.requests_at("uas2")
    net.answer("uas2", e2, 180, tag="t2")
    net.answer("uas1", e1, 200)
    assert [r.status for r in net.responses_at("uac")][-1] == 200
    cancels = [e for e in net.requests_at("uas2") if e.request.method == "CANCEL"]
    assert len(cancels) == 1
    c = cancels[0].request
    assert c.cseq.method == "CANCEL" and c.cseq.seq == e2.request.cseq.seq
    assert c.top_via.branch == e2.request.top_via.branch
    net.answer("uas2", cancels[0], 200)
    net.answer("uas2", e2, 487, tag="t2")
    assert [r.status for r in net.responses_at("uac")] == []  # the 487 is absorbed


@pytest.mark.parametrize(
    ("statuses", "best"),
    [
        ((486, 404), 404),
        ((486, 401), 401),
        ((500, 404), 404),
        ((503, 503), 500),  # §16.7 step 6: a 503 is not passed upstream
        ((302, 404), 302),
        ((404, 415), 415),
    ],
)
def test_best_response_selection(statuses: tuple[int, int], best: int) -> None:
    net = ProxyNet()
    net.app.targets["bob"] = ["uas1", "uas2"]
    net.send(request("MESSAGE", "sip:bob@proxy.test"))
    (e1,) = net.requests_at("uas1")
    (e2,) = net.requests_at("uas2")
    net.answer("uas1", e1, statuses[0])
    assert net.responses_at("uac") == []  # waits for every branch
    net.answer("uas2", e2, statuses[1], tag="t2")
    (resp,) = net.responses_at("uac")
    assert resp.status == best


def test_401s_are_merged() -> None:
    net = ProxyNet()
    net.app.targets["bob"] = ["uas1", "uas2"]
    net.send(request("MESSAGE", "sip:bob@proxy.test"))
    (e1,) = net.requests_at("uas1")
    (e2,) = net.requests_at("uas2")
    for name, ev, realm in (("uas1", e1, "a"), ("uas2", e2, "b")):
        resp = make_response(ev.request, 401, to_tag="x" + realm)
        resp.headers.add("WWW-Authenticate", f'Digest realm="{realm}", nonce="n"')
        net.layers[name].send_response(ev.tx, resp, net.now)
        net.pump()
    (resp,) = net.responses_at("uac")
    assert sorted(c.get("realm") or "" for c in resp.www_authenticate) == ["a", "b"]


def test_6xx_ends_the_search_and_cancels_the_rest() -> None:
    net = ProxyNet()
    net.app.targets["bob"] = ["uas1", "uas2"]
    net.send(request("INVITE", "sip:bob@proxy.test"))
    (e1,) = net.requests_at("uas1")
    (e2,) = net.requests_at("uas2")
    net.answer("uas1", e1, 180)
    net.answer("uas2", e2, 603, tag="t2")
    assert any(e.request.method == "CANCEL" for e in net.requests_at("uas1"))
    net.answer("uas1", e1, 487)
    statuses = [r.status for r in net.responses_at("uac")]
    assert statuses[-1] == 603


def test_serial_forking_tries_the_next_target_after_a_failure() -> None:
    net = ProxyNet()
    net.app.targets["bob"] = ["uas1", "uas2", "uas3"]
    net.app.parallel = False
    net.send(request("MESSAGE", "sip:bob@proxy.test"))
    (e1,) = net.requests_at("uas1")
    assert net.requests_at("uas2") == []
    net.answer("uas1", e1, 480)
    (e2,) = net.requests_at("uas2")
    net.answer("uas2", e2, 200, tag="t2")
    assert [r.status for r in net.responses_at("uac")] == [200]
    assert net.requests_at("uas3") == []


def test_cancel_from_upstream() -> None:
    net = ProxyNet()
    invite = request("INVITE")
    net.send(invite)
    (ev,) = net.requests_at("uas1")
    net.answer("uas1", ev, 180)
    from webims.sip.uac import cancel_for

    net.send(cancel_for(invite))
    ok = [r for r in net.responses_at("uac") if r.cseq.method == "CANCEL"]
    assert [r.status for r in ok] == [200]
    (cancel,) = net.requests_at("uas1")
    assert cancel.request.method == "CANCEL"
    net.answer("uas1", cancel, 200)
    net.answer("uas1", ev, 487)
    finals = [r.status for r in net.responses_at("uac") if r.cseq.method == "INVITE"]
    assert finals == [487]


def test_cancel_before_the_application_decides_gets_487() -> None:
    net = ProxyNet()
    net.app.defer = True
    invite = request("INVITE")
    net.send(invite)
    from webims.sip.uac import cancel_for

    net.send(cancel_for(invite))
    statuses = [(r.cseq.method, r.status) for r in net.responses_at("uac")]
    assert ("CANCEL", 200) in statuses and ("INVITE", 487) in statuses
    (ctx,) = net.app.pending
    ctx.forward(now=net.now)  # too late: nothing is sent
    net.pump()
    assert net.requests_at("uas1") == []


def test_unmatched_cancel_gets_481() -> None:
    net = ProxyNet()
    from webims.sip.uac import cancel_for

    net.send(cancel_for(request("INVITE")))
    assert [r.status for r in net.responses_at("uac")] == [481]


def test_no_answer_gives_408() -> None:
    net = ProxyNet()
    net.drop.add("uas1")
    net.send(request("INVITE"))  # the 100 Trying stops the UAC's own Timer B
    net.advance(40)
    statuses = [r.status for r in net.responses_at("uac")]
    assert statuses == [100, 408]


def test_timer_c_cancels_a_ringing_branch() -> None:
    net = ProxyNet()
    net.send(request("INVITE"))
    (ev,) = net.requests_at("uas1")
    net.answer("uas1", ev, 180)
    net.advance(180)
    assert net.requests_at("uas1") == []
    net.advance(10)
    (cancel,) = net.requests_at("uas1")
    assert cancel.request.method == "CANCEL"


def test_timer_c_without_answer_to_cancel_ends_in_408() -> None:
    net = ProxyNet()
    net.send(request("INVITE"))
    (ev,) = net.requests_at("uas1")
    net.answer("uas1", ev, 180)
    net.drop.add("uas1")
    net.advance(185 + 33)
    finals = [r.status for r in net.responses_at("uac") if r.status >= 200]
    assert finals == [408]


def test_max_forwards_zero_gets_483() -> None:
    net = ProxyNet()
    net.send(request(max_forwards=0))
    (resp,) = net.responses_at("uac")
    assert resp.status == 483
    assert net.requests_at("uas1") == []


def test_missing_max_forwards_is_added() -> None:
    net = ProxyNet()
    req = request()
    req.headers.remove("Max-Forwards")
    net.send(req)
    (ev,) = net.requests_at("uas1")
    assert ev.request.max_forwards == 70


def test_loop_is_detected_and_a_spiral_is_not() -> None:
    net = ProxyNet()
    net.app.targets["loop"] = [PROXY]  # the proxy forwards to itself, unchanged
    net.send(request("MESSAGE", "sip:loop@proxy.test"))
    statuses = [r.status for r in net.responses_at("uac")]
    assert statuses == [482]
    # A spiral: the request comes back with another Request-URI, and goes on.
    net3 = ProxyNet()
    net3.app.targets["a"] = [PROXY]
    calls: list[str] = []

    def on_request3(ctx: ProxyContext, now: float) -> None:
        calls.append(ctx.request.uri_text)
        if len(calls) == 1:
            ctx.forward([Target(parse_uri(f"sip:b@{PROXY}"))], now=now)
        else:
            ctx.forward([Target(parse_uri("sip:bob@uas1"))], now=now)

    net3.app.on_request = on_request3  # type: ignore[method-assign]
    net3.send(request("MESSAGE", f"sip:a@{PROXY}"))
    (ev,) = net3.requests_at("uas1")
    assert len(ev.request.vias) == 3  # uac, proxy (spiral), proxy
    assert calls == [f"sip:a@{PROXY}", f"sip:b@{PROXY}"]


def test_a_spiral_with_the_same_request_uri_through_another_route_is_not_a_loop() -> None:
    """The S-CSCF's originating then terminating pass (via the I-CSCF): the same
    Request-URI, told apart by the Route the proxy consumed."""
    net = ProxyNet()
    calls: list[str] = []

    def on_request(ctx: ProxyContext, now: float) -> None:
        calls.append(str(ctx.route_used))
        if len(calls) == 1:
            ctx.forward(
                [Target(ctx.request.uri, headers=[("Route", f"<sip:{PROXY};lr>")])], now=now
            )
        else:
            ctx.forward([Target(ctx.request.uri, dest="uas1")], now=now)

    net.app.on_request = on_request  # type: ignore[method-assign]
    net.send(request("MESSAGE", "sip:bob@home1.net", route=[f"<sip:orig@{PROXY};lr>"]))
    (ev,) = net.requests_at("uas1")
    assert len(ev.request.vias) == 3
    assert calls == [f"sip:orig@{PROXY};lr", f"sip:{PROXY};lr"]


def test_route_processing_removes_our_route_and_follows_the_next() -> None:
    net = ProxyNet()
    req = request("MESSAGE", "sip:bob@home1.net", route=[f"<sip:{PROXY};lr>", "<sip:uas2;lr>"])
    net.send(req)
    (ev,) = net.requests_at("uas2")
    assert [str(r.uri) for r in ev.request.routes] == ["sip:uas2;lr"]
    assert ev.request.uri_text == "sip:bob@home1.net"


def test_strict_router_next_hop() -> None:
    net = ProxyNet()
    req = request("MESSAGE", "sip:bob@home1.net", route=[f"<sip:{PROXY};lr>", "<sip:uas2>"])
    net.send(req)
    (ev,) = net.requests_at("uas2")
    assert ev.request.uri_text == "sip:uas2"
    assert [str(r.uri) for r in ev.request.routes] == ["sip:bob@home1.net"]


def test_proxy_require_unknown_gets_420() -> None:
    net = ProxyNet()
    net.send(request(extra=[("Proxy-Require", "foo")]))
    (resp,) = net.responses_at("uac")
    assert resp.status == 420 and resp.headers.get("Unsupported") == "foo"


def test_application_can_answer_itself_later() -> None:
    net = ProxyNet()
    net.app.defer = True
    net.send(request())
    assert net.responses_at("uac") == []
    (ctx,) = net.app.pending
    ctx.respond(403, headers=[("Warning", '399 proxy.test "no"')], now=net.now)
    net.pump()
    (resp,) = net.responses_at("uac")
    assert resp.status == 403 and resp.to.tag


def test_retransmitted_request_is_not_forwarded_twice() -> None:
    net = ProxyNet()
    net.drop.add("uac")  # responses to the UAC are lost, so it retransmits
    net.send(request())
    (ev,) = net.requests_at("uas1")
    net.answer("uas1", ev, 200)
    net.drop.clear()
    net.advance(2)
    assert net.requests_at("uas1") == []
    assert [r.status for r in net.responses_at("uac")] == [200]


def test_contexts_are_released() -> None:
    net = ProxyNet()
    for _ in range(5):
        net.send(request())
        (ev,) = net.requests_at("uas1")
        net.answer("uas1", ev, 200)
    net.advance(40)
    assert net.proxy._by_server == {} and net.proxy._by_client == {}
    assert len(net.proxy_layer) == 0


def test_route_used_names_the_route_the_core_consumed() -> None:
    net = ProxyNet()
    net.app.defer = True
    net.send(request(route=[f"<sip:token123@{PROXY};lr;ob>", "<sip:next@uas2;lr>"]))
    (ctx,) = net.app.pending
    assert isinstance(ctx.route_used, SipURI) and ctx.route_used.user == "token123"
    assert [str(r.uri) for r in ctx.request.routes] == ["sip:next@uas2;lr"]


def test_application_originates_a_request_and_hears_its_final_response() -> None:
    net = ProxyNet()
    heard: list[int] = []
    notify = request("NOTIFY", "sip:watcher@uas2")
    net.proxy.originate(notify, lambda resp, now: heard.append(resp.status), now=net.now)
    net.pump()
    (ev,) = net.requests_at("uas2")
    assert ev.request.top_via.host == PROXY  # the core put our Via on top
    net.answer("uas2", ev, 180)
    net.answer("uas2", ev, 200)
    assert heard == [180, 200]
    assert net.app.responses == []  # not the proxy application's business


def test_an_originated_request_without_answer_reports_408() -> None:
    net = ProxyNet()
    net.drop.add("uas3")
    heard: list[int] = []
    net.proxy.originate(
        request("NOTIFY", "sip:w@uas3"), lambda resp, now: heard.append(resp.status), now=net.now
    )
    net.pump()
    net.advance(40)
    assert heard == [408]
