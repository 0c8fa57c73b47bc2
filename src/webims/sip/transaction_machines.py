"""The transactions themselves: state, timers, and the actions their tables name.

Each :class:`Transaction` runs one of the four tables of
:mod:`webims.sip.transaction_tables`; :meth:`Transaction.process_input` looks
an input up and runs the action, and the actions below are the only code that
sends, starts or stops a timer, or tells the TU something.  They work through
the owning :class:`~webims.sip.transaction.TransactionLayer`'s output list,
event queue and timer heap: the two modules are one unit, split for size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from .message import Message, Request, Response
from .transaction_events import AckReceived, ResponseReceived, TimedOut, TransportFailed
from .transaction_keys import make_ack
from .transaction_tables import (
    INVITE_CLIENT,
    INVITE_SERVER,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    Table,
    TxAction,
    TxInput,
    TxState,
)

if TYPE_CHECKING:
    from .transaction import TransactionLayer

__all__ = ["AnyTransaction", "ClientTransaction", "ServerTransaction", "Transaction"]

_log = logging.getLogger(__name__)

_TERMINATED = TxState.TERMINATED

_Action = Callable[[Any, Message | None, float], None]
_Compiled = dict[tuple[TxState, TxInput], tuple[_Action | None, TxState]]


class _Timer:
    """One armed timer; ``tx`` is None once it was stopped (a dead heap entry)."""

    __slots__ = ("input", "tx")

    def __init__(self, tx: Transaction, inp: TxInput) -> None:
        self.tx: Transaction | None = tx
        self.input = inp


class Transaction:
    """What client and server transactions share.

    ``state`` moves only through :meth:`process_input`, which looks the input
    up in the machine's table; ``request`` is the request that created the
    transaction and ``dest`` where its messages go.
    """

    __slots__ = (
        "_interval",
        "_layer",
        "_life",
        "_retx",
        "_table",
        "_zero",
        "dest",
        "invite",
        "key",
        "reliable",
        "request",
        "state",
    )

    def __init__(
        self,
        layer: TransactionLayer,
        key: tuple[object, ...],
        request: Request,
        *,
        dest: Hashable,
        reliable: bool,
        table: _Compiled,
        state: TxState,
    ) -> None:
        self._layer = layer
        self._table = table
        self._retx: _Timer | None = None  # A, E or G
        self._life: _Timer | None = None  # every other timer
        self._interval = 0.0  # current retransmission interval
        self._zero: TxInput | None = None  # a 0 s timer, fired after the transition
        self.key = key
        self.request = request
        self.dest = dest
        self.reliable = reliable
        self.invite = request.method == "INVITE"
        self.state = state

    def process_input(self, inp: TxInput, msg: Message | None, now: float) -> None:
        """Apply one input: run the table's action and move to its next state.

        An input with no entry for the current state is ignored (logged at
        debug level).  Normally called by the :class:`TransactionLayer`;
        public for tests and tools that drive a machine directly.
        """
        entry = self._table.get((self.state, inp))
        if entry is None:
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug("%r ignores %s in %s", self, inp.name, self.state.name)
            return
        action, nxt = entry
        if action is not None:
            action(self, msg, now)
        if nxt is not self.state:
            self.state = nxt
            if nxt is _TERMINATED:
                self._layer._terminated(self)
                return
        zero = self._zero
        if zero is not None:
            self._zero = None
            self.process_input(zero, None, now)

    @property
    def method(self) -> str:
        return self.request.method

    def __repr__(self) -> str:
        kind = type(self).__name__
        return f"<{kind} {self.request.method} {self.key[0]} {self.state.name}>"


class ClientTransaction(Transaction):
    """A request sent by the TU, and its responses (RFC 3261 §17.1)."""

    __slots__ = ("_ack", "_wire")

    def __init__(
        self,
        layer: TransactionLayer,
        key: tuple[object, ...],
        request: Request,
        *,
        dest: Hashable,
        reliable: bool,
        wire: bytes,
    ) -> None:
        invite = request.method == "INVITE"
        super().__init__(
            layer,
            key,
            request,
            dest=dest,
            reliable=reliable,
            table=_ICT if invite else _NICT,
            state=TxState.CALLING if invite else TxState.TRYING,
        )
        self._wire = wire  # the request as sent, for retransmissions
        self._ack: bytes | None = None  # the ACK for a 300-699, once built


class ServerTransaction(Transaction):
    """A request received from the network, and the TU's responses (§17.2)."""

    __slots__ = ("_last", "_to_tag", "legacy")

    def __init__(
        self,
        layer: TransactionLayer,
        key: tuple[object, ...],
        request: Request,
        *,
        source: Hashable,
        reliable: bool,
        legacy: bool,
    ) -> None:
        invite = request.method == "INVITE"
        super().__init__(
            layer,
            key,
            request,
            dest=source,
            reliable=reliable,
            table=_IST if invite else _NIST,
            state=TxState.PROCEEDING if invite else TxState.TRYING,
        )
        self._last: bytes | None = None  # the last response sent
        #: Matched the RFC 2543 way (no magic cookie in the branch).
        self.legacy = legacy
        # For RFC 2543 ACK matching: the To tag of the final response sent.
        self._to_tag = request.to.tag if legacy else None

    @property
    def source(self) -> Hashable:
        """Where the request came from; responses go back there."""
        return self.dest


