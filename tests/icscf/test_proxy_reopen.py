"""The proxy core's ``ProxyContext.reopen``, which the I-CSCF uses to try
another S-CSCF (TS 24.229 5.3.1.3), driven in memory like tests/sip."""

from __future__ import annotations

from webims.sip import Response
from webims.sip.proxy import ProxyContext, Target
from webims.sip.uri import parse_uri

from ..sip.test_proxy import App, ProxyNet, request


class Reopening(App):
    """Sends each request to uas1; when every branch failed, takes the
    decision back once and tries uas2.  Records what ``reopen`` said."""

    def __init__(self) -> None:
        super().__init__()
        self.reopened: list[tuple[int, bool]] = []

    def on_response(self, ctx: ProxyContext, response: Response, now: float) -> None:
        super().on_response(ctx, response, now)
        if ctx.data.get("again"):
            self.reopened.append((response.status, ctx.reopen()))
            return
        ok = ctx.reopen()
        self.reopened.append((response.status, ok))
        if ok:
            ctx.data["again"] = True
            ctx.forward([Target(parse_uri("sip:bob@uas2"))], now=now)


def net_with(app: App) -> ProxyNet:
    net = ProxyNet()
    net.app = app
    net.proxy.app = app
    return net


def test_reopen_after_every_branch_failed_sends_the_request_elsewhere() -> None:
    app = Reopening()
    net = net_with(app)
    net.send(request())
    (first,) = net.requests_at("uas1")
    net.answer("uas1", first, 480)
    assert net.responses_at("uac") == []  # the 480 was held back
    (second,) = net.requests_at("uas2")
    net.answer("uas2", second, 200)
    assert [r.status for r in net.responses_at("uac")] == [200]
    assert app.reopened == [(480, True), (200, False)]  # a 2xx cannot be taken back


def test_after_the_second_failure_the_best_response_of_the_new_branches_goes_up() -> None:
    app = Reopening()
    net = net_with(app)
    net.send(request())
    (first,) = net.requests_at("uas1")
    net.answer("uas1", first, 480)
    (second,) = net.requests_at("uas2")
    net.answer("uas2", second, 486)
    # reopen() may be called again: the application keeps count of its tries
    assert app.reopened == [(480, True), (486, True)]


def test_reopen_is_refused_for_a_2xx_and_for_provisional_responses() -> None:
    app = Reopening()
    net = net_with(app)
    net.send(request("INVITE"))
    (ev,) = net.requests_at("uas1")
    net.answer("uas1", ev, 180)
    net.answer("uas1", ev, 200)
    assert [r.status for r in net.responses_at("uac")] == [100, 180, 200]
    assert app.reopened == [(180, False), (200, False)]
