"""The four transaction state machines of RFC 3261 §17, as amended by RFC 6026,
written down as data.

Each machine is one table ``(state, input) -> (action, next state)``.  The
table is the whole truth about transitions: a transaction
(:mod:`webims.sip.transaction_machines`) only looks an input up and runs the
named action.  A pair that is not in a table is
an input the machine *ignores* in that state (a late timer, a response after
the transaction is over, a TU response sent twice ...): nothing is sent,
nothing changes, nothing raises.  An action of ``None`` means the input is
absorbed on purpose (the RFC's "-" arcs), which is also a no-op.

The timer values (RFC 3261 §17.1.1.1, §17.1.2.2, §17.2.1, §17.2.2; Timers L
and M of RFC 6026) live in :class:`TimerConfig`; which timer is armed on which
transport is decided by the actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "INVITE_CLIENT",
    "INVITE_SERVER",
    "NON_INVITE_CLIENT",
    "NON_INVITE_SERVER",
    "ZERO_ON_RELIABLE",
    "Table",
    "TimerConfig",
    "TxAction",
    "TxInput",
    "TxState",
    "states_of",
]


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1, T2, T4 and the transaction timers derived from them.

    See RFC 3261 §17.1.1.1 (T1), §17.1.2.2 (T2, T4) and the timer summary of
    its Appendix A; RFC 6026 adds Timers L and M.  The derived
    values are those for an unreliable transport; the actions use 0 for
    D, I, J and K (and do not arm A, E, G at all) on reliable ones.
    """

    #: Round-trip time estimate; first retransmission interval (seconds).
    T1: float = 0.5
    #: Cap of the retransmission interval for non-INVITE requests and
    #: INVITE final responses.
    T2: float = 4.0
    #: Longest time a message may stay in the network.
    T4: float = 5.0
    #: Lower bound of Timer D on unreliable transports (§17.1.1.2: "at least"
    #: 32 s).  Timer D is never shorter than 64*T1 either, so that a client
    #: keeps absorbing final responses for as long as a server with the same
    #: T1 retransmits them (its Timer H).
    D: float = 32.0

    timer_a: float = field(init=False)  #: first INVITE request retransmission
    timer_b: float = field(init=False)  #: INVITE client transaction timeout
    timer_d: float = field(init=False)  #: INVITE client Completed lifetime
    timer_e: float = field(init=False)  #: first non-INVITE request retransmission
    timer_f: float = field(init=False)  #: non-INVITE client transaction timeout
    timer_g: float = field(init=False)  #: first INVITE final response retransmission
    timer_h: float = field(init=False)  #: wait for the ACK of a non-2xx final
    timer_i: float = field(init=False)  #: INVITE server Confirmed lifetime
    timer_j: float = field(init=False)  #: non-INVITE server Completed lifetime
    timer_k: float = field(init=False)  #: non-INVITE client Completed lifetime
    timer_l: float = field(init=False)  #: INVITE server Accepted lifetime (RFC 6026)
    timer_m: float = field(init=False)  #: INVITE client Accepted lifetime (RFC 6026)

    def __post_init__(self) -> None:
        if not self.T1 > 0:
            raise ValueError("T1 must be positive")
        if self.T2 < self.T1:
            raise ValueError("T2 must not be smaller than T1")
        if self.T4 < 0 or self.D < 0:
            raise ValueError("T4 and D must not be negative")
        timeout = 64 * self.T1
        derived = {
            "timer_a": self.T1,
            "timer_b": timeout,
            "timer_d": max(self.D, timeout),
            "timer_e": self.T1,
            "timer_f": timeout,
            "timer_g": self.T1,
            "timer_h": timeout,
            "timer_i": self.T4,
            "timer_j": timeout,
            "timer_k": self.T4,
            "timer_l": timeout,
            "timer_m": timeout,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)


