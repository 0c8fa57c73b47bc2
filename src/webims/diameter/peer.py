"""The Diameter peer state machine of RFC 6733 §5.6, sans-I/O.

States, events and actions carry the names of the RFC.  ``I-`` marks the
connection this node initiated, ``R-`` the one the peer initiated (which the
peer opens with a CER: the ``R-Conn-CER`` event).  When both sides connect at
once, the election of §5.6.4 keeps one connection: the one whose initiator
has the lower Origin-Host.

:meth:`PeerStateMachine.handle` takes an event and returns the actions to
run, in order, after moving to the next state.  It does no I/O and reads no
clock: the asyncio side (``node.py``) runs the actions and turns what
happens on the sockets and timers into events.  An action that itself leads
to an event (``Elect`` won, a CER that could not be sent) is fed back by the
caller as a new event.  An event the table does not list for the current
state changes nothing and returns no action (:attr:`PeerStateMachine.ignored`
counts them, so tests can see it).

The transitions, as in the RFC's table::

    Closed            Start             I-Snd-Conn-Req              Wait-Conn-Ack
                      R-Conn-CER        R-Accept, Process-CER,      R-Open
                                        R-Snd-CEA
    Wait-Conn-Ack     I-Rcv-Conn-Ack    I-Snd-CER                   Wait-I-CEA
                      I-Rcv-Conn-Nack   Cleanup                     Closed
                      R-Conn-CER        R-Accept, Process-CER       Wait-Conn-Ack/Elect
                      Timeout           Error                       Closed
    Wait-I-CEA        I-Rcv-CEA         Process-CEA                 I-Open
                      R-Conn-CER        R-Accept, Process-CER,      Wait-Returns
                                        Elect
                      I-Peer-Disc       I-Disc                      Closed
                      I-Rcv-Non-CEA     Error                       Closed
                      Timeout           Error                       Closed
    Wait-Conn-Ack/    I-Rcv-Conn-Ack    I-Snd-CER, Elect            Wait-Returns
    Elect             I-Rcv-Conn-Nack   R-Snd-CEA                   R-Open
                      R-Peer-Disc       R-Disc                      Wait-Conn-Ack
                      R-Conn-CER        R-Reject                    Wait-Conn-Ack/Elect
                      Timeout           Error                       Closed
    Wait-Returns      Win-Election      I-Disc, R-Snd-CEA           R-Open
                      I-Peer-Disc       I-Disc, R-Snd-CEA           R-Open
                      I-Rcv-CEA         R-Disc                      I-Open
                      R-Peer-Disc       R-Disc                      Wait-I-CEA
                      R-Conn-CER        R-Reject                    Wait-Returns
                      Timeout           Error                       Closed
    R-Open            Send-Message      R-Snd-Message               R-Open
                      R-Rcv-Message     Process                     R-Open
                      R-Rcv-DWR         Process-DWR, R-Snd-DWA      R-Open
                      R-Rcv-DWA         Process-DWA                 R-Open
                      R-Conn-CER        R-Reject                    R-Open
                      Stop              R-Snd-DPR                   Closing
                      R-Rcv-DPR         R-Snd-DPA                   Closing
                      R-Peer-Disc       R-Disc                      Closed
    I-Open            Send-Message      I-Snd-Message               I-Open
                      I-Rcv-Message     Process                     I-Open
                      I-Rcv-DWR         Process-DWR, I-Snd-DWA      I-Open
                      I-Rcv-DWA         Process-DWA                 I-Open
                      R-Conn-CER        R-Reject                    I-Open
                      Stop              I-Snd-DPR                   Closing
                      I-Rcv-DPR         I-Snd-DPA                   Closing
                      I-Peer-Disc       I-Disc                      Closed
    Closing           I-Rcv-DPA         I-Disc                      Closed
                      R-Rcv-DPA         R-Disc                      Closed
                      Timeout           Error                       Closed
                      I-Peer-Disc       I-Disc                      Closed
                      R-Peer-Disc       R-Disc                      Closed
"""

from __future__ import annotations

from enum import Enum

__all__ = ["TRANSITIONS", "PeerAction", "PeerEvent", "PeerState", "PeerStateMachine"]


class PeerState(Enum):
    CLOSED = "Closed"
    WAIT_CONN_ACK = "Wait-Conn-Ack"
    WAIT_I_CEA = "Wait-I-CEA"
    WAIT_CONN_ACK_ELECT = "Wait-Conn-Ack/Elect"
    WAIT_RETURNS = "Wait-Returns"
    R_OPEN = "R-Open"
    I_OPEN = "I-Open"
    CLOSING = "Closing"

    @property
    def is_open(self) -> bool:
        return self in (PeerState.R_OPEN, PeerState.I_OPEN)