#: What the layer hands out; :class:`Transaction` itself is never instantiated.
AnyTransaction = ClientTransaction | ServerTransaction

# -- actions ------------------------------------------------------------------------


def _resend_request_a(tx: ClientTransaction, msg: Message | None, now: float) -> None:
    layer = tx._layer
    layer._out.append((tx._wire, tx.dest))
    if not tx.reliable:
        layer._arm_retx(tx, TxInput.TIMER_A, 2 * tx._interval, now)


def _resend_request_e(tx: ClientTransaction, msg: Message | None, now: float) -> None:
    layer = tx._layer
    layer._out.append((tx._wire, tx.dest))
    if not tx.reliable:
        layer._arm_retx(tx, TxInput.TIMER_E, min(2 * tx._interval, layer.config.T2), now)


def _resend_request_e_t2(tx: ClientTransaction, msg: Message | None, now: float) -> None:
    layer = tx._layer
    layer._out.append((tx._wire, tx.dest))
    if not tx.reliable:
        layer._arm_retx(tx, TxInput.TIMER_E, layer.config.T2, now)


def _pass_response(tx: ClientTransaction, msg: Message | None, now: float) -> None:
    if isinstance(msg, Response):
        tx._layer._events.append(ResponseReceived(tx, msg))


def _pass_1xx_stop_timers(tx: ClientTransaction, msg: Message | None, now: float) -> None:
    tx._layer._stop_timers(tx)
    tx._wire = b""  # an INVITE is never sent again once a response came
    _pass_response(tx, msg, now)


def _pass_2xx_start_m(tx: ClientTransaction, msg: Message | None, now: float) -> None:
    layer = tx._layer
    layer._stop_timers(tx)
    tx._wire = b""
    layer._arm_life(tx, TxInput.TIMER_M, layer.config.timer_m, now)
    _pass_response(tx, msg, now)


def _send_ack_start_d(tx: ClientTransaction, msg: Message | None, now: float) -> None:
    layer = tx._layer
    layer._stop_timers(tx)
    tx._wire = b""
    if isinstance(msg, Response):
        tx._ack = make_ack(tx.request, msg).serialize()
        layer._out.append((tx._ack, tx.dest))
    layer._arm_life(tx, TxInput.TIMER_D, 0.0 if tx.reliable else layer.config.timer_d, now)
    _pass_response(tx, msg, now)


def _resend_ack(tx: ClientTransaction, msg: Message | None, now: float) -> None:
    if tx._ack is not None:
        tx._layer._out.append((tx._ack, tx.dest))


def _pass_final_start_k(tx: ClientTransaction, msg: Message | None, now: float) -> None:
    layer = tx._layer
    layer._stop_timers(tx)
    tx._wire = b""
    tx.request = tx.request.skeleton()
    layer._arm_life(tx, TxInput.TIMER_K, 0.0 if tx.reliable else layer.config.timer_k, now)
    _pass_response(tx, msg, now)


def _send_response(tx: ServerTransaction, msg: Message | None, now: float) -> None:
    if isinstance(msg, Response):
        wire = tx._last = msg.serialize()
        tx._layer._out.append((wire, tx.dest))
        if tx.legacy and msg.status >= 200:
            tx._to_tag = msg.to.tag


