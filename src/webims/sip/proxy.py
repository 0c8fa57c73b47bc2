"""The stateful proxy core (RFC 3261 §16, RFC 3327 Path), sans-I/O.

A network function (eP-CSCF, I-CSCF, S-CSCF) is a :class:`ProxyApplication`
over this core.  For every new request the core validates it (§16.3), does
the Route pre-processing (§16.4), and hands a :class:`ProxyContext` to the
application, which either answers (:meth:`ProxyContext.respond`) or forwards to
one or more targets (:meth:`ProxyContext.forward`), now or later (after a
Diameter answer, say).  The core then does the rest of §16: copying the request
per target, Max-Forwards, Record-Route, Via with a loop-detecting branch, the
client transactions, parallel or serial forking, Timer C, CANCEL of pending
branches, response forwarding and best-response selection (§16.7), and the
stateless forwarding of ACKs for 2xx (§16.11).

The core never resolves names or touches sockets.  It asks a :class:`Locator`
for the next hop of a URI and for its own address on a hop; destinations are
opaque values handed to the transaction layer.

Choices made here, where RFC 3261 leaves room:

* The loop-detection part of the branch hashes the Route this proxy consumed,
  the Request-URI, Call-ID, From tag, To tag, CSeq number, Proxy-Require and
  Proxy-Authorization, but not the top Via: with the Via included a request
  coming back through another proxy hashes differently and a loop is never
  seen (RFC 5393 §4 discusses this).  The Route tells the S-CSCF's
  originating and terminating passes of one request apart (an IMS spiral
  with an unchanged Request-URI).
* A CANCEL that matches no INVITE server transaction is answered 481 rather
  than forwarded statelessly.
* 100 Trying is sent at once for every INVITE (§16.2 allows any time < 200 ms).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple, Protocol

from .checks import check_proxy_request, make_response, new_tag, response_for_error
from .errors import LoopDetected, SipError
from .message import Request, Response
from .status import reason_phrase
from .transaction import (
    AckReceived,
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    TimedOut,
    TransactionLayer,
    TransactionTerminated,
    TransportFailed,
)
from .uac import cancel_for
from .uri import URI, SipURI
from .via import MAGIC_COOKIE

__all__ = [
    "Hop",
    "Locator",
    "ProxyApplication",
    "ProxyConfig",
    "ProxyContext",
    "ProxyCore",
    "Target",
]

log = logging.getLogger(__name__)

#: Timer C (§16.6 item 11): longer than 3 minutes.
TIMER_C = 185.0


class Hop(NamedTuple):
    """The next hop of a request: transport and address (§18.1.1, RFC 3263)."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"


class Locator(Protocol):
    """What the core needs to know of the network; supplied by the I/O layer."""

    def next_hop(self, uri: URI) -> Hashable:
        """The destination for a request whose next hop is ``uri``.

        Usually a :class:`Hop`; a transport may return a flow of its own (for a
        URI carrying a flow token).  Raise :class:`SipError` (e.g. 404, 430,
        503) when there is none.
        """

    def is_reliable(self, dest: Hashable) -> bool:
        """Whether ``dest`` is a reliable (stream) transport."""

    def local_via(self, dest: Hashable) -> tuple[str, str]:
        """(transport, sent-by) for our Via on a request sent to ``dest``."""

    def is_local(self, uri: URI) -> bool:
        """Whether ``uri`` names this element (for Route pre-processing)."""


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    timer_c: float = TIMER_C
    #: Max-Forwards to add when a request has none.
    default_max_forwards: int = 70
    #: Option tags this proxy understands in Proxy-Require.
    supported: frozenset[str] = frozenset({"path", "outbound", "gruu", "sec-agree"})
    loop_detection: bool = True


@dataclass(slots=True)
class Target:
    """One destination of a forwarded request.

    ``dest`` overrides the next-hop lookup; ``headers`` are added to this
    branch only (as ``(name, value)``, appended; ``first=True`` ones go on top).
    """

    uri: URI
    dest: Hashable | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    headers_first: list[tuple[str, str]] = field(default_factory=list)


class ProxyApplication(Protocol):
    """A network function: decides what happens to each request."""

    def on_request(self, ctx: ProxyContext, now: float) -> None:
        """A new request (or an ACK for a 2xx, with ``ctx.stateless``).

        Call ``ctx.forward(...)`` or ``ctx.respond(...)``, now or later.
        """

    def on_response(self, ctx: ProxyContext, response: Response, now: float) -> None:
        """A response about to be sent upstream (provisional or final).

        The application may change it in place (strip or add headers).
        """