class TxState(IntEnum):
    """Transaction states, named as in the RFC 3261 §17 figures and RFC 6026."""

    CALLING = 1
    TRYING = 2
    PROCEEDING = 3
    ACCEPTED = 4
    COMPLETED = 5
    CONFIRMED = 6
    TERMINATED = 7


class TxInput(IntEnum):
    """What can happen to a transaction.

    ``REQUEST`` is a retransmission of the request that created a server
    transaction; ``ACK`` an ACK matching an INVITE server transaction.
    ``RESPONSE_*`` come from the transport (client side), ``TU_*`` from the
    transaction user (server side).  ``TIMER_X`` is Timer X firing.
    """

    REQUEST = 1
    ACK = 2
    RESPONSE_1XX = 3
    RESPONSE_2XX = 4
    RESPONSE_300_699 = 5
    TU_1XX = 6
    TU_2XX = 7
    TU_300_699 = 8
    TRANSPORT_ERROR = 9
    TIMER_A = 10
    TIMER_B = 11
    TIMER_D = 12
    TIMER_E = 13
    TIMER_F = 14
    TIMER_G = 15
    TIMER_H = 16
    TIMER_I = 17
    TIMER_J = 18
    TIMER_K = 19
    TIMER_L = 20
    TIMER_M = 21


class TxAction(IntEnum):
    """What a transition does besides changing state; each is one RFC arc label.

    Timer bookkeeping implied by the target state (stop the retransmission
    timer, start Timer D ...) belongs to the action that enters that state.
    Entering Terminated always stops every timer and removes the transaction.
    """

    # -- client side ------------------------------------------------------
    #: Timer A: send the request again, double A (§17.1.1.2).
    RESEND_REQUEST_A = 1
    #: Timer E in Trying: send again, E = min(2E, T2) (§17.1.2.2).
    RESEND_REQUEST_E = 2
    #: Timer E in Proceeding: send again, E = T2 (§17.1.2.2).
    RESEND_REQUEST_E_T2 = 3
    #: Hand the response to the TU, timers untouched.
    PASS_RESPONSE = 4
    #: INVITE Calling -> Proceeding: stop A and B, hand the 1xx to the TU.
    PASS_1XX_STOP_TIMERS = 5
    #: INVITE -> Accepted: hand the 2xx to the TU, start Timer M (RFC 6026).
    PASS_2XX_START_M = 6
    #: INVITE -> Completed: build and send the ACK, hand the response to the
    #: TU, start Timer D (§17.1.1.2, §17.1.1.3).
    SEND_ACK_START_D = 7
    #: A retransmitted 300-699 in Completed: send the same ACK again.
    RESEND_ACK = 8
    #: Non-INVITE -> Completed: hand the final response to the TU, start K.
    PASS_FINAL_START_K = 9
    # -- server side ------------------------------------------------------
    #: Send a provisional response from the TU and remember it.
    SEND_RESPONSE = 10
    #: A request retransmission: send the last response again (if any).
    RESEND_RESPONSE = 11
    #: Non-INVITE -> Completed: send the final response, start Timer J.
    SEND_FINAL_START_J = 12
    #: INVITE -> Accepted: send the 2xx, start Timer L (RFC 6026).
    SEND_2XX_START_L = 13
    #: INVITE -> Completed: send the final response, start G (unreliable) and H.
    SEND_FINAL_START_G_H = 14
    #: Timer G: send the final response again, G = min(2G, T2) (§17.2.1).
    RESEND_FINAL_G = 15
    #: ACK in Completed: stop G and H, start Timer I (§17.2.1).
    CONFIRM_START_I = 16
    #: ACK in Accepted: hand it to the TU (RFC 6026).
    PASS_ACK = 17
    #: A 2xx retransmission from the TU in Accepted: send it (RFC 6026).
    SEND_2XX = 18
    # -- both -------------------------------------------------------------
    #: Timer B, F or H: tell the TU the transaction timed out.
    INFORM_TIMEOUT = 19
    #: Tell the TU the transport failed.
    INFORM_TRANSPORT_ERROR = 20


