"""The RFC 6733 §5.6 table, in memory: the docstring's table and the code's
agree, paths through the machine, and unlisted events leave the state alone."""

from __future__ import annotations

import re

from webims.diameter import peer as peer_module
from webims.diameter.peer import (
    TRANSITIONS,
    PeerAction,
    PeerEvent,
    PeerState,
    PeerStateMachine,
)


def drive(*events: PeerEvent) -> tuple[PeerStateMachine, list[tuple[PeerAction, ...]]]:
    fsm = PeerStateMachine()
    return fsm, [fsm.handle(e) for e in events]


def test_the_documented_table_is_the_table_in_the_code() -> None:
    doc = peer_module.__doc__ or ""
    rows = doc[doc.index("    Closed            Start") :]
    names = {s.value for s in PeerState}
    parsed: dict[tuple[str, str], tuple[list[str], str]] = {}
    state = ""
    pending: list[str] = []
    for line in rows.splitlines():
        cells = [c for c in re.split(r"\s{2,}", line.strip()) if c]
        if not cells:
            continue
        if cells[0] in names or cells[0] == "Wait-Conn-Ack/":
            state = "Wait-Conn-Ack/Elect" if cells[0] == "Wait-Conn-Ack/" else cells[0]
            cells = cells[1:]
        elif cells[0] == "Elect" and len(cells) > 1:
            cells = cells[1:]
        if len(cells) == 3:
            event, actions, nxt = cells
            acts = [a.strip() for a in actions.split(",") if a.strip()]
            if not actions.endswith(",") or nxt in names:
                parsed[(state, event)] = (acts, nxt)
                pending = []
            last = (state, event)
        elif len(cells) == 2 and cells[1] in names:
            acts, _ = parsed.get(last, ([], ""))
            acts += [a.strip() for a in cells[0].split(",") if a.strip()]
            parsed[last] = (acts, cells[1])
        elif len(cells) == 1:
            acts, nxt = parsed[last]
            parsed[last] = (acts + [a.strip() for a in cells[0].split(",") if a.strip()], nxt)
    code = {
        (s.value, e.value): ([a.value for a in acts], n.value)
        for (s, e), (acts, n) in TRANSITIONS.items()
    }
    assert parsed == code
    assert not pending


def test_initiator_path_to_i_open_and_back_through_dpr() -> None:
    fsm, acts = drive(
        PeerEvent.START,
        PeerEvent.I_RCV_CONN_ACK,
        PeerEvent.I_RCV_CEA,
        PeerEvent.SEND_MESSAGE,
        PeerEvent.STOP,
        PeerEvent.I_RCV_DPA,
    )
    assert acts == [
        (PeerAction.I_SND_CONN_REQ,),
        (PeerAction.I_SND_CER,),
        (PeerAction.PROCESS_CEA,),
        (PeerAction.I_SND_MESSAGE,),
        (PeerAction.I_SND_DPR,),
        (PeerAction.I_DISC,),
    ]
    assert fsm.state is PeerState.CLOSED


def test_responder_path_and_dpr_from_the_peer() -> None:
    fsm, acts = drive(PeerEvent.R_CONN_CER, PeerEvent.R_RCV_DWR, PeerEvent.R_RCV_DPR)
    assert acts[0] == (PeerAction.R_ACCEPT, PeerAction.PROCESS_CER, PeerAction.R_SND_CEA)
    assert acts[1] == (PeerAction.PROCESS_DWR, PeerAction.R_SND_DWA)
    assert acts[2] == (PeerAction.R_SND_DPA,)
    assert fsm.state is PeerState.CLOSING
    fsm.handle(PeerEvent.R_PEER_DISC)
    assert fsm.state is PeerState.CLOSED


def test_election_lost_and_won() -> None:
    lost, _ = drive(
        PeerEvent.START, PeerEvent.I_RCV_CONN_ACK, PeerEvent.R_CONN_CER, PeerEvent.I_RCV_CEA
    )
    assert lost.state is PeerState.I_OPEN
    won, acts = drive(
        PeerEvent.START, PeerEvent.I_RCV_CONN_ACK, PeerEvent.R_CONN_CER, PeerEvent.WIN_ELECTION
    )
    assert acts[2][-1] is PeerAction.ELECT
    assert acts[3] == (PeerAction.I_DISC, PeerAction.R_SND_CEA)
    assert won.state is PeerState.R_OPEN


def test_an_unlisted_event_changes_nothing() -> None:
    for state in PeerState:
        for event in PeerEvent:
            if (state, event) in TRANSITIONS:
                continue
            fsm = PeerStateMachine()
            fsm.state = state
            assert fsm.handle(event) == ()
            assert fsm.state is state and fsm.ignored == 1


def test_every_state_but_closed_can_be_left_and_closed_reached() -> None:
    reachable = {PeerState.CLOSED}
    frontier = [PeerState.CLOSED]
    while frontier:
        state = frontier.pop()
        for (s, _e), (_a, nxt) in TRANSITIONS.items():
            if s is state and nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(PeerState)