#: Told each response to a request the application sent with
#: :meth:`ProxyCore.originate` (a synthetic 408 or 503 when none came).
ResponseCallback = Callable[[Response, float], None]


class ContextState(Enum):
    ROUTING = "routing"  # waiting for the application's decision
    FORWARDING = "forwarding"  # branches pending
    COMPLETED = "completed"  # a final response has been sent upstream


class Branch:
    """One forwarded copy of the request and its client transaction."""

    __slots__ = (
        "cancel_pending",
        "cancelled",
        "ctx",
        "dest",
        "final",
        "provisional",
        "request",
        "target",
        "timer_c",
        "tx",
    )

    def __init__(self, ctx: ProxyContext, target: Target, request: Request, dest: Hashable) -> None:
        self.ctx = ctx
        self.target = target
        self.request = request
        self.dest = dest
        self.tx: ClientTransaction | None = None
        self.final: Response | None = None
        self.provisional = False
        self.cancelled = False
        self.cancel_pending = False
        self.timer_c: float | None = None

    @property
    def done(self) -> bool:
        return self.final is not None


class ProxyContext:
    """The response context of one proxied request (§16.7)."""

    __slots__ = (
        "_pending_targets",
        "_reopenable",
        "best",
        "branches",
        "cancelled",
        "core",
        "data",
        "parallel",
        "record_route",
        "request",
        "route_used",
        "server_tx",
        "source",
        "state",
        "stateless",
    )

    def __init__(
        self,
        core: ProxyCore,
        request: Request,
        source: Hashable,
        server_tx: ServerTransaction | None,
    ) -> None:
        self.core = core
        self.request = request
        self.source = source
        self.server_tx = server_tx
        #: True for an ACK to a 2xx: forwarded without a transaction.
        self.stateless = server_tx is None
        self.state = ContextState.ROUTING
        self.branches: list[Branch] = []
        self.best: Response | None = None
        self.cancelled = False
        self.parallel = True
        self.record_route: str | None = None
        #: The Route naming this element that §16.4 took off the request
        #: (an edge proxy finds its flow token there), if there was one.
        self.route_used: URI | None = None
        self._pending_targets: list[Target] = []
        self._reopenable = False
        #: Free for the application (e.g. the registration being processed).
        self.data: dict[str, object] = {}

    # -- decisions of the application --------------------------------------
    def default_target(self) -> Target:
        """Where the request goes after Route processing: its Request-URI."""
        return Target(uri=self.request.uri)

    def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        now: float,
    ) -> Response | None:
        """Answer the request from here (no forwarding); returns what was sent."""
        if self.stateless or self.state is ContextState.COMPLETED:
            return None
        resp = make_response(
            self.request,
            status,
            reason,
            to_tag=new_tag(),
            extra=headers,
            body=body,
            content_type=content_type,
        )
        self.core._send_upstream(self, resp, now)
        return resp

    def forward(
        self,
        targets: list[Target] | None = None,
        *,
        parallel: bool = True,
        record_route: str | None = None,
        now: float,
    ) -> None:
        """Proxy the request to ``targets`` (default: its Request-URI).

        ``parallel=False`` tries them one after the other (serial forking,
        §16.6 / §16.7 step 3).  ``record_route`` is the URI to put in a
        Record-Route header (``<sip:...;lr>`` is added around it).
        """
        if self.cancelled or self.state is ContextState.COMPLETED:
            return  # answered already (a CANCEL came first): nothing to do
        if self.state is not ContextState.ROUTING:
            raise RuntimeError("forward() called twice on one request")
        self.parallel = parallel
        self.record_route = record_route
        todo = list(targets) if targets else [self.default_target()]
        if self.stateless:
            for t in todo:
                self.core._forward_stateless(self, t)
            self.state = ContextState.COMPLETED
            return
        self.state = ContextState.FORWARDING
        if parallel:
            for t in todo:
                self.core._start_branch(self, t, now)
        else:
            self._pending_targets = todo[1:]
            self.core._start_branch(self, todo[0], now)
        self.core._check_complete(self, now)

    def reopen(self) -> bool:
        """Take the decision back when every branch has failed: called from
        ``on_response`` with the best final response (§16.7 step 6), before it
        goes upstream.  That response is then not sent; the application calls
        :meth:`forward` (new targets) or :meth:`respond` later.  An I-CSCF
        does this to try another S-CSCF (TS 24.229 5.3.1.3).  Returns False,
        changing nothing, at any other time or once the request was cancelled."""
        if not self._reopenable or self.cancelled:
            return False
        self._reopenable = False
        self.state = ContextState.ROUTING
        self.best = None
        return True

    def _reopened(self) -> bool:
        """After ``on_response``: whether it called :meth:`reopen` (the flag
        is then cleared; it is set again only for the next best response)."""
        reopened = not self._reopenable
        self._reopenable = False
        return reopened

    def next_target(self) -> Target | None:
        return self._pending_targets.pop(0) if self._pending_targets else None