class PeerEvent(Enum):
    START = "Start"
    STOP = "Stop"
    TIMEOUT = "Timeout"
    WIN_ELECTION = "Win-Election"
    SEND_MESSAGE = "Send-Message"
    R_CONN_CER = "R-Conn-CER"
    I_RCV_CONN_ACK = "I-Rcv-Conn-Ack"
    I_RCV_CONN_NACK = "I-Rcv-Conn-Nack"
    I_RCV_CEA = "I-Rcv-CEA"
    I_RCV_NON_CEA = "I-Rcv-Non-CEA"
    I_PEER_DISC = "I-Peer-Disc"
    R_PEER_DISC = "R-Peer-Disc"
    I_RCV_MESSAGE = "I-Rcv-Message"
    R_RCV_MESSAGE = "R-Rcv-Message"
    I_RCV_DWR = "I-Rcv-DWR"
    R_RCV_DWR = "R-Rcv-DWR"
    I_RCV_DWA = "I-Rcv-DWA"
    R_RCV_DWA = "R-Rcv-DWA"
    I_RCV_DPR = "I-Rcv-DPR"
    R_RCV_DPR = "R-Rcv-DPR"
    I_RCV_DPA = "I-Rcv-DPA"
    R_RCV_DPA = "R-Rcv-DPA"


class PeerAction(Enum):
    I_SND_CONN_REQ = "I-Snd-Conn-Req"
    R_ACCEPT = "R-Accept"
    PROCESS_CER = "Process-CER"
    R_SND_CEA = "R-Snd-CEA"
    I_SND_CER = "I-Snd-CER"
    CLEANUP = "Cleanup"
    ERROR = "Error"
    PROCESS_CEA = "Process-CEA"
    ELECT = "Elect"
    R_REJECT = "R-Reject"
    I_DISC = "I-Disc"
    R_DISC = "R-Disc"
    R_SND_MESSAGE = "R-Snd-Message"
    I_SND_MESSAGE = "I-Snd-Message"
    PROCESS = "Process"
    PROCESS_DWR = "Process-DWR"
    R_SND_DWA = "R-Snd-DWA"
    I_SND_DWA = "I-Snd-DWA"
    PROCESS_DWA = "Process-DWA"
    R_SND_DPR = "R-Snd-DPR"
    I_SND_DPR = "I-Snd-DPR"
    R_SND_DPA = "R-Snd-DPA"
    I_SND_DPA = "I-Snd-DPA"


S, E, A = PeerState, PeerEvent, PeerAction

