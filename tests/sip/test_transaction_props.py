"""Property tests of the transaction state machines (in the style of h2's
``test_state_machines.py``): whatever input arrives in whatever state, nothing
raises and the machine only moves where its table says; whatever happens, a
transaction ends Terminated and is forgotten."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webims.sip import make_response
from webims.sip.message import Message, Request
from webims.sip.transaction import (
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    TimedOut,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TxInput,
    TxState,
)
from webims.sip.transaction_tables import (
    INVITE_CLIENT,
    INVITE_SERVER,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    ZERO_ON_RELIABLE,
    Table,
    states_of,
)

from .helpers import (
    UAC,
    UAS,
    FakeClock,
    MemoryNetwork,
    answer,
    drain_events,
    make_request,
    reply,
    run_timers,
)

CFG = TimerConfig(T1=0.1, T2=0.4, T4=1.0)


@dataclass(frozen=True)
class Machine:
    name: str
    table: Table
    method: str
    client: bool
    #: What the peer (client side) or the TU (server side) eventually sends, for
    #: the states only they can leave (Proceeding waits for Timer C or the TU).
    closer: TxInput


MACHINES = [
    Machine("invite client", INVITE_CLIENT, "INVITE", True, TxInput.RESPONSE_300_699),
    Machine("non-INVITE client", NON_INVITE_CLIENT, "OPTIONS", True, TxInput.RESPONSE_2XX),
    Machine("invite server", INVITE_SERVER, "INVITE", False, TxInput.TU_300_699),
    Machine("non-INVITE server", NON_INVITE_SERVER, "MESSAGE", False, TxInput.TU_2XX),
]
IDS = [m.name for m in MACHINES]


def build(
    machine: Machine, reliable: bool
) -> tuple[TransactionLayer, ClientTransaction | ServerTransaction, Request]:
    layer = TransactionLayer(CFG)
    req = make_request(machine.method)
    if machine.client:
        tx: ClientTransaction | ServerTransaction = layer.send_request(req, UAS, reliable, 0.0)
    else:
        layer.receive(req, UAC, reliable, 0.0)
        event = layer.next_event()
        assert isinstance(event, RequestReceived)
        tx = event.tx
    layer.datagrams_to_send()
    return layer, tx, req


def message_for(inp: TxInput, req: Request) -> Message | None:
    """A plausible message carrying ``inp`` (None for timers and errors)."""
    if inp is TxInput.REQUEST:
        return make_request(req.method)
    if inp is TxInput.ACK:
        return make_request("ACK", to_tag="t1")
    statuses = {
        TxInput.RESPONSE_1XX: 180,
        TxInput.RESPONSE_2XX: 200,
        TxInput.RESPONSE_300_699: 486,
        TxInput.TU_1XX: 183,
        TxInput.TU_2XX: 202,
        TxInput.TU_300_699: 603,
    }
    status = statuses.get(inp)
    if status is None:
        return None
    if inp.name.startswith("RESPONSE"):
        return reply(req, status, to_tag="t1")
    return make_response(req, status, to_tag="t1")


def allowed_after(table: Table, state: TxState, inp: TxInput) -> set[TxState]:
    """Where the table lets ``inp`` take a machine in ``state``: its target, or
    one step further through a timer that is 0 on reliable transports."""
    entry = table.get((state, inp))
    if entry is None:
        return {state}
    nxt = entry[1]
    out = {nxt}
    for zero in ZERO_ON_RELIABLE:
        follow = table.get((nxt, zero))
        if follow is not None:
            out.add(follow[1])
    return out


def check_pair(machine: Machine, state: TxState, inp: TxInput, reliable: bool) -> None:
    layer, tx, req = build(machine, reliable)
    drain_events(layer)
    tx.state = state  # forced
    tx.process_input(inp, message_for(inp, req), 1.0)
    assert tx.state in allowed_after(machine.table, state, inp)
    sent = layer.datagrams_to_send()
    events = drain_events(layer)
    if state is TxState.TERMINATED:  # forced there: a dead machine does nothing
        assert tx.state is TxState.TERMINATED and not events and not sent
    elif tx.state is TxState.TERMINATED:
        assert isinstance(events[-1], TransactionTerminated)
        assert len(layer) == 0
    else:
        assert not any(isinstance(e, TransactionTerminated) for e in events)
        assert len(layer) == 1
    # Firing what is due leaves nothing due: no timer restarts with no interval.
    layer.handle_timer(1.0)
    deadline = layer.get_timer()
    assert deadline is None or deadline > 1.0


@pytest.mark.parametrize("machine", MACHINES, ids=IDS)
@given(data=st.data(), reliable=st.booleans())
def test_any_input_in_any_state(machine: Machine, data: st.DataObject, reliable: bool) -> None:
    state = data.draw(st.sampled_from(sorted(states_of(machine.table))), label="state")
    inp = data.draw(st.sampled_from(TxInput), label="input")
    check_pair(machine, state, inp, reliable)


@pytest.mark.parametrize("machine", MACHINES, ids=IDS)
def test_every_pair_exhaustively(machine: Machine) -> None:
    for state in states_of(machine.table):
        for inp in TxInput:
            for reliable in (False, True):
                check_pair(machine, state, inp, reliable)


def test_tables_only_name_states_of_their_machine() -> None:
    expected = {
        "invite client": {"CALLING", "PROCEEDING", "ACCEPTED", "COMPLETED", "TERMINATED"},
        "non-INVITE client": {"TRYING", "PROCEEDING", "COMPLETED", "TERMINATED"},
        "invite server": {"PROCEEDING", "ACCEPTED", "COMPLETED", "CONFIRMED", "TERMINATED"},
        "non-INVITE server": {"TRYING", "PROCEEDING", "COMPLETED", "TERMINATED"},
    }
    for machine in MACHINES:
        assert {s.name for s in states_of(machine.table)} == expected[machine.name]
        # Terminated is final: no arc leaves it.
        assert not any(state is TxState.TERMINATED for state, _ in machine.table)


STEPS = st.lists(
    st.one_of(
        st.sampled_from(TxInput),
        st.floats(min_value=0.0, max_value=8.0, allow_nan=False),
    ),
    max_size=30,
)


@pytest.mark.parametrize("machine", MACHINES, ids=IDS)
@given(steps=STEPS, reliable=st.booleans())
@settings(max_examples=150)
def test_random_sequences_end_terminated(
    machine: Machine, steps: list[TxInput | float], reliable: bool
) -> None:
    layer, tx, req = build(machine, reliable)
    clock = FakeClock()
    states = states_of(machine.table)
    for step in steps:
        if isinstance(step, TxInput):
            tx.process_input(step, message_for(step, req), clock.now)
        else:
            clock.advance(step)
            layer.handle_timer(clock.now)
        assert tx.state in states
        layer.datagrams_to_send()
    if tx.state is not TxState.TERMINATED:
        tx.process_input(machine.closer, message_for(machine.closer, req), clock.now)
    run_timers(layer, clock, clock.now + 1000.0)
    assert tx.state is TxState.TERMINATED
    assert len(layer) == 0
    assert layer.get_timer() is None
    ended = [e for e in drain_events(layer) if isinstance(e, TransactionTerminated)]
    assert ended == [TransactionTerminated(tx)]


@given(
    to_uas=st.lists(st.booleans(), min_size=1, max_size=6),
    to_uac=st.lists(st.booleans(), min_size=1, max_size=6),
    method=st.sampled_from(["INVITE", "REGISTER"]),
    status=st.sampled_from([180, 200, 486]),
)
@settings(max_examples=150)
def test_lossy_link(to_uas: list[bool], to_uac: list[bool], method: str, status: int) -> None:
    clock = FakeClock()
    net = MemoryNetwork(clock, config=CFG, loss_to_uas=to_uas, loss_to_uac=to_uac)
    answer(net, status)
    tx = net.uac.send_request(make_request(method), UAS, False, 0.0)
    net.run(10_000.0)
    # However many copies get through, the UAS's TU sees the request once.
    assert sum(isinstance(e, RequestReceived) for e in net.uas_events) <= 1
    # The UAC's TU sees the final response once, or a time-out.
    finals = [
        e for e in net.uac_events if isinstance(e, ResponseReceived) and e.response.status >= 200
    ]
    timed_out = [e for e in net.uac_events if isinstance(e, TimedOut)]
    assert len(finals) <= 1
    if status >= 200:
        assert len(finals) + len(timed_out) == 1
    if finals:
        assert any(isinstance(e, RequestReceived) for e in net.uas_events)
    # A link that loses nothing completes the transaction.
    if not any(to_uas) and not any(to_uac) and status >= 200:
        assert finals and not timed_out
    # Nothing outlives its timers, except an INVITE left in Proceeding (Timer C
    # is the TU's).
    if method == "INVITE" and status == 180 and tx.state is TxState.PROCEEDING:
        return
    assert len(net.uac) == len(net.uas) == 0 or status < 200
    assert tx.state is TxState.TERMINATED