def _loop_hash(req: Request, route: str) -> str:
    """The loop-detection part of our branch (see the module notes).

    ``route`` is the Route naming this element that §16.4 consumed (or ""):
    an IMS spiral through the S-CSCF (originating, then terminating) keeps
    the Request-URI and differs only there.  Only this process ever compares
    the hash (the branch also names the proxy instance), so Python's own hash
    of the routing fields will do.
    """
    index = req.headers._lookup()
    key = (
        route,
        req.uri_text,
        req.call_id,
        req.from_tag,
        req.to_tag,
        req.cseq.seq,
        tuple(index.get("proxy-require", ())),
        tuple(index.get("proxy-authorization", ())),
    )
    return format(hash(key) & 0xFFFFFFFFFFFF, "x")


class ProxyCore:
    """The transaction user that proxies requests for a :class:`ProxyApplication`."""

    def __init__(
        self,
        layer: TransactionLayer,
        app: ProxyApplication,
        locator: Locator,
        config: ProxyConfig | None = None,
    ) -> None:
        self.layer = layer
        self.app = app
        self.locator = locator
        self.config = config or ProxyConfig()
        self._by_server: dict[ServerTransaction, ProxyContext] = {}
        self._by_client: dict[ClientTransaction, Branch] = {}
        #: Requests the application sent itself (NOTIFY, SUBSCRIBE...).
        self._own: dict[ClientTransaction, ResponseCallback] = {}
        self._timers: list[tuple[float, int, Branch]] = []
        self._seq = itertools.count()
        self._branch_ids = itertools.count(1)
        self._instance = hashlib.blake2b(repr(id(self)).encode(), digest_size=3).hexdigest()
        self._branch_prefix = f"branch={MAGIC_COOKIE}{self._instance}"

    # -- driving the core ---------------------------------------------------
    def process_events(self, now: float) -> None:
        """Handle every event the transaction layer has queued."""
        layer = self.layer
        while (event := layer.next_event()) is not None:
            self.handle_event(event, now)

    def handle_event(self, event: Event, now: float) -> None:
        if isinstance(event, RequestReceived):
            self._on_request(event.tx, event.request, event.source, now)
        elif isinstance(event, ResponseReceived):
            self._on_response(event.tx, event.response, now)
        elif isinstance(event, AckReceived):
            if event.tx is None:
                self._on_stateless_ack(event.request, event.source, now)
        elif isinstance(event, TimedOut):
            self._on_branch_failure(event.tx, 408, now)
        elif isinstance(event, TransportFailed):
            self._on_branch_failure(event.tx, 503, now)
        elif isinstance(event, TransactionTerminated):
            self._on_terminated(event.tx)
        elif isinstance(event, StrayResponse):
            self._on_stray_response(event.response, now)

    def get_timer(self) -> float | None:
        layer_timer = self.layer.get_timer()
        while self._timers and self._timers[0][2].timer_c != self._timers[0][0]:
            heapq.heappop(self._timers)
        mine = self._timers[0][0] if self._timers else None
        if layer_timer is None:
            return mine
        if mine is None:
            return layer_timer
        return min(layer_timer, mine)

    def handle_timer(self, now: float) -> None:
        self.layer.handle_timer(now)
        while self._timers and self._timers[0][0] <= now:
            when, _, branch = heapq.heappop(self._timers)
            if branch.timer_c != when or branch.done:
                continue
            branch.timer_c = None
            self._on_timer_c(branch, now)
        self.process_events(now)

    # -- requests of the application's own (it acts as a UAC) -----------------
    def originate(
        self,
        request: Request,
        on_response: ResponseCallback | None = None,
        *,
        dest: Hashable | None = None,
        now: float,
    ) -> ClientTransaction | None:
        """Send a request of the application's own (a NOTIFY of a notifier, the
        SUBSCRIBE of an eP-CSCF) in a client transaction of its own.

        The request goes to ``dest``, or to the next hop of its first Route
        or its Request-URI; the core puts our Via on top.  ``on_response``
        hears every response, and a synthetic 408 (no answer) or 503 (the
        transport failed, or no next hop) when none came.  Returns the
        transaction, or None when the request could not be sent.
        """
        if dest is None:
            routes = request.routes
            try:
                dest = self.locator.next_hop(routes[0].uri if routes else request.uri)
            except SipError as err:
                if on_response is not None:
                    on_response(make_response(request, err.status, err.reason), now)
                return None
        transport, sent_by = self.locator.local_via(dest)
        branch = f"{MAGIC_COOKIE}{self._instance}u{next(self._branch_ids):x}"
        rport = ";rport" if transport == "UDP" else ""
        request.headers.add_first("Via", f"SIP/2.0/{transport} {sent_by};branch={branch}{rport}")
        tx = self.layer.send_request(request, dest, self.locator.is_reliable(dest), now)
        self._own[tx] = on_response or _ignore_response
        return tx

    def _own_failed(self, tx: ClientTransaction, status: int, now: float) -> bool:
        callback = self._own.pop(tx, None)
        if callback is None:
            return False
        callback(make_response(tx.request, status, reason_phrase(status)), now)
        return True

    # -- requests --------------------------------------------------------------
    def _on_request(
        self, tx: ServerTransaction, req: Request, source: Hashable, now: float
    ) -> None:
        if req.method == "CANCEL":
            self._on_cancel(tx, req, now)
            return
        ctx = ProxyContext(self, req, source, tx)
        self._by_server[tx] = ctx
        if req.method == "INVITE":
            self.layer.send_response(tx, make_response(req, 100), now)
        try:
            self._validate(req)
            self._preprocess_routes(req, ctx)
        except SipError as err:
            self._send_upstream(ctx, response_for_error(req, err), now)
            return
        self.app.on_request(ctx, now)

    def _validate(self, req: Request) -> None:
        """§16.3: syntax, Max-Forwards, loops, Proxy-Require."""
        check_proxy_request(req, supported=self.config.supported)
        if self.config.loop_detection and any(
            self._branch_prefix in v for v in req.headers.get_all("Via")
        ):
            # This proxy forwarded the request before: a loop if the parts of
            # the request that routing depends on are unchanged, else a spiral.
            routes = req.routes
            consumed = str(routes[0].uri) if routes and self.locator.is_local(routes[0].uri) else ""
            mine = self._loop_marker(req, consumed)
            for via in req.vias:
                branch = via.branch or ""
                if branch.endswith(mine) and branch.startswith(MAGIC_COOKIE + self._instance):
                    raise LoopDetected("request looped back to this proxy")

    def _loop_marker(self, req: Request, route: str) -> str:
        return "." + _loop_hash(req, route)

    def _preprocess_routes(self, req: Request, ctx: ProxyContext | None = None) -> None:
        """§16.4: undo a strict router's rewrite, drop our own top Route."""
        uri = req.uri
        if self.locator.is_local(uri) and req.routes:
            # The previous hop was a strict router: the Request-URI is the
            # Record-Route we put in; the real target is the last Route.
            last = req.routes[-1]
            req.headers.set("Route", ", ".join(str(r) for r in req.routes[:-1]))
            if not req.routes[:-1]:
                req.headers.remove("Route")
            req.uri = last.uri
        routes = req.routes
        if routes and self.locator.is_local(routes[0].uri):
            req.headers.pop_first_value("Route")
            if ctx is not None:
                ctx.route_used = routes[0].uri
            if len(routes) > 1 and self.locator.is_local(routes[1].uri):
                # RFC 5658 double Record-Route: the entry for our other side is ours too.
                req.headers.pop_first_value("Route")

    def _on_cancel(self, tx: ServerTransaction, cancel: Request, now: float) -> None:
        """§16.10: answer the CANCEL, then cancel every pending branch."""
        invite_tx = self.layer.find_server_invite(cancel)
        ctx = self._by_server.get(invite_tx) if invite_tx is not None else None
        if ctx is None:
            self.layer.send_response(tx, make_response(cancel, 481, to_tag=new_tag()), now)
            return
        self.layer.send_response(tx, make_response(cancel, 200, to_tag=new_tag()), now)
        ctx.cancelled = True
        if ctx.state is ContextState.ROUTING:
            ctx.respond(487, now=now)
            return
        ctx._pending_targets.clear()
        self._cancel_branches(ctx, now)

    def _on_stateless_ack(self, ack: Request, source: Hashable, now: float) -> None:
        """§16.11: an ACK for a 2xx is routed like any request, without state."""
        ctx = ProxyContext(self, ack, source, None)
        try:
            self._validate(ack)
            self._preprocess_routes(ack, ctx)
        except SipError as err:
            log.debug("dropping ACK: %s", err)
            return
        self.app.on_request(ctx, now)

    # -- forwarding -------------------------------------------------------------
    def _prepare(self, ctx: ProxyContext, target: Target) -> tuple[Request, Hashable]:
        """§16.6 steps 1–8 for one target: the copy to send and its destination."""
        src = ctx.request
        req = src.copy()
        if target.uri is not src.uri:
            req.uri = target.uri
        mf = src.max_forwards
        req.headers.set(
            "Max-Forwards", str(mf - 1 if mf is not None else self.config.default_max_forwards)
        )
        if ctx.record_route is not None:
            req.headers.add_first("Record-Route", f"<{ctx.record_route}>")
        for name, value in target.headers_first:
            req.headers.add_first(name, value)
        for name, value in target.headers:
            req.headers.add(name, value)
        # The Route set as parsed for validation, unless this branch added Routes.
        adds_route = (target.headers or target.headers_first) and any(
            n.lower() == "route" for n, _ in target.headers + target.headers_first
        )
        routes = req.routes if adds_route else src.routes
        next_uri = routes[0].uri if routes else req.uri
        if routes and isinstance(next_uri, SipURI) and not next_uri.lr:
            # §16.6 step 6: the next hop is a strict router; it gets the
            # request with itself as Request-URI and our target as last Route.
            req.headers.pop_first_value("Route")
            req.headers.add("Route", f"<{req.uri_text}>")
            req.uri = next_uri
        dest = target.dest
        if dest is None:
            dest = self.locator.next_hop(next_uri)
        transport, sent_by = self.locator.local_via(dest)
        used = str(ctx.route_used) if ctx.route_used is not None else ""
        loop = self._loop_marker(src, used)
        branch = f"{MAGIC_COOKIE}{self._instance}{next(self._branch_ids):x}{loop}"
        rport = ";rport" if transport == "UDP" else ""
        req.headers.add_first("Via", f"SIP/2.0/{transport} {sent_by};branch={branch}{rport}")
        return req, dest

    def _start_branch(self, ctx: ProxyContext, target: Target, now: float) -> None:
        try:
            req, dest = self._prepare(ctx, target)
        except SipError as err:
            branch = Branch(ctx, target, ctx.request, None)
            branch.final = make_response(ctx.request, err.status, err.reason, to_tag=new_tag())
            ctx.branches.append(branch)
            self._consider(ctx, branch.final)
            return
        branch = Branch(ctx, target, req, dest)
        ctx.branches.append(branch)
        branch.tx = self.layer.send_request(req, dest, self.locator.is_reliable(dest), now)
        self._by_client[branch.tx] = branch
        if req.method == "INVITE":
            self._arm_timer_c(branch, now)

    def _forward_stateless(self, ctx: ProxyContext, target: Target) -> None:
        try:
            req, dest = self._prepare(ctx, target)
        except SipError as err:
            log.debug("cannot forward %s statelessly: %s", ctx.request.method, err)
            return
        self.layer.send_stateless(req, dest)

    def _arm_timer_c(self, branch: Branch, now: float) -> None:
        when = now + self.config.timer_c
        branch.timer_c = when
        heapq.heappush(self._timers, (when, next(self._seq), branch))

    def _on_timer_c(self, branch: Branch, now: float) -> None:
        """§16.8: no final answer in time.  After a provisional response the
        branch is cancelled and given 64*T1 more for its 487 (§9.1); without one,
        or when that also passes, the branch ends as a 408."""
        if branch.provisional and not branch.cancelled:
            self._cancel_branch(branch, now)
            when = now + self.layer.config.timer_b
            branch.timer_c = when
            heapq.heappush(self._timers, (when, next(self._seq), branch))
            return
        if branch.tx is not None:
            self.layer.terminate(branch.tx)
            self._by_client.pop(branch.tx, None)
        self._finish_branch(branch, self._synthetic(branch.ctx, 408), now)

    # -- responses ---------------------------------------------------------------
    def _on_response(self, tx: ClientTransaction, resp: Response, now: float) -> None:
        branch = self._by_client.get(tx)
        if branch is None:
            own = self._own.get(tx)
            if own is not None:  # to a request of the application's own
                if resp.status >= 200:
                    del self._own[tx]
                own(resp, now)
            return  # else the response to one of our CANCELs
        resp.headers.pop_first_value("Via")
        if "Via" not in resp.headers:
            return
        ctx = branch.ctx
        status = resp.status
        if status < 200:
            branch.provisional = True
            if branch.cancel_pending:
                self._cancel_branch(branch, now)
            elif branch.timer_c is not None and status > 100 and not branch.cancelled:
                self._arm_timer_c(branch, now)
            if status > 100 and ctx.state is ContextState.FORWARDING:
                self.app.on_response(ctx, resp, now)
                self._forward_upstream(ctx, resp, now)
            return
        branch.timer_c = None
        if 200 <= status < 300:
            branch.final = resp
            self._cancel_branches(ctx, now)
            if ctx.request.method == "INVITE" or ctx.state is not ContextState.COMPLETED:
                self.app.on_response(ctx, resp, now)
                self._forward_upstream(ctx, resp, now)
                ctx.state = ContextState.COMPLETED
                self._release(ctx)
            return
        self._finish_branch(branch, resp, now)

    def _finish_branch(self, branch: Branch, resp: Response, now: float) -> None:
        if branch.done:
            return
        branch.final = resp
        branch.timer_c = None
        ctx = branch.ctx
        if ctx.state is not ContextState.FORWARDING:
            return
        self._consider(ctx, resp)
        if resp.status >= 600:
            ctx._pending_targets.clear()
            self._cancel_branches(ctx, now)
        elif not ctx.parallel and not ctx.cancelled:
            nxt = ctx.next_target()
            if nxt is not None:
                self._start_branch(ctx, nxt, now)
        self._check_complete(ctx, now)

    def _consider(self, ctx: ProxyContext, resp: Response) -> None:
        if ctx.best is None or _rank(resp) < _rank(ctx.best):
            ctx.best = resp

    def _check_complete(self, ctx: ProxyContext, now: float) -> None:
        """§16.7 step 6: once every branch has a final response, send the best."""
        if ctx.state is not ContextState.FORWARDING:
            return
        if ctx._pending_targets or not all(b.done for b in ctx.branches):
            return
        best = ctx.best or self._synthetic(ctx, 408)
        if 400 <= best.status < 500 and best.status in (401, 407):
            best = self._merge_challenges(ctx, best)
        if best.status == 503:
            best = self._synthetic(ctx, 500)
        ctx._reopenable = True
        self.app.on_response(ctx, best, now)
        if ctx._reopened():
            return  # the application took the decision back
        self._send_upstream(ctx, best, now)

    def _merge_challenges(self, ctx: ProxyContext, best: Response) -> Response:
        """§16.7 step 7: a 401/407 upstream carries every branch's challenges."""
        for b in ctx.branches:
            if b.final is None or b.final is best or b.final.status not in (401, 407):
                continue
            for name in ("WWW-Authenticate", "Proxy-Authenticate"):
                for value in b.final.headers.get_all(name):
                    best.headers.add(name, value)
        return best

    def _synthetic(self, ctx: ProxyContext, status: int) -> Response:
        return make_response(ctx.request, status, reason_phrase(status), to_tag=new_tag())

    def _on_branch_failure(
        self, tx: ServerTransaction | ClientTransaction, status: int, now: float
    ) -> None:
        if isinstance(tx, ClientTransaction):
            branch = self._by_client.get(tx)
            if branch is not None:
                self._finish_branch(branch, self._synthetic(branch.ctx, status), now)
            else:
                self._own_failed(tx, status, now)

    def _on_terminated(self, tx: ServerTransaction | ClientTransaction) -> None:
        if isinstance(tx, ClientTransaction):
            self._by_client.pop(tx, None)
            self._own.pop(tx, None)
            return
        ctx = self._by_server.pop(tx, None)
        if ctx is not None and ctx.state is ContextState.COMPLETED:
            # Break the context <-> branch cycle so that reference counting
            # frees the whole transaction at once (no work for the cyclic GC).
            ctx.branches = []

    def _on_stray_response(self, resp: Response, now: float) -> None:
        """§16.7 step 3 note: a 2xx to an INVITE that matches no transaction is
        forwarded statelessly along the Via path; anything else is dropped."""
        if not (200 <= resp.status < 300 and resp.cseq.method == "INVITE"):
            return
        resp.headers.pop_first_value("Via")
        vias = resp.vias
        if not vias:
            return
        via = vias[0]
        host = via.received or via.host
        port = via.rport or via.port or (5061 if via.transport in ("TLS", "WSS") else 5060)
        self.layer.send_stateless(resp, Hop(via.transport, host, port))

    # -- sending upstream --------------------------------------------------------
    def _forward_upstream(self, ctx: ProxyContext, resp: Response, now: float) -> None:
        if ctx.server_tx is not None:
            self.layer.send_response(ctx.server_tx, resp, now)

    def _send_upstream(self, ctx: ProxyContext, resp: Response, now: float) -> None:
        if ctx.state is ContextState.COMPLETED:
            return
        ctx.state = ContextState.COMPLETED
        self._forward_upstream(ctx, resp, now)
        self._cancel_branches(ctx, now)
        self._release(ctx)

    def _release(self, ctx: ProxyContext) -> None:
        """Forget a finished non-INVITE context at once.

        Only an INVITE's context is needed after its final response (a CANCEL
        or a 2xx retransmission may still come); the server transaction
        absorbs retransmitted requests by itself, and late branch responses
        find their branch, not the context.  Releasing it now keeps memory per
        transaction small at thousands of transactions a second.
        """
        if ctx.request.method != "INVITE" and ctx.server_tx is not None:
            self._by_server.pop(ctx.server_tx, None)
            if all(b.done for b in ctx.branches):
                ctx.branches = []

    # -- CANCEL ------------------------------------------------------------------
    def _cancel_branches(self, ctx: ProxyContext, now: float) -> None:
        if ctx.request.method != "INVITE":
            return
        for b in ctx.branches:
            if not b.done and not b.cancelled:
                self._cancel_branch(b, now)

    def _cancel_branch(self, branch: Branch, now: float) -> None:
        """§9.1: CANCEL only after a provisional response; until then, remember."""
        if branch.cancelled or branch.done or branch.tx is None:
            return
        if not branch.provisional:
            branch.cancel_pending = True
            return
        branch.cancelled = True
        branch.cancel_pending = False
        self.layer.send_request(
            cancel_for(branch.request), branch.dest, self.locator.is_reliable(branch.dest), now
        )