#: (state, event) -> (actions, next state), the table of RFC 6733 §5.6.
TRANSITIONS: dict[tuple[PeerState, PeerEvent], tuple[tuple[PeerAction, ...], PeerState]] = {
    (S.CLOSED, E.START): ((A.I_SND_CONN_REQ,), S.WAIT_CONN_ACK),
    (S.CLOSED, E.R_CONN_CER): ((A.R_ACCEPT, A.PROCESS_CER, A.R_SND_CEA), S.R_OPEN),
    (S.WAIT_CONN_ACK, E.I_RCV_CONN_ACK): ((A.I_SND_CER,), S.WAIT_I_CEA),
    (S.WAIT_CONN_ACK, E.I_RCV_CONN_NACK): ((A.CLEANUP,), S.CLOSED),
    (S.WAIT_CONN_ACK, E.R_CONN_CER): ((A.R_ACCEPT, A.PROCESS_CER), S.WAIT_CONN_ACK_ELECT),
    (S.WAIT_CONN_ACK, E.TIMEOUT): ((A.ERROR,), S.CLOSED),
    (S.WAIT_I_CEA, E.I_RCV_CEA): ((A.PROCESS_CEA,), S.I_OPEN),
    (S.WAIT_I_CEA, E.R_CONN_CER): ((A.R_ACCEPT, A.PROCESS_CER, A.ELECT), S.WAIT_RETURNS),
    (S.WAIT_I_CEA, E.I_PEER_DISC): ((A.I_DISC,), S.CLOSED),
    (S.WAIT_I_CEA, E.I_RCV_NON_CEA): ((A.ERROR,), S.CLOSED),
    (S.WAIT_I_CEA, E.TIMEOUT): ((A.ERROR,), S.CLOSED),
    (S.WAIT_CONN_ACK_ELECT, E.I_RCV_CONN_ACK): ((A.I_SND_CER, A.ELECT), S.WAIT_RETURNS),
    (S.WAIT_CONN_ACK_ELECT, E.I_RCV_CONN_NACK): ((A.R_SND_CEA,), S.R_OPEN),
    (S.WAIT_CONN_ACK_ELECT, E.R_PEER_DISC): ((A.R_DISC,), S.WAIT_CONN_ACK),
    (S.WAIT_CONN_ACK_ELECT, E.R_CONN_CER): ((A.R_REJECT,), S.WAIT_CONN_ACK_ELECT),
    (S.WAIT_CONN_ACK_ELECT, E.TIMEOUT): ((A.ERROR,), S.CLOSED),
    (S.WAIT_RETURNS, E.WIN_ELECTION): ((A.I_DISC, A.R_SND_CEA), S.R_OPEN),
    (S.WAIT_RETURNS, E.I_PEER_DISC): ((A.I_DISC, A.R_SND_CEA), S.R_OPEN),
    (S.WAIT_RETURNS, E.I_RCV_CEA): ((A.R_DISC,), S.I_OPEN),
    (S.WAIT_RETURNS, E.R_PEER_DISC): ((A.R_DISC,), S.WAIT_I_CEA),
    (S.WAIT_RETURNS, E.R_CONN_CER): ((A.R_REJECT,), S.WAIT_RETURNS),
    (S.WAIT_RETURNS, E.TIMEOUT): ((A.ERROR,), S.CLOSED),
    (S.R_OPEN, E.SEND_MESSAGE): ((A.R_SND_MESSAGE,), S.R_OPEN),
    (S.R_OPEN, E.R_RCV_MESSAGE): ((A.PROCESS,), S.R_OPEN),
    (S.R_OPEN, E.R_RCV_DWR): ((A.PROCESS_DWR, A.R_SND_DWA), S.R_OPEN),
    (S.R_OPEN, E.R_RCV_DWA): ((A.PROCESS_DWA,), S.R_OPEN),
    (S.R_OPEN, E.R_CONN_CER): ((A.R_REJECT,), S.R_OPEN),
    (S.R_OPEN, E.STOP): ((A.R_SND_DPR,), S.CLOSING),
    (S.R_OPEN, E.R_RCV_DPR): ((A.R_SND_DPA,), S.CLOSING),
    (S.R_OPEN, E.R_PEER_DISC): ((A.R_DISC,), S.CLOSED),
    (S.I_OPEN, E.SEND_MESSAGE): ((A.I_SND_MESSAGE,), S.I_OPEN),
    (S.I_OPEN, E.I_RCV_MESSAGE): ((A.PROCESS,), S.I_OPEN),
    (S.I_OPEN, E.I_RCV_DWR): ((A.PROCESS_DWR, A.I_SND_DWA), S.I_OPEN),
    (S.I_OPEN, E.I_RCV_DWA): ((A.PROCESS_DWA,), S.I_OPEN),
    (S.I_OPEN, E.R_CONN_CER): ((A.R_REJECT,), S.I_OPEN),
    (S.I_OPEN, E.STOP): ((A.I_SND_DPR,), S.CLOSING),
    (S.I_OPEN, E.I_RCV_DPR): ((A.I_SND_DPA,), S.CLOSING),
    (S.I_OPEN, E.I_PEER_DISC): ((A.I_DISC,), S.CLOSED),
    (S.CLOSING, E.I_RCV_DPA): ((A.I_DISC,), S.CLOSED),
    (S.CLOSING, E.R_RCV_DPA): ((A.R_DISC,), S.CLOSED),
    (S.CLOSING, E.TIMEOUT): ((A.ERROR,), S.CLOSED),
    (S.CLOSING, E.I_PEER_DISC): ((A.I_DISC,), S.CLOSED),
    (S.CLOSING, E.R_PEER_DISC): ((A.R_DISC,), S.CLOSED),
}

del S, E, A


class PeerStateMachine:
    """One peer's state; :meth:`handle` applies the table."""

    __slots__ = ("ignored", "state")

    def __init__(self) -> None:
        self.state = PeerState.CLOSED
        self.ignored = 0

    def handle(self, event: PeerEvent) -> tuple[PeerAction, ...]:
        """Move on ``event``; return the actions to run (empty when the table
        has no entry, which leaves the state as it was)."""
        entry = TRANSITIONS.get((self.state, event))
        if entry is None:
            self.ignored += 1
            return ()
        actions, self.state = entry
        return actions