S = TxState
I = TxInput  # noqa: E741 - short aliases keep the tables one line per arc
A = TxAction

Table = dict[tuple[TxState, TxInput], tuple[TxAction | None, TxState]]

#: INVITE client transaction: RFC 3261 §17.1.1.2 (Figure 5) as updated by
#: RFC 6026 (its new client figure): a 2xx leads to Accepted, not Terminated.
INVITE_CLIENT: Table = {
    (S.CALLING, I.TIMER_A): (A.RESEND_REQUEST_A, S.CALLING),
    (S.CALLING, I.TIMER_B): (A.INFORM_TIMEOUT, S.TERMINATED),
    (S.CALLING, I.TRANSPORT_ERROR): (A.INFORM_TRANSPORT_ERROR, S.TERMINATED),
    (S.CALLING, I.RESPONSE_1XX): (A.PASS_1XX_STOP_TIMERS, S.PROCEEDING),
    (S.CALLING, I.RESPONSE_2XX): (A.PASS_2XX_START_M, S.ACCEPTED),
    (S.CALLING, I.RESPONSE_300_699): (A.SEND_ACK_START_D, S.COMPLETED),
    (S.PROCEEDING, I.RESPONSE_1XX): (A.PASS_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.RESPONSE_2XX): (A.PASS_2XX_START_M, S.ACCEPTED),
    (S.PROCEEDING, I.RESPONSE_300_699): (A.SEND_ACK_START_D, S.COMPLETED),
    # Not an arc of Figure 5: nothing is sent in Proceeding, so a transport
    # error here means the flow the response would come back on is gone (a
    # closed TCP/WebSocket connection).  Without it the transaction would wait
    # for the TU's Timer C.
    (S.PROCEEDING, I.TRANSPORT_ERROR): (A.INFORM_TRANSPORT_ERROR, S.TERMINATED),
    (S.COMPLETED, I.RESPONSE_300_699): (A.RESEND_ACK, S.COMPLETED),
    (S.COMPLETED, I.TRANSPORT_ERROR): (A.INFORM_TRANSPORT_ERROR, S.TERMINATED),
    (S.COMPLETED, I.TIMER_D): (None, S.TERMINATED),
    (S.ACCEPTED, I.RESPONSE_2XX): (A.PASS_RESPONSE, S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_M): (None, S.TERMINATED),
}

