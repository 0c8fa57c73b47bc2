"""The SIP transaction layer (RFC 3261 §17, RFC 6026), sans-I/O.

A :class:`TransactionLayer` is driven by three kinds of sources, as in aioquic:

- the network: :meth:`~TransactionLayer.receive` a parsed message, or
  :meth:`~TransactionLayer.transport_error` for a destination;
- the transaction user (TU): :meth:`~TransactionLayer.send_request`,
  :meth:`~TransactionLayer.send_response`, :meth:`~TransactionLayer.send_stateless`;
- the clock: :meth:`~TransactionLayer.handle_timer` once the time returned by
  :meth:`~TransactionLayer.get_timer` has come.

After any of these the caller sends every ``(bytes, destination)`` pair from
:meth:`~TransactionLayer.datagrams_to_send`, handles every event from
:meth:`~TransactionLayer.next_event`, and re-arms its one timer to
:meth:`~TransactionLayer.get_timer`.  Time is always an argument; nothing here
reads a clock, opens a socket or awaits.

The transitions are the tables of :mod:`webims.sip.transaction_tables`, run
by the transactions of :mod:`webims.sip.transaction_machines`; this module
matches messages to them (:mod:`webims.sip.transaction_keys`) and holds what
they share.  Each message is serialised once, when it is first sent, and
retransmissions reuse those bytes.  Timers sit in one
:class:`~webims.sip.timerqueue.TimerQueues` for the whole layer (a FIFO per
duration); a stopped timer is only marked dead and dropped when it reaches the
front.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Any, cast

from .checks import make_response
from .errors import LocalError
from .message import Request, Response
from .timerqueue import TimerQueues
from .transaction_events import (
    AckReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TimedOut,
    TransactionTerminated,
    TransportFailed,
)
from .transaction_keys import make_ack, server_key, top_via_key
from .transaction_machines import (
    AnyTransaction,
    ClientTransaction,
    ServerTransaction,
    Transaction,
    _Timer,
)
from .transaction_tables import TimerConfig, TxInput, TxState

__all__ = [
    "AckReceived",
    "ClientTransaction",
    "Event",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransaction",
    "StrayResponse",
    "TimedOut",
    "TimerConfig",
    "Transaction",
    "TransactionLayer",
    "TransactionTerminated",
    "TransportFailed",
    "TxInput",
    "TxState",
    "make_ack",
]

# The input a response is, by status class (index status // 100; 0 is unused,
# a Response is always 100-699).
_FROM_NETWORK: tuple[TxInput, ...] = (
    (TxInput.RESPONSE_1XX,) * 2 + (TxInput.RESPONSE_2XX,) + (TxInput.RESPONSE_300_699,) * 4
)
_FROM_TU: tuple[TxInput, ...] = (
    (TxInput.TU_1XX,) * 2 + (TxInput.TU_2XX,) + (TxInput.TU_300_699,) * 4
)


# -- the layer ------------------------------------------------------------------------


class TransactionLayer:
    """Every client and server transaction of one SIP element.

    Messages given to :meth:`receive` must carry what matching reads (top Via,
    CSeq; for RFC 2543 peers also From, To, Call-ID): run
    :func:`~webims.sip.check_request` / :func:`~webims.sip.check_response`
    first.  A message lacking them raises :class:`~webims.sip.ParseError`
    and changes nothing.
    """

    def __init__(self, config: TimerConfig = TimerConfig(), *, send_100: bool = False) -> None:  # noqa: B008
        #: Timer values.
        self.config = config
        #: Answer each new INVITE with 100 Trying from the transaction itself
        #: (§17.2.1).  Off by default: the TU sends it (a proxy core does at
        #: once, §16.2), and must when it cannot answer within 200 ms.
        self.send_100 = send_100
        self._clients: dict[tuple[object, ...], ClientTransaction] = {}
        self._servers: dict[tuple[object, ...], ServerTransaction] = {}
        self._by_dest: dict[Hashable, set[Transaction]] = {}
        self._timers: TimerQueues[_Timer] = TimerQueues()
        self._out: list[tuple[bytes, Hashable]] = []
        self._events: deque[Event] = deque()
        self._rx_source: Hashable = None

    # -- from the network -----------------------------------------------------
    def receive(
        self, msg: Request | Response, source: Hashable, reliable: bool, now: float
    ) -> None:
        """Hand a message received from ``source`` to its transaction.

        Responses are matched by top Via branch and CSeq method (§17.1.3); one
        that matches no client transaction becomes :class:`StrayResponse`.
        Requests are matched by branch, sent-by and method, an ACK to its
        INVITE (§17.2.3), or, without the magic cookie, the RFC 2543 way.  A
        retransmission is absorbed by its transaction; a new request creates a
        server transaction and a :class:`RequestReceived`; an ACK matching
        nothing becomes :class:`AckReceived` with ``tx=None``.  A CANCEL is a
        new request like any other (see :meth:`find_server_invite`).

        ``reliable`` says whether ``source`` is a reliable transport; it sets
        the timers of a server transaction created here.
        """
        if isinstance(msg, Response):
            branch = top_via_key(msg)[0]
            method = msg.cseq.method
            client_tx = self._clients.get((branch, method)) if branch is not None else None
            if client_tx is None:
                self._events.append(StrayResponse(msg, source))
                return
            client_tx.process_input(_FROM_NETWORK[msg.status // 100], msg, now)
            return

        method = msg.method
        key, legacy = server_key(msg, "INVITE" if method == "ACK" else method)
        stx = self._servers.get(key)
        if stx is not None and legacy and not _legacy_to_tag_matches(stx, msg):
            stx = None
        if stx is not None:
            self._rx_source = source
            stx.process_input(TxInput.ACK if method == "ACK" else TxInput.REQUEST, msg, now)
            self._rx_source = None
            return
        if method == "ACK":
            self._events.append(AckReceived(msg, source, None))
            return
        stx = ServerTransaction(self, key, msg, source=source, reliable=reliable, legacy=legacy)
        # A legacy key already taken by a transaction whose To tag differs:
        # the new one works but cannot absorb its own retransmissions.
        if key not in self._servers:
            self._servers[key] = stx
        self._index(stx)
        self._events.append(RequestReceived(stx, msg, source))
        if stx.invite and self.send_100:
            stx.process_input(TxInput.TU_1XX, make_response(msg, 100), now)

    def transport_error(self, dest: Hashable, now: float) -> None:
        """The transport could not send to ``dest`` (or lost its flow).

        Every transaction using that destination gets ``TRANSPORT_ERROR``;
        where its table says so, the TU gets :class:`TransportFailed` and the
        transaction ends (§17.1.4, §17.2.4).
        """
        txs = self._by_dest.get(dest)
        if txs:
            for tx in list(txs):
                tx.process_input(TxInput.TRANSPORT_ERROR, None, now)

    # -- from the TU -----------------------------------------------------------------
    def send_request(
        self, request: Request, dest: Hashable, reliable: bool, now: float
    ) -> ClientTransaction:
        """Start a client transaction for ``request`` and send it to ``dest``.

        The request must already carry its own top Via with a unique branch
        (RFC 3261 §8.1.1.7).  INVITE starts in Calling with Timers A and B,
        any other method in Trying with Timers E and F (§17.1.1.2, §17.1.2.2);
        A and E only on unreliable transports.  ACK is never a transaction:
        use :meth:`send_stateless`.
        """
        method = request.method
        if method == "ACK":
            raise LocalError("ACK is not sent through a client transaction")
        branch = top_via_key(request)[0]
        if not branch:
            raise LocalError("the top Via of a request needs a branch")
        key = (branch, method)
        if key in self._clients:
            raise LocalError(f"a client transaction with branch {branch} exists")
        wire = request.serialize()
        tx = ClientTransaction(self, key, request, dest=dest, reliable=reliable, wire=wire)
        self._clients[key] = tx
        self._index(tx)
        self._out.append((wire, dest))
        cfg = self.config
        if tx.invite:
            if not reliable:
                self._arm_retx(tx, TxInput.TIMER_A, cfg.timer_a, now)
            self._arm_life(tx, TxInput.TIMER_B, cfg.timer_b, now)
        else:
            if not reliable:
                self._arm_retx(tx, TxInput.TIMER_E, cfg.timer_e, now)
            self._arm_life(tx, TxInput.TIMER_F, cfg.timer_f, now)
        return tx

    def send_response(self, tx: ServerTransaction, response: Response, now: float) -> None:
        """Send a response of the TU through its server transaction.

        A response the transaction's state does not take (a second final
        response, a 1xx after the final one ...) is ignored.
        """
        tx.process_input(_FROM_TU[response.status // 100], response, now)

    def send_stateless(self, msg: Request | Response, dest: Hashable) -> None:
        """Send without a transaction: the ACK for a 2xx, a stateless reply."""
        self._out.append((msg.serialize(), dest))

    def terminate(self, tx: Transaction) -> None:
        """End a transaction at the TU's request, silently.

        For what the TU times itself: a proxy's Timer C (§16.6 item 11), or an
        INVITE that got no final response 64*T1 after its CANCEL (§9.1).
        """
        if tx.state is not TxState.TERMINATED:
            tx.state = TxState.TERMINATED
            self._terminated(tx)

    def find_server_invite(self, cancel: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL refers to (§9.2), or None."""
        if cancel.method != "CANCEL":
            return None
        key, legacy = server_key(cancel, "INVITE")
        tx = self._servers.get(key)
        if tx is None or not tx.invite:
            return None
        if legacy and cancel.to.tag != tx.request.to.tag:
            return None
        return tx

    # -- timers and output -----------------------------------------------------------
    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``, in deadline order.

        A restarted timer counts from ``now``: called late (a stalled loop), a
        retransmission timer fires once, not once for every period missed.
        """
        timers = self._timers
        while (timer := timers.pop_due(now, _alive)) is not None:
            tx = timer.tx
            assert tx is not None
            timer.tx = None
            if tx._retx is timer:
                tx._retx = None
            else:
                tx._life = None
            tx.process_input(timer.input, None, now)

    def get_timer(self) -> float | None:
        """The earliest deadline of any transaction, or None."""
        return self._timers.first(_alive)

    def datagrams_to_send(self) -> list[tuple[bytes, Hashable]]:
        """Every ``(bytes, destination)`` to send, oldest first; drains them."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        """The next event for the TU, or None when there is none."""
        return self._events.popleft() if self._events else None

    def __len__(self) -> int:
        """The number of live transactions."""
        return len(self._clients) + len(self._servers)

    @property
    def counts(self) -> tuple[int, int]:
        """The live client and server transactions (read by the metrics)."""
        return len(self._clients), len(self._servers)

    # -- internals ---------------------------------------------------------------------
    def _index(self, tx: Transaction) -> None:
        txs = self._by_dest.get(tx.dest)
        if txs is None:
            self._by_dest[tx.dest] = {tx}
        else:
            txs.add(tx)

    def _arm_retx(self, tx: Transaction, inp: TxInput, interval: float, now: float) -> None:
        old = tx._retx
        if old is not None:
            old.tx = None
        # Never below T1: a machine forced into a state (tests, tools) must not
        # be able to spin on a zero interval.
        interval = max(interval, self.config.T1)
        timer = tx._retx = _Timer(tx, inp)
        tx._interval = interval
        self._timers.push(interval, now, timer)

    def _arm_life(self, tx: Transaction, inp: TxInput, delay: float, now: float) -> None:
        old = tx._life
        if old is not None:
            old.tx = None
        if delay <= 0:
            tx._life = None
            tx._zero = inp
            return
        timer = tx._life = _Timer(tx, inp)
        self._timers.push(delay, now, timer)

    def _stop_timers(self, tx: Transaction) -> None:
        for timer in (tx._retx, tx._life):
            if timer is not None:
                timer.tx = None  # dropped when it reaches the front
        tx._retx = tx._life = None

    def _terminated(self, tx: Transaction) -> None:
        """Forget a transaction that reached Terminated (§17.1.1.2 and alike:
        it is destroyed at once)."""
        self._stop_timers(tx)
        tx._zero = None
        table: dict[tuple[object, ...], Any] = (
            self._clients if isinstance(tx, ClientTransaction) else self._servers
        )
        if table.get(tx.key) is tx:
            del table[tx.key]
        txs = self._by_dest.get(tx.dest)
        if txs is not None:
            txs.discard(tx)
            if not txs:
                del self._by_dest[tx.dest]
        self._events.append(TransactionTerminated(cast("AnyTransaction", tx)))


def _legacy_to_tag_matches(tx: ServerTransaction, req: Request) -> bool:
    """The To tag part of RFC 2543 matching (§17.2.3): an ACK carries the tag
    of the final response, any other request the tag of the original one."""
    tag = req.to.tag
    if req.method == "ACK":
        return tag == tx._to_tag
    return tag == tx.request.to.tag


def _alive(timer: _Timer) -> bool:
    return timer.tx is not None