def _resend_response(tx: ServerTransaction, msg: Message | None, now: float) -> None:
    if tx._last is not None:
        tx._layer._out.append((tx._last, tx.dest))


def _send_final_start_j(tx: ServerTransaction, msg: Message | None, now: float) -> None:
    _send_response(tx, msg, now)
    if not tx.legacy:
        # Only the key and the response bytes matter from now on (for Timer J,
        # 32 s on UDP): keep the request line, let the rest go.
        tx.request = tx.request.skeleton()
    layer = tx._layer
    layer._arm_life(tx, TxInput.TIMER_J, 0.0 if tx.reliable else layer.config.timer_j, now)


def _send_2xx_start_l(tx: ServerTransaction, msg: Message | None, now: float) -> None:
    _send_response(tx, msg, now)
    layer = tx._layer
    layer._arm_life(tx, TxInput.TIMER_L, layer.config.timer_l, now)


def _send_final_start_g_h(tx: ServerTransaction, msg: Message | None, now: float) -> None:
    _send_response(tx, msg, now)
    layer = tx._layer
    if not tx.reliable:
        layer._arm_retx(tx, TxInput.TIMER_G, layer.config.timer_g, now)
    layer._arm_life(tx, TxInput.TIMER_H, layer.config.timer_h, now)


def _resend_final_g(tx: ServerTransaction, msg: Message | None, now: float) -> None:
    _resend_response(tx, msg, now)
    if not tx.reliable:
        layer = tx._layer
        layer._arm_retx(tx, TxInput.TIMER_G, min(2 * tx._interval, layer.config.T2), now)


def _confirm_start_i(tx: ServerTransaction, msg: Message | None, now: float) -> None:
    layer = tx._layer
    layer._stop_timers(tx)
    layer._arm_life(tx, TxInput.TIMER_I, 0.0 if tx.reliable else layer.config.timer_i, now)


def _pass_ack(tx: ServerTransaction, msg: Message | None, now: float) -> None:
    if isinstance(msg, Request):
        layer = tx._layer
        layer._events.append(AckReceived(msg, layer._rx_source, tx))


def _inform_timeout(tx: AnyTransaction, msg: Message | None, now: float) -> None:
    tx._layer._events.append(TimedOut(tx))


def _inform_transport_error(tx: AnyTransaction, msg: Message | None, now: float) -> None:
    tx._layer._events.append(TransportFailed(tx))


_ACTIONS: dict[TxAction, _Action] = {
    TxAction.RESEND_REQUEST_A: _resend_request_a,
    TxAction.RESEND_REQUEST_E: _resend_request_e,
    TxAction.RESEND_REQUEST_E_T2: _resend_request_e_t2,
    TxAction.PASS_RESPONSE: _pass_response,
    TxAction.PASS_1XX_STOP_TIMERS: _pass_1xx_stop_timers,
    TxAction.PASS_2XX_START_M: _pass_2xx_start_m,
    TxAction.SEND_ACK_START_D: _send_ack_start_d,
    TxAction.RESEND_ACK: _resend_ack,
    TxAction.PASS_FINAL_START_K: _pass_final_start_k,
    TxAction.SEND_RESPONSE: _send_response,
    TxAction.RESEND_RESPONSE: _resend_response,
    TxAction.SEND_FINAL_START_J: _send_final_start_j,
    TxAction.SEND_2XX_START_L: _send_2xx_start_l,
    TxAction.SEND_FINAL_START_G_H: _send_final_start_g_h,
    TxAction.RESEND_FINAL_G: _resend_final_g,
    TxAction.CONFIRM_START_I: _confirm_start_i,
    TxAction.PASS_ACK: _pass_ack,
    TxAction.SEND_2XX: _send_response,
    TxAction.INFORM_TIMEOUT: _inform_timeout,
    TxAction.INFORM_TRANSPORT_ERROR: _inform_transport_error,
}


def _compile(table: Table) -> _Compiled:
    """The table with each action name replaced by its function."""
    return {
        key: (None if action is None else _ACTIONS[action], nxt)
        for key, (action, nxt) in table.items()
    }


_ICT = _compile(INVITE_CLIENT)
_NICT = _compile(NON_INVITE_CLIENT)
_IST = _compile(INVITE_SERVER)
_NIST = _compile(NON_INVITE_SERVER)