#: Non-INVITE client transaction: RFC 3261 §17.1.2.2 (Figure 6).
NON_INVITE_CLIENT: Table = {
    (S.TRYING, I.TIMER_E): (A.RESEND_REQUEST_E, S.TRYING),
    (S.TRYING, I.TIMER_F): (A.INFORM_TIMEOUT, S.TERMINATED),
    (S.TRYING, I.TRANSPORT_ERROR): (A.INFORM_TRANSPORT_ERROR, S.TERMINATED),
    (S.TRYING, I.RESPONSE_1XX): (A.PASS_RESPONSE, S.PROCEEDING),
    (S.TRYING, I.RESPONSE_2XX): (A.PASS_FINAL_START_K, S.COMPLETED),
    (S.TRYING, I.RESPONSE_300_699): (A.PASS_FINAL_START_K, S.COMPLETED),
    (S.PROCEEDING, I.TIMER_E): (A.RESEND_REQUEST_E_T2, S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_F): (A.INFORM_TIMEOUT, S.TERMINATED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (A.INFORM_TRANSPORT_ERROR, S.TERMINATED),
    (S.PROCEEDING, I.RESPONSE_1XX): (A.PASS_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.RESPONSE_2XX): (A.PASS_FINAL_START_K, S.COMPLETED),
    (S.PROCEEDING, I.RESPONSE_300_699): (A.PASS_FINAL_START_K, S.COMPLETED),
    # Completed only waits for Timer K; retransmitted responses are absorbed
    # (no entry: ignored).
    (S.COMPLETED, I.TIMER_K): (None, S.TERMINATED),
}

#: INVITE server transaction: RFC 3261 §17.2.1 (Figure 7) as updated by
#: RFC 6026 (its new server figure): a 2xx leads to Accepted, not Terminated.
INVITE_SERVER: Table = {
    (S.PROCEEDING, I.REQUEST): (A.RESEND_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.TU_1XX): (A.SEND_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.TU_2XX): (A.SEND_2XX_START_L, S.ACCEPTED),
    (S.PROCEEDING, I.TU_300_699): (A.SEND_FINAL_START_G_H, S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (A.INFORM_TRANSPORT_ERROR, S.TERMINATED),
    (S.COMPLETED, I.REQUEST): (A.RESEND_RESPONSE, S.COMPLETED),
    (S.COMPLETED, I.TIMER_G): (A.RESEND_FINAL_G, S.COMPLETED),
    (S.COMPLETED, I.TIMER_H): (A.INFORM_TIMEOUT, S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): (A.INFORM_TRANSPORT_ERROR, S.TERMINATED),
    (S.COMPLETED, I.ACK): (A.CONFIRM_START_I, S.CONFIRMED),
    # Confirmed absorbs ACK and INVITE retransmissions until Timer I.
    (S.CONFIRMED, I.ACK): (None, S.CONFIRMED),
    (S.CONFIRMED, I.REQUEST): (None, S.CONFIRMED),
    (S.CONFIRMED, I.TIMER_I): (None, S.TERMINATED),
    # Accepted: the TU retransmits its 2xx through the transaction, INVITE
    # retransmissions are absorbed (not passed to the TU), ACKs go to the TU.
    (S.ACCEPTED, I.REQUEST): (None, S.ACCEPTED),
    (S.ACCEPTED, I.ACK): (A.PASS_ACK, S.ACCEPTED),
    (S.ACCEPTED, I.TU_2XX): (A.SEND_2XX, S.ACCEPTED),
    # The TU owns 2xx reliability, so a failed 2xx send is reported to it; the
    # transaction stays to keep absorbing INVITE retransmissions until Timer L.
    (S.ACCEPTED, I.TRANSPORT_ERROR): (A.INFORM_TRANSPORT_ERROR, S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_L): (None, S.TERMINATED),
}

#: Non-INVITE server transaction: RFC 3261 §17.2.2 (Figure 8).
NON_INVITE_SERVER: Table = {
    # Nothing has been sent in Trying: a retransmission is simply absorbed.
    (S.TRYING, I.REQUEST): (None, S.TRYING),
    (S.TRYING, I.TU_1XX): (A.SEND_RESPONSE, S.PROCEEDING),
    (S.TRYING, I.TU_2XX): (A.SEND_FINAL_START_J, S.COMPLETED),
    (S.TRYING, I.TU_300_699): (A.SEND_FINAL_START_J, S.COMPLETED),
    (S.PROCEEDING, I.REQUEST): (A.RESEND_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.TU_1XX): (A.SEND_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.TU_2XX): (A.SEND_FINAL_START_J, S.COMPLETED),
    (S.PROCEEDING, I.TU_300_699): (A.SEND_FINAL_START_J, S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (A.INFORM_TRANSPORT_ERROR, S.TERMINATED),
    (S.COMPLETED, I.REQUEST): (A.RESEND_RESPONSE, S.COMPLETED),
    (S.COMPLETED, I.TIMER_J): (None, S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): (A.INFORM_TRANSPORT_ERROR, S.TERMINATED),
}

#: Timers that are 0 on a reliable transport: the state they guard is left
#: at once, in the same call that entered it.
ZERO_ON_RELIABLE = frozenset({I.TIMER_D, I.TIMER_I, I.TIMER_J, I.TIMER_K})


def states_of(table: Table) -> frozenset[TxState]:
    """Every state a machine can be in (Terminated included)."""
    states = {state for state, _ in table} | {nxt for _, nxt in table.values()}
    return frozenset(states)