def _ignore_response(response: Response, now: float) -> None:
    return None


def _rank(resp: Response) -> tuple[int, int]:
    """Lower is better (§16.7 step 6): 6xx first, then the lowest class; within
    4xx the statuses that let the caller retry (401/407, 415, 420, 484), and
    430 last: it says that an edge proxy's flow failed (RFC 5626 §11.5), not
    what the user or another device of theirs answered."""
    status = resp.status
    if status >= 600:
        return (0, status)
    cls = status // 100
    preferred = {401: 0, 407: 0, 415: 1, 420: 1, 484: 1, 430: 3}.get(status, 2)
    return (cls, preferred * 1000 + status)


class LooseRouter:
    """The application of a plain stateful proxy (RFC 3261 §16 with loose
    routing): a request whose Request-URI names this element and carries no
    further Route is answered here (200 to OPTIONS, the keep-alive and health
    probe of SIP; 404 to anything else), every other request goes on to its
    next Route or its Request-URI.

    The CSCFs are applications of their own over the same core; this one is
    what an element runs before it has procedures of its own, and what the
    proxy benchmark measures.
    """

    ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, MESSAGE, UPDATE, PRACK"

    def __init__(self, locator: Locator, *, record_route: str | None = None) -> None:
        self.locator = locator
        self.record_route = record_route

    def on_request(self, ctx: ProxyContext, now: float) -> None:
        req = ctx.request
        if not req.routes and self.locator.is_local(req.uri):
            if req.method == "OPTIONS":
                ctx.respond(200, headers=[("Allow", self.ALLOW)], now=now)
            elif req.method != "ACK":
                ctx.respond(404, now=now)
            return
        ctx.forward(record_route=self.record_route, now=now)

    def on_response(self, ctx: ProxyContext, response: Response, now: float) -> None:
        return None
