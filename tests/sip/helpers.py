"""Test helpers for the transaction layer: a fake clock, message builders, and a
:class:`MemoryNetwork` joining a UAC-side and a UAS-side
:class:`~webims.sip.transaction.TransactionLayer` over an in-memory, optionally
lossy link (in the style of aioquic's and aiortc's test pairs).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from webims.sip import Request, Response, make_response, parse_message
from webims.sip.transaction import Event, RequestReceived, TimerConfig, TransactionLayer

UAC = "uac"
UAS = "uas"


class FakeClock:
    """Time under the test's control."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def __call__(self) -> float:
        return self.now


def make_request(
    method: str = "REGISTER",
    *,
    branch: str | None = "z9hG4bK-1",
    via_host: str = "uac.example.com",
    via_port: int | None = 5060,
    transport: str = "UDP",
    uri: str = "sip:bob@home1.net",
    call_id: str = "call-1@uac.example.com",
    cseq: int = 1,
    from_tag: str = "ft-1",
    to_tag: str | None = None,
    routes: Sequence[str] = (),
    below_vias: Sequence[str] = (),
    via_text: str | None = None,
) -> Request:
    """A request as parsed off the wire."""
    if via_text is None:
        hostport = via_host if via_port is None else f"{via_host}:{via_port}"
        via_text = f"SIP/2.0/{transport} {hostport}"
        if branch is not None:
            via_text += f";branch={branch}"
    lines = [f"{method} {uri} SIP/2.0", f"Via: {via_text}"]
    lines += [f"Via: {v}" for v in below_vias]
    lines += [f"Route: {r}" for r in routes]
    to = "<sip:bob@home1.net>" + (f";tag={to_tag}" if to_tag else "")
    lines += [
        "Max-Forwards: 70",
        f"From: Alice <sip:alice@home1.net>;tag={from_tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Content-Length: 0",
    ]
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def reply(req: Request, status: int, to_tag: str | None = "tt-1") -> Response:
    """A response to ``req``, serialised and parsed again as a peer would see it."""
    resp = make_response(req, status, to_tag=to_tag)
    return reparse_response(resp.serialize())


def reparse_response(data: bytes) -> Response:
    msg = parse_message(data)
    assert isinstance(msg, Response)
    return msg


def reparse_request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def drain_events(layer: TransactionLayer) -> list[Event]:
    out: list[Event] = []
    while (event := layer.next_event()) is not None:
        out.append(event)
    return out


def run_timers(
    layer: TransactionLayer, clock: FakeClock, until: float
) -> list[tuple[float, bytes, Hashable]]:
    """Fire every timer up to ``until``, one deadline at a time; return what was
    sent, stamped with the time it was sent."""
    sent: list[tuple[float, bytes, Hashable]] = []
    while (deadline := layer.get_timer()) is not None and deadline <= until:
        clock.now = deadline
        layer.handle_timer(deadline)
        sent += [(deadline, data, dest) for data, dest in layer.datagrams_to_send()]
    clock.now = max(clock.now, until)
    return sent


class MemoryNetwork:
    """A UAC-side and a UAS-side transaction layer joined by memory.

    Everything the UAC side sends goes to the UAS side (whose ``source`` for it
    is ``"uac"``) and back.  ``loss_to_uas`` / ``loss_to_uac`` are loss patterns
    cycled over the datagrams of each direction: ``True`` drops that datagram.
    Events are collected in ``uac_events`` / ``uas_events``; ``uac_tu`` and
    ``uas_tu``, when set, are called with each event as it is drained, playing
    the transaction users.
    """

    def __init__(
        self,
        clock: FakeClock,
        *,
        config: TimerConfig | None = None,
        reliable: bool = False,
        loss_to_uas: Sequence[bool] = (),
        loss_to_uac: Sequence[bool] = (),
    ) -> None:
        config = config or TimerConfig()
        self.clock = clock
        self.reliable = reliable
        self.uac = TransactionLayer(config)
        self.uas = TransactionLayer(config)
        self.loss = {UAS: list(loss_to_uas), UAC: list(loss_to_uac)}
        self.counts = {UAS: 0, UAC: 0}
        #: Every datagram offered to the link: (time, to, bytes, delivered).
        self.log: list[tuple[float, str, bytes, bool]] = []
        self.uac_events: list[Event] = []
        self.uas_events: list[Event] = []
        self.uac_tu: Callable[[Event], None] | None = None
        self.uas_tu: Callable[[Event], None] | None = None

    def _lost(self, to: str) -> bool:
        pattern = self.loss[to]
        n = self.counts[to]
        self.counts[to] = n + 1
        return bool(pattern) and pattern[n % len(pattern)]

    def _drain(self) -> None:
        for layer, events, tu in (
            (self.uac, self.uac_events, self.uac_tu),
            (self.uas, self.uas_events, self.uas_tu),
        ):
            while (event := layer.next_event()) is not None:
                events.append(event)
                if tu is not None:
                    tu(event)

    def flush(self) -> int:
        """Deliver datagrams both ways until the link is quiet; return how many
        were delivered."""
        delivered = 0
        for _ in range(1000):
            self._drain()
            moved = False
            for sender, receiver, to, source in (
                (self.uac, self.uas, UAS, UAC),
                (self.uas, self.uac, UAC, UAS),
            ):
                for data, dest in sender.datagrams_to_send():
                    assert dest == to, f"datagram for {dest!r} on the {to} link"
                    moved = True
                    lost = self._lost(to)
                    self.log.append((self.clock.now, to, data, not lost))
                    if not lost:
                        receiver.receive(parse_message(data), source, self.reliable, self.clock.now)
                        delivered += 1
            if not moved:
                self._drain()
                return delivered
        raise AssertionError("the link never went quiet")

    def next_deadline(self) -> float | None:
        times = [t for t in (self.uac.get_timer(), self.uas.get_timer()) if t is not None]
        return min(times) if times else None

    def run(self, until: float) -> None:
        """Deliver, fire timers in deadline order and deliver again, up to ``until``."""
        self.flush()
        while (deadline := self.next_deadline()) is not None and deadline <= until:
            self.clock.now = max(self.clock.now, deadline)
            self.uac.handle_timer(deadline)
            self.uas.handle_timer(deadline)
            self.flush()
        self.clock.now = max(self.clock.now, until)

    def sent(self, to: str) -> list[bytes]:
        """Every datagram offered towards ``to``, lost ones included."""
        return [data for _, dest, data, _ in self.log if dest == to]


def answer(net: MemoryNetwork, status: int, to_tag: str = "uas-1") -> None:
    """Make the UAS side's TU answer every new request at once with ``status``."""

    def tu(event: Event) -> None:
        if isinstance(event, RequestReceived):
            resp = make_response(event.request, status, to_tag=to_tag)
            net.uas.send_response(event.tx, resp, net.clock.now)

    net.uas_tu = tu
