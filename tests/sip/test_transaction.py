"""The transaction layer (RFC 3261 §17, RFC 6026), driven with a fake clock."""

from __future__ import annotations

from collections.abc import Hashable

import pytest
from pytest import approx

from webims.sip import LocalError, Request, make_response, parse_via
from webims.sip.transaction import (
    AckReceived,
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    TimedOut,
    TimerConfig,
    TransactionLayer,
    TransactionTerminated,
    TransportFailed,
    TxState,
)
from webims.sip.transaction_keys import top_via_key

from .helpers import (
    UAC,
    UAS,
    FakeClock,
    MemoryNetwork,
    answer,
    drain_events,
    make_request,
    reparse_request,
    reparse_response,
    reply,
    run_timers,
)

#: Small custom timers so that the tests also prove nothing is hard-coded.
CFG = TimerConfig(T1=0.1, T2=0.4, T4=1.0)
EPS = 1e-6


def kinds(events: list[Event]) -> list[type[Event]]:
    return [type(e) for e in events]


def only_data(sent: list[tuple[float, bytes, Hashable]]) -> set[bytes]:
    return {data for _, data, _ in sent}


def times(sent: list[tuple[float, bytes, Hashable]]) -> list[float]:
    return [t for t, _, _ in sent]


def schedule(first: float, cap: float | None, end: float) -> list[float]:
    """Retransmission times: intervals doubling from ``first`` (capped), before ``end``."""
    out: list[float] = []
    t, interval = 0.0, first
    while t + interval < end:
        t += interval
        out.append(t)
        interval = 2 * interval if cap is None else min(2 * interval, cap)
    return out


def fires_at(layer: TransactionLayer, clock: FakeClock, when: float) -> list[Event]:
    """Run the timers just short of ``when`` (expecting no event) then to it."""
    run_timers(layer, clock, when - EPS)
    assert drain_events(layer) == []
    run_timers(layer, clock, when)
    return drain_events(layer)


def client(
    method: str = "INVITE", *, config: TimerConfig = CFG, reliable: bool = False, **kw: object
) -> tuple[TransactionLayer, FakeClock, ClientTransaction, Request]:
    layer, clock = TransactionLayer(config), FakeClock()
    req = make_request(method, **kw)  # type: ignore[arg-type]
    tx = layer.send_request(req, UAS, reliable, clock.now)
    assert layer.datagrams_to_send() == [(req.serialize(), UAS)]
    return layer, clock, tx, req


def server(
    method: str = "INVITE", *, config: TimerConfig = CFG, reliable: bool = False, **kw: object
) -> tuple[TransactionLayer, FakeClock, ServerTransaction, Request]:
    layer, clock = TransactionLayer(config), FakeClock()
    req = make_request(method, **kw)  # type: ignore[arg-type]
    layer.receive(req, UAC, reliable, clock.now)
    (event,) = drain_events(layer)
    assert isinstance(event, RequestReceived)
    assert event.request is req and event.source == UAC
    return layer, clock, event.tx, req


def assert_gone(layer: TransactionLayer, tx: ClientTransaction | ServerTransaction) -> None:
    assert tx.state is TxState.TERMINATED
    assert len(layer) == 0
    assert layer.get_timer() is None


# -- TimerConfig ------------------------------------------------------------------------


def test_timer_config_defaults() -> None:
    c = TimerConfig()
    assert (c.T1, c.T2, c.T4) == (0.5, 4.0, 5.0)
    assert c.timer_a == c.timer_e == c.timer_g == 0.5
    assert c.timer_b == c.timer_f == c.timer_h == c.timer_j == 32.0
    assert c.timer_l == c.timer_m == 32.0
    assert c.timer_d == 32.0
    assert c.timer_i == c.timer_k == 5.0


def test_timer_config_derived_from_custom_values() -> None:
    c = TimerConfig(T1=0.2, T2=1.0, T4=3.0)
    assert c.timer_b == c.timer_f == c.timer_h == c.timer_j == c.timer_l == c.timer_m == 12.8
    assert c.timer_d == 32.0  # at least 32 s (§17.1.1.2)
    assert c.timer_i == c.timer_k == 3.0
    assert TimerConfig(T1=1.0, T2=4.0).timer_d == 64.0  # never below 64*T1
    assert TimerConfig(D=40.0).timer_d == 40.0


@pytest.mark.parametrize("kwargs", [{"T1": 0.0}, {"T1": 1.0, "T2": 0.5}, {"T4": -1.0}, {"D": -1.0}])
def test_timer_config_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TimerConfig(**kwargs)


# -- INVITE client transaction (§17.1.1, RFC 6026) ------------------------------------------


@pytest.mark.parametrize("config", [TimerConfig(), CFG, TimerConfig(T1=0.2, T2=1.0)])
def test_timer_a_doubles_until_timer_b(config: TimerConfig) -> None:
    layer, clock, tx, invite = client(config=config)
    assert tx.state is TxState.CALLING
    b = 64 * config.T1
    sent = run_timers(layer, clock, b - EPS)
    assert times(sent) == approx(schedule(config.T1, None, b))
    assert len(sent) == 6  # 7 transmissions in all, as §17.1.1.2 works out
    assert only_data(sent) == {invite.serialize()}
    assert drain_events(layer) == []
    events = fires_at(layer, clock, b)
    assert kinds(events) == [TimedOut, TransactionTerminated]
    assert events[0].tx is tx  # type: ignore[attr-defined]
    assert_gone(layer, tx)


def test_reliable_invite_has_no_timer_a_but_timer_b() -> None:
    layer, clock, tx, _ = client(reliable=True)
    assert layer.get_timer() == approx(64 * CFG.T1)
    events = fires_at(layer, clock, 64 * CFG.T1)
    assert layer.datagrams_to_send() == []
    assert kinds(events) == [TimedOut, TransactionTerminated]
    assert_gone(layer, tx)


def test_provisional_stops_timers_a_and_b() -> None:
    layer, clock, tx, invite = client()
    run_timers(layer, clock, 0.15)  # one retransmission at 0.1
    layer.receive(reply(invite, 180), UAS, False, clock.now)
    (event,) = drain_events(layer)
    assert isinstance(event, ResponseReceived) and event.response.status == 180
    assert tx.state is TxState.PROCEEDING
    assert layer.get_timer() is None  # Timer C is the TU's (§16.6)
    assert run_timers(layer, clock, 1000.0) == []
    layer.receive(reply(invite, 183), UAS, False, clock.now)
    assert kinds(drain_events(layer)) == [ResponseReceived]
    assert tx.state is TxState.PROCEEDING


def test_ack_for_a_4xx_is_built_per_17_1_1_3() -> None:
    routes = ["<sip:p1.home1.net;lr>", "<sip:p2.home1.net;lr>"]
    layer, clock, tx, invite = client(
        routes=routes, below_vias=["SIP/2.0/UDP ue.example.com;branch=z9hG4bK-ue"]
    )
    resp = reply(invite, 486, to_tag="callee-1")
    layer.receive(resp, UAS, False, 0.05)
    (event,) = drain_events(layer)
    assert isinstance(event, ResponseReceived) and event.response is resp
    assert tx.state is TxState.COMPLETED
    ((data, dest),) = layer.datagrams_to_send()
    assert dest == UAS
    ack = reparse_request(data)
    assert ack.method == "ACK"
    assert ack.uri_text == invite.uri_text
    assert ack.headers.get_all("Via") == [invite.headers.get_all("Via")[0]]
    assert ack.top_via.branch == invite.top_via.branch
    assert ack.headers.get_all("Route") == routes
    assert ack.headers.get("From") == invite.headers.get("From")
    assert ack.headers.get("To") == resp.headers.get("To")
    assert ack.to.tag == "callee-1"
    assert ack.call_id == invite.call_id
    assert (ack.cseq.seq, ack.cseq.method) == (invite.cseq.seq, "ACK")
    assert ack.max_forwards == 70
    assert ack.content_length == 0 and ack.body == b""
    # A retransmitted final response gets the very same ACK, and is not a new event.
    layer.receive(reply(invite, 486, to_tag="callee-1"), UAS, False, 0.5)
    assert layer.datagrams_to_send() == [(data, UAS)]
    assert drain_events(layer) == []
    # No INVITE retransmission once Completed.
    assert run_timers(layer, clock, 10.0) == []


def test_ack_uses_the_first_element_of_a_combined_via_field() -> None:
    layer, _, _, invite = client(
        via_text="SIP/2.0/UDP a.example.com;branch=z9hG4bK-a, SIP/2.0/UDP b.example.com"
    )
    layer.receive(reply(invite, 603), UAS, False, 0.1)
    ((data, _),) = layer.datagrams_to_send()
    assert reparse_request(data).headers.get_all("Via") == [
        "SIP/2.0/UDP a.example.com;branch=z9hG4bK-a"
    ]


@pytest.mark.parametrize(
    ("config", "d"),
    [(TimerConfig(), 32.0), (CFG, 32.0), (TimerConfig(T1=1.0, T2=4.0), 64.0)],
)
def test_timer_d_unreliable(config: TimerConfig, d: float) -> None:
    layer, clock, tx, invite = client(config=config)
    clock.now = 0.05
    layer.receive(reply(invite, 404), UAS, False, clock.now)
    drain_events(layer)
    layer.datagrams_to_send()
    events = fires_at(layer, clock, 0.05 + d)
    assert kinds(events) == [TransactionTerminated]
    assert_gone(layer, tx)


def test_timer_d_is_zero_on_reliable_transports() -> None:
    layer, _, tx, invite = client(reliable=True)
    layer.receive(reply(invite, 500), UAS, True, 0.05)
    assert kinds(drain_events(layer)) == [ResponseReceived, TransactionTerminated]
    assert len(layer.datagrams_to_send()) == 1  # the ACK
    assert_gone(layer, tx)


@pytest.mark.parametrize("reliable", [False, True])
def test_2xx_leads_to_accepted_and_every_2xx_reaches_the_tu(reliable: bool) -> None:
    layer, clock, tx, invite = client(reliable=reliable)
    clock.now = 0.05
    layer.receive(reply(invite, 180), UAS, reliable, clock.now)
    ok = reply(invite, 200, to_tag="fork-1")
    layer.receive(ok, UAS, reliable, clock.now)
    assert tx.state is TxState.ACCEPTED
    assert [e.response.status for e in drain_events(layer)] == [180, 200]  # type: ignore[attr-defined]
    assert layer.datagrams_to_send() == []  # the ACK for a 2xx is the TU's
    # A retransmission and a 2xx from another fork both reach the TU.
    layer.receive(reply(invite, 200, to_tag="fork-1"), UAS, reliable, 1.0)
    layer.receive(reply(invite, 200, to_tag="fork-2"), UAS, reliable, 2.0)
    got = drain_events(layer)
    assert [e.response.to.tag for e in got] == ["fork-1", "fork-2"]  # type: ignore[attr-defined]
    assert all(e.tx is tx for e in got)  # type: ignore[attr-defined]
    # Provisional and error responses are ignored in Accepted.
    layer.receive(reply(invite, 183), UAS, reliable, 2.0)
    layer.receive(reply(invite, 486), UAS, reliable, 2.0)
    assert drain_events(layer) == [] and layer.datagrams_to_send() == []
    events = fires_at(layer, clock, 0.05 + 64 * CFG.T1)  # Timer M
    assert kinds(events) == [TransactionTerminated]
    assert layer.datagrams_to_send() == []  # no INVITE retransmissions after the 2xx
    assert_gone(layer, tx)


@pytest.mark.parametrize("state", ["calling", "proceeding", "completed"])
def test_invite_client_transport_error(state: str) -> None:
    layer, _, tx, invite = client()
    if state == "proceeding":
        layer.receive(reply(invite, 100), UAS, False, 0.0)
    elif state == "completed":
        layer.receive(reply(invite, 480), UAS, False, 0.0)
    drain_events(layer)
    layer.transport_error(UAS, 0.2)
    events = drain_events(layer)
    assert kinds(events) == [TransportFailed, TransactionTerminated]
    assert events[0].tx is tx  # type: ignore[attr-defined]
    assert_gone(layer, tx)


def test_transport_error_in_client_accepted_is_ignored() -> None:
    layer, _, tx, invite = client()
    layer.receive(reply(invite, 200), UAS, False, 0.0)
    drain_events(layer)
    layer.transport_error(UAS, 0.1)
    assert drain_events(layer) == []
    assert tx.state is TxState.ACCEPTED


# -- non-INVITE client transaction (§17.1.2) -------------------------------------------------


@pytest.mark.parametrize("config", [TimerConfig(), CFG, TimerConfig(T1=0.3, T2=2.0)])
def test_timer_e_doubles_capped_at_t2_until_timer_f(config: TimerConfig) -> None:
    layer, clock, tx, req = client("OPTIONS", config=config)
    assert tx.state is TxState.TRYING
    f = 64 * config.T1
    sent = run_timers(layer, clock, f - EPS)
    assert times(sent) == approx(schedule(config.T1, config.T2, f))
    assert only_data(sent) == {req.serialize()}
    events = fires_at(layer, clock, f)
    assert kinds(events) == [TimedOut, TransactionTerminated]
    assert_gone(layer, tx)


def test_timer_e_uses_t2_in_proceeding() -> None:
    config = TimerConfig()
    layer, clock, tx, req = client("REGISTER", config=config)
    assert times(run_timers(layer, clock, 0.6)) == approx([0.5])  # next E at 1.5
    layer.receive(reply(req, 100), UAS, False, 0.6)
    assert tx.state is TxState.PROCEEDING
    assert kinds(drain_events(layer)) == [ResponseReceived]
    sent = run_timers(layer, clock, 32.0 - EPS)
    # The pending E fires at 1.5, then every T2.
    assert times(sent) == approx([1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5])
    assert kinds(fires_at(layer, clock, 32.0)) == [TimedOut, TransactionTerminated]


def test_reliable_non_invite_has_no_timer_e_but_timer_f() -> None:
    layer, clock, tx, _ = client("MESSAGE", reliable=True)
    events = fires_at(layer, clock, 64 * CFG.T1)
    assert layer.datagrams_to_send() == []
    assert kinds(events) == [TimedOut, TransactionTerminated]
    assert_gone(layer, tx)


@pytest.mark.parametrize("status", [200, 404])
def test_final_response_then_timer_k(status: int) -> None:
    layer, clock, tx, req = client("REGISTER")
    clock.now = 0.25
    layer.receive(reply(req, status), UAS, False, clock.now)
    (event,) = drain_events(layer)
    assert isinstance(event, ResponseReceived) and event.response.status == status
    assert tx.state is TxState.COMPLETED
    # Retransmitted responses are absorbed; no more request retransmissions.
    layer.receive(reply(req, status), UAS, False, 0.5)
    layer.receive(reply(req, 100), UAS, False, 0.5)
    assert drain_events(layer) == []
    events = fires_at(layer, clock, 0.25 + CFG.T4)
    assert layer.datagrams_to_send() == []
    assert kinds(events) == [TransactionTerminated]
    assert_gone(layer, tx)


def test_timer_k_is_zero_on_reliable_transports() -> None:
    layer, _, tx, req = client("REGISTER", reliable=True)
    layer.receive(reply(req, 100), UAS, True, 0.1)
    layer.receive(reply(req, 200), UAS, True, 0.2)
    assert kinds(drain_events(layer)) == [
        ResponseReceived,
        ResponseReceived,
        TransactionTerminated,
    ]
    assert_gone(layer, tx)


@pytest.mark.parametrize("proceeding", [False, True])
def test_non_invite_client_transport_error(proceeding: bool) -> None:
    layer, _, tx, req = client("BYE")
    if proceeding:
        layer.receive(reply(req, 100), UAS, False, 0.0)
        drain_events(layer)
    layer.transport_error(UAS, 0.1)
    assert kinds(drain_events(layer)) == [TransportFailed, TransactionTerminated]
    assert_gone(layer, tx)


def test_transport_error_reaches_every_transaction_of_that_destination_only() -> None:
    layer = TransactionLayer(CFG)
    a = layer.send_request(make_request("OPTIONS", branch="z9hG4bK-a"), "x", False, 0.0)
    b = layer.send_request(make_request("INVITE", branch="z9hG4bK-b"), "x", False, 0.0)
    c = layer.send_request(make_request("OPTIONS", branch="z9hG4bK-c"), "y", False, 0.0)
    layer.receive(make_request("MESSAGE", branch="z9hG4bK-d"), "x", False, 0.0)
    drain_events(layer)
    layer.transport_error("x", 0.1)
    failed = {e.tx for e in drain_events(layer) if isinstance(e, TransportFailed)}
    assert failed == {a, b}  # the server transaction in Trying has sent nothing
    assert c.state is TxState.TRYING and len(layer) == 2
    layer.transport_error("nowhere", 0.1)
    assert drain_events(layer) == []


# -- INVITE server transaction (§17.2.1, RFC 6026) --------------------------------------------


def test_invite_retransmission_is_absorbed_and_gets_the_last_provisional() -> None:
    layer, _, tx, invite = server()
    assert tx.state is TxState.PROCEEDING
    assert layer.datagrams_to_send() == []  # the TU sends 100 Trying itself by default
    layer.receive(make_request("INVITE"), UAC, False, 0.1)
    assert drain_events(layer) == [] and layer.datagrams_to_send() == []
    ringing = make_response(invite, 180, to_tag="t1")
    layer.send_response(tx, ringing, 0.2)
    assert layer.datagrams_to_send() == [(ringing.serialize(), UAC)]
    layer.receive(make_request("INVITE"), UAC, False, 0.3)
    assert layer.datagrams_to_send() == [(ringing.serialize(), UAC)]
    assert drain_events(layer) == []
    assert tx.state is TxState.PROCEEDING


def test_invite_server_can_send_100_trying_itself() -> None:
    layer = TransactionLayer(CFG, send_100=True)
    invite = make_request("INVITE")
    layer.receive(invite, UAC, False, 0.0)
    ((data, dest),) = layer.datagrams_to_send()
    trying = reparse_response(data)
    assert trying.status == 100 and dest == UAC
    assert trying.to.tag is None  # §17.2.1: no To tag on the 100
    layer.receive(make_request("INVITE"), UAC, False, 0.1)
    assert layer.datagrams_to_send() == [(data, UAC)]
    assert kinds(drain_events(layer)) == [RequestReceived]
    layer.receive(make_request("OPTIONS", branch="z9hG4bK-o"), UAC, False, 0.0)
    assert layer.datagrams_to_send() == []  # only INVITEs


@pytest.mark.parametrize("config", [TimerConfig(), CFG, TimerConfig(T1=0.2, T2=0.5, T4=2.0)])
def test_timer_g_doubles_capped_at_t2_until_timer_h(config: TimerConfig) -> None:
    layer, clock, tx, invite = server(config=config)
    busy = make_response(invite, 486, to_tag="t1")
    layer.send_response(tx, busy, 0.0)
    assert tx.state is TxState.COMPLETED
    assert layer.datagrams_to_send() == [(busy.serialize(), UAC)]
    h = 64 * config.T1
    sent = run_timers(layer, clock, h - EPS)
    assert times(sent) == approx(schedule(config.T1, config.T2, h))
    assert only_data(sent) == {busy.serialize()}
    events = fires_at(layer, clock, h)
    assert kinds(events) == [TimedOut, TransactionTerminated]
    assert_gone(layer, tx)


def test_ack_confirms_then_timer_i() -> None:
    layer, clock, tx, invite = server()
    layer.send_response(tx, make_response(invite, 404, to_tag="t1"), 0.0)
    layer.datagrams_to_send()
    run_timers(layer, clock, 0.35)  # G fired at 0.1 and 0.3
    layer.datagrams_to_send()
    ack = make_request("ACK", to_tag="t1")
    layer.receive(ack, UAC, False, 0.35)
    assert tx.state is TxState.CONFIRMED
    assert drain_events(layer) == []  # an ACK for a non-2xx stays in the transaction
    # ACK and INVITE retransmissions are absorbed; G no longer fires.
    layer.receive(make_request("ACK", to_tag="t1"), UAC, False, 0.5)
    layer.receive(make_request("INVITE"), UAC, False, 0.5)
    assert drain_events(layer) == [] and layer.datagrams_to_send() == []
    events = fires_at(layer, clock, 0.35 + CFG.T4)
    assert layer.datagrams_to_send() == []
    assert kinds(events) == [TransactionTerminated]
    assert_gone(layer, tx)


def test_reliable_invite_server_has_no_timer_g_and_timer_i_is_zero() -> None:
    layer, _, tx, invite = server(reliable=True)
    layer.send_response(tx, make_response(invite, 480, to_tag="t1"), 0.0)
    layer.datagrams_to_send()
    assert layer.get_timer() == approx(64 * CFG.T1)  # H only
    layer.receive(make_request("ACK", to_tag="t1"), UAC, True, 1.0)
    assert kinds(drain_events(layer)) == [TransactionTerminated]
    assert layer.datagrams_to_send() == []
    assert_gone(layer, tx)


def test_reliable_invite_server_timer_h() -> None:
    layer, clock, tx, invite = server(reliable=True)
    layer.send_response(tx, make_response(invite, 480, to_tag="t1"), 0.0)
    events = fires_at(layer, clock, 64 * CFG.T1)
    assert kinds(events) == [TimedOut, TransactionTerminated]


def test_invite_retransmission_in_completed_gets_the_final_response() -> None:
    layer, _, tx, invite = server()
    final = make_response(invite, 503, to_tag="t1")
    layer.send_response(tx, final, 0.0)
    layer.datagrams_to_send()
    layer.receive(make_request("INVITE"), UAC, False, 0.05)
    assert layer.datagrams_to_send() == [(final.serialize(), UAC)]
    assert drain_events(layer) == []


def test_2xx_leads_to_accepted_and_timer_l() -> None:
    layer, clock, tx, invite = server()
    ok = make_response(invite, 200, to_tag="t1")
    layer.send_response(tx, ok, 0.0)
    assert tx.state is TxState.ACCEPTED
    assert layer.datagrams_to_send() == [(ok.serialize(), UAC)]
    # The transaction does not retransmit the 2xx itself ...
    assert run_timers(layer, clock, 1.0) == []
    # ... the TU does, through it.
    layer.send_response(tx, ok, 1.0)
    assert layer.datagrams_to_send() == [(ok.serialize(), UAC)]
    # INVITE retransmissions are absorbed, neither answered nor passed on.
    layer.receive(make_request("INVITE"), UAC, False, 1.1)
    assert layer.datagrams_to_send() == [] and drain_events(layer) == []
    # ACKs go to the TU: one matching the transaction, and one that matches none.
    same_branch = make_request("ACK", to_tag="t1")
    layer.receive(same_branch, "elsewhere", False, 1.2)
    new_branch = make_request("ACK", to_tag="t1", branch="z9hG4bK-ack")
    layer.receive(new_branch, UAC, False, 1.3)
    events = drain_events(layer)
    assert events == [
        AckReceived(same_branch, "elsewhere", tx),
        AckReceived(new_branch, UAC, None),
    ]
    # Error responses after the 2xx are ignored.
    layer.send_response(tx, make_response(invite, 500, to_tag="t1"), 1.4)
    assert layer.datagrams_to_send() == []
    events = fires_at(layer, clock, 64 * CFG.T1)
    assert kinds(events) == [TransactionTerminated]
    assert_gone(layer, tx)


@pytest.mark.parametrize("state", ["proceeding", "completed"])
def test_invite_server_transport_error(state: str) -> None:
    layer, _, tx, invite = server()
    layer.send_response(tx, make_response(invite, 180, to_tag="t1"), 0.0)
    if state == "completed":
        layer.send_response(tx, make_response(invite, 486, to_tag="t1"), 0.0)
    layer.transport_error(UAC, 0.1)
    events = drain_events(layer)
    assert kinds(events) == [TransportFailed, TransactionTerminated]
    assert events[0].tx is tx  # type: ignore[attr-defined]
    assert_gone(layer, tx)


def test_transport_error_in_server_accepted_informs_the_tu_and_stays() -> None:
    layer, _, tx, invite = server()
    layer.send_response(tx, make_response(invite, 200, to_tag="t1"), 0.0)
    layer.transport_error(UAC, 0.1)
    assert kinds(drain_events(layer)) == [TransportFailed]
    assert tx.state is TxState.ACCEPTED
    layer.receive(make_request("INVITE"), UAC, False, 0.2)
    assert drain_events(layer) == []  # still absorbing retransmissions


def test_late_tu_responses_are_ignored() -> None:
    layer, _, tx, invite = server()
    layer.send_response(tx, make_response(invite, 486, to_tag="t1"), 0.0)
    layer.datagrams_to_send()
    layer.send_response(tx, make_response(invite, 180, to_tag="t1"), 0.1)
    layer.send_response(tx, make_response(invite, 200, to_tag="t1"), 0.1)
    assert layer.datagrams_to_send() == []
    assert tx.state is TxState.COMPLETED


# -- non-INVITE server transaction (§17.2.2) ---------------------------------------------


def test_non_invite_server_absorbs_and_answers_retransmissions() -> None:
    layer, clock, tx, req = server("REGISTER")
    assert tx.state is TxState.TRYING
    layer.receive(make_request("REGISTER"), UAC, False, 0.1)  # nothing to resend yet
    assert drain_events(layer) == [] and layer.datagrams_to_send() == []
    trying = make_response(req, 100)
    layer.send_response(tx, trying, 0.2)
    assert tx.state is TxState.PROCEEDING
    assert layer.datagrams_to_send() == [(trying.serialize(), UAC)]
    layer.receive(make_request("REGISTER"), UAC, False, 0.3)
    assert layer.datagrams_to_send() == [(trying.serialize(), UAC)]
    ok = make_response(req, 200, to_tag="t1")
    layer.send_response(tx, ok, 0.4)
    assert tx.state is TxState.COMPLETED
    assert layer.datagrams_to_send() == [(ok.serialize(), UAC)]
    layer.receive(make_request("REGISTER"), UAC, False, 0.5)
    assert layer.datagrams_to_send() == [(ok.serialize(), UAC)]
    # A second final response is ignored.
    layer.send_response(tx, make_response(req, 500, to_tag="t1"), 0.6)
    assert layer.datagrams_to_send() == []
    assert drain_events(layer) == []
    events = fires_at(layer, clock, 0.4 + 64 * CFG.T1)  # Timer J
    assert kinds(events) == [TransactionTerminated]
    assert_gone(layer, tx)


def test_timer_j_is_zero_on_reliable_transports() -> None:
    layer, _, tx, req = server("MESSAGE", reliable=True)
    layer.send_response(tx, make_response(req, 202, to_tag="t1"), 0.1)
    assert len(layer.datagrams_to_send()) == 1
    assert kinds(drain_events(layer)) == [TransactionTerminated]
    assert_gone(layer, tx)


@pytest.mark.parametrize("state", ["trying", "proceeding", "completed"])
def test_non_invite_server_transport_error(state: str) -> None:
    layer, _, tx, req = server("SUBSCRIBE")
    if state != "trying":
        layer.send_response(tx, make_response(req, 100), 0.0)
    if state == "completed":
        layer.send_response(tx, make_response(req, 200, to_tag="t1"), 0.0)
    layer.transport_error(UAC, 0.1)
    if state == "trying":  # nothing sent yet: nothing failed (Figure 8)
        assert drain_events(layer) == [] and tx.state is TxState.TRYING
    else:
        assert kinds(drain_events(layer)) == [TransportFailed, TransactionTerminated]
        assert_gone(layer, tx)


# -- matching (§17.1.3, §17.2.3) -------------------------------------------------------------


def test_cancel_is_its_own_server_transaction() -> None:
    layer, _, invite_tx, _ = server()
    cancel = make_request("CANCEL")
    layer.receive(cancel, UAC, False, 0.1)
    (event,) = drain_events(layer)
    assert isinstance(event, RequestReceived) and event.tx is not invite_tx
    assert event.tx.method == "CANCEL" and event.tx.state is TxState.TRYING
    assert layer.find_server_invite(cancel) is invite_tx
    assert layer.find_server_invite(make_request("CANCEL", branch="z9hG4bK-other")) is None
    assert layer.find_server_invite(make_request("CANCEL", via_host="other.example.com")) is None
    assert layer.find_server_invite(make_request("OPTIONS")) is None
    assert len(layer) == 2


def test_client_cancel_and_invite_share_a_branch() -> None:
    layer, _, invite_tx, invite = client()
    cancel = make_request("CANCEL")
    cancel_tx = layer.send_request(cancel, UAS, False, 0.0)
    layer.receive(reply(cancel, 200), UAS, False, 0.1)
    layer.receive(reply(invite, 487), UAS, False, 0.1)
    events = [e for e in drain_events(layer) if isinstance(e, ResponseReceived)]
    assert [(e.tx, e.response.status) for e in events] == [(cancel_tx, 200), (invite_tx, 487)]


def test_same_branch_other_sent_by_is_another_transaction() -> None:
    layer = TransactionLayer(CFG)
    layer.receive(make_request("REGISTER"), UAC, False, 0.0)
    layer.receive(make_request("REGISTER", via_port=5070), UAC, False, 0.0)
    layer.receive(make_request("REGISTER", via_host="UAC.example.com"), UAC, False, 0.0)
    layer.receive(make_request("OPTIONS"), UAC, False, 0.0)
    assert kinds(drain_events(layer)) == [RequestReceived] * 3
    assert len(layer) == 3  # the host compares case-insensitively


def test_stray_responses() -> None:
    layer, _, _, _ = client()
    unknown = reply(make_request("INVITE", branch="z9hG4bK-nope"), 200)
    layer.receive(unknown, "peer", False, 0.0)
    other_method = reply(make_request("BYE"), 200)  # same branch, CSeq BYE
    layer.receive(other_method, "peer", False, 0.0)
    assert drain_events(layer) == [
        StrayResponse(unknown, "peer"),
        StrayResponse(other_method, "peer"),
    ]


def test_ack_matching_nothing_goes_to_the_tu() -> None:
    layer = TransactionLayer(CFG)
    ack = make_request("ACK", to_tag="t1")
    layer.receive(ack, UAC, False, 0.0)
    assert drain_events(layer) == [AckReceived(ack, UAC, None)]
    assert len(layer) == 0


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/UDP uac.example.com:5060;branch=z9hG4bK-1",
        "SIP/2.0/UDP UAC.Example.COM:5060;branch=z9hG4bK-1;rport",
        "SIP/2.0/UDP uac.example.com:5060;received=192.0.2.1;branch=z9hG4bK-1;rport",
        "SIP/2.0/UDP uac.example.com:5060 ; branch = z9hG4bK-1",
        "SIP/2.0/TCP uac.example.com:5060;BRANCH=z9hG4bK-1",
        "sip/2.0/udp uac.example.com:5060;branch=z9hG4bK-1",
        "SIP / 2.0 / UDP uac.example.com : 5060;branch=z9hG4bK-1",
        'SIP/2.0/UDP uac.example.com:5060;x="a,b";branch=z9hG4bK-1',
        "SIP/2.0/UDP uac.example.com:5060;branch=z9hG4bK-1, SIP/2.0/UDP x.example.com",
        "SIP/2.0/UDP [2001:DB8::1]:5060;branch=z9hG4bK-1",
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1",
        "SIP/2.0/UDP 192.0.2.1",
        "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK-1;rport",
    ],
)
def test_fast_via_key_agrees_with_the_via_parser(via: str) -> None:
    msg = make_request("OPTIONS", via_text=via)
    parsed = parse_via(via.split(", ", maxsplit=1)[0])
    assert top_via_key(msg) == (parsed.branch, parsed.host.lower(), parsed.port)


def test_equivalent_via_spellings_match_the_same_transaction() -> None:
    layer, _, tx, _ = server("OPTIONS")
    ok = make_response(tx.request, 200, to_tag="t1")
    layer.send_response(tx, ok, 0.0)
    layer.datagrams_to_send()
    retrans = make_request(
        "OPTIONS", via_text="SIP / 2.0 / UDP UAC.example.com : 5060;branch=z9hG4bK-1"
    )
    layer.receive(retrans, UAC, False, 0.1)
    assert layer.datagrams_to_send() == [(ok.serialize(), UAC)]
    assert drain_events(layer) == []


# -- RFC 2543 fallback matching (§17.2.3) --------------------------------------------------


LEGACY = {"branch": "1234abcd"}


def test_rfc2543_requests_match_on_the_old_fields() -> None:
    layer, _, tx, invite = server(**LEGACY)  # type: ignore[arg-type]
    assert tx.legacy
    busy = make_response(invite, 486, to_tag="t-2543")
    layer.send_response(tx, busy, 0.0)
    layer.datagrams_to_send()
    layer.receive(make_request("INVITE", **LEGACY), UAC, False, 0.1)  # type: ignore[arg-type]
    assert layer.datagrams_to_send() == [(busy.serialize(), UAC)]
    assert drain_events(layer) == []
    # Each field of the key makes a different transaction.
    for changed in (
        {"call_id": "other@uac"},
        {"cseq": 2},
        {"from_tag": "ft-2"},
        {"uri": "sip:carol@home1.net"},
        {"via_port": 5070},
        {"to_tag": "x"},
    ):
        layer.receive(make_request("INVITE", **LEGACY, **changed), UAC, False, 0.2)  # type: ignore[arg-type]
        assert kinds(drain_events(layer)) == [RequestReceived], changed
    # ACK matches with the To tag of the response, not the request's.
    wrong = make_request("ACK", to_tag="nope", **LEGACY)  # type: ignore[arg-type]
    layer.receive(wrong, UAC, False, 0.3)
    assert drain_events(layer) == [AckReceived(wrong, UAC, None)]
    layer.receive(make_request("ACK", to_tag="t-2543", **LEGACY), UAC, False, 0.3)  # type: ignore[arg-type]
    assert drain_events(layer) == []
    assert tx.state is TxState.CONFIRMED


def test_rfc2543_without_branch_and_cancel() -> None:
    layer, _, tx, _ = server(branch=None)
    assert tx.legacy
    layer.receive(make_request("INVITE", branch=None), UAC, False, 0.1)
    assert drain_events(layer) == []
    cancel = make_request("CANCEL", branch=None)
    layer.receive(cancel, UAC, False, 0.2)
    (event,) = drain_events(layer)
    assert isinstance(event, RequestReceived) and event.tx is not tx
    assert layer.find_server_invite(cancel) is tx
    assert layer.find_server_invite(make_request("CANCEL", branch=None, to_tag="x")) is None


def test_rfc2543_ack_for_2xx_reaches_the_tu_through_accepted() -> None:
    layer, _, tx, invite = server(**LEGACY)  # type: ignore[arg-type]
    layer.send_response(tx, make_response(invite, 200, to_tag="t-ok"), 0.0)
    ack = make_request("ACK", to_tag="t-ok", **LEGACY)  # type: ignore[arg-type]
    layer.receive(ack, UAC, False, 0.1)
    assert drain_events(layer) == [AckReceived(ack, UAC, tx)]


# -- the TU's side of the API --------------------------------------------------------------


def test_send_request_refuses_what_cannot_be_a_client_transaction() -> None:
    layer = TransactionLayer(CFG)
    with pytest.raises(LocalError):
        layer.send_request(make_request("ACK"), UAS, False, 0.0)
    with pytest.raises(LocalError):
        layer.send_request(make_request("OPTIONS", branch=None), UAS, False, 0.0)
    layer.send_request(make_request("OPTIONS"), UAS, False, 0.0)
    with pytest.raises(LocalError):
        layer.send_request(make_request("OPTIONS"), UAS, False, 0.0)
    assert len(layer) == 1


def test_send_stateless() -> None:
    layer = TransactionLayer(CFG)
    ack = make_request("ACK", branch="z9hG4bK-2xx-ack", to_tag="t1")
    layer.send_stateless(ack, UAS)
    resp = make_response(make_request("OPTIONS"), 404, to_tag="t2")
    layer.send_stateless(resp, UAC)
    assert layer.datagrams_to_send() == [(ack.serialize(), UAS), (resp.serialize(), UAC)]
    assert layer.datagrams_to_send() == []
    assert len(layer) == 0 and layer.get_timer() is None and layer.next_event() is None


def test_retransmissions_reuse_the_bytes_of_the_first_send() -> None:
    layer, clock, _, req = client("OPTIONS")
    first = req.serialize()
    req.headers.add("X-Changed", "afterwards")  # the TU may reuse its object
    sent = run_timers(layer, clock, 1.0)
    assert sent and only_data(sent) == {first}


def test_terminate_at_the_tus_request() -> None:
    layer, _, tx, invite = client()
    layer.receive(reply(invite, 180), UAS, False, 0.1)
    drain_events(layer)
    layer.terminate(tx)  # e.g. Timer C
    assert kinds(drain_events(layer)) == [TransactionTerminated]
    assert_gone(layer, tx)
    layer.terminate(tx)
    layer.receive(reply(invite, 200), UAS, False, 0.2)
    assert kinds(drain_events(layer)) == [StrayResponse]


def test_handle_timer_called_late_fires_each_timer_once() -> None:
    layer, _, _, _ = client("OPTIONS")
    layer.handle_timer(2.0)  # E was due at 0.1: one retransmission, not six
    assert len(layer.datagrams_to_send()) == 1
    assert layer.get_timer() == approx(2.2)  # E restarted from now with 2*T1
    layer.handle_timer(100.0)  # E and F due: F ends it
    assert len(layer.datagrams_to_send()) == 1
    assert kinds(drain_events(layer)) == [TimedOut, TransactionTerminated]


def test_stopped_timers_are_dropped_at_their_deadline() -> None:
    layer = TransactionLayer(CFG)
    n = 5000
    for i in range(n):
        req = make_request("OPTIONS", branch=f"z9hG4bK-{i}")
        layer.send_request(req, UAS, True, 0.0)  # Timer F armed
        layer.receive(reply(req, 200), UAS, True, 0.0)  # F stopped, K = 0
    assert len(layer) == 0
    assert layer.get_timer() is None  # dead entries never count as deadlines
    layer.handle_timer(CFG.timer_f + 1)
    assert len(layer._timers) == 0
    assert len([e for e in drain_events(layer) if isinstance(e, TransactionTerminated)]) == n


def test_many_transactions_time_out_in_deadline_order() -> None:
    layer = TransactionLayer(CFG)
    n = 3000
    for i in range(n):
        req = make_request("OPTIONS", branch=f"z9hG4bK-{i}")
        layer.send_request(req, UAS, False, i * 0.001)
        layer.receive(reply(req, 100), UAS, False, i * 0.001)
    drain_events(layer)
    layer.datagrams_to_send()
    # Each E fires and restarts, then F ends the transaction and kills the
    # new E: every one times out, in the order they started.
    layer.handle_timer(100.0)
    events = drain_events(layer)
    assert kinds(events) == [TimedOut, TransactionTerminated] * n
    timed_out = [e.tx.request.top_via.branch for e in events if isinstance(e, TimedOut)]
    assert timed_out == [f"z9hG4bK-{i}" for i in range(n)]
    assert len(layer) == 0
    assert layer.get_timer() is None
    assert len(layer._timers) == 0


# -- two layers over a memory network -------------------------------------------------------


@pytest.mark.parametrize("reliable", [False, True])
def test_non_invite_over_a_perfect_link(reliable: bool) -> None:
    clock = FakeClock()
    net = MemoryNetwork(clock, config=CFG, reliable=reliable)
    answer(net, 200)
    tx = net.uac.send_request(make_request("REGISTER"), UAS, reliable, 0.0)
    net.run(100.0)
    assert kinds(net.uac_events) == [ResponseReceived, TransactionTerminated]
    assert kinds(net.uas_events) == [RequestReceived, TransactionTerminated]
    assert len(net.uac) == len(net.uas) == 0
    assert tx.state is TxState.TERMINATED
    assert len(net.sent(UAS)) == 1 and len(net.sent(UAC)) == 1


def test_non_invite_over_a_lossy_link_still_completes() -> None:
    clock = FakeClock()
    # The first two REGISTERs and the first 200 are lost.
    net = MemoryNetwork(
        clock,
        config=CFG,
        loss_to_uas=[True, True] + [False] * 100,
        loss_to_uac=[True] + [False] * 100,
    )
    answer(net, 200)
    net.uac.send_request(make_request("REGISTER"), UAS, False, 0.0)
    net.run(100.0)
    ok = [e for e in net.uac_events if isinstance(e, ResponseReceived)]
    assert len(ok) == 1 and ok[0].response.status == 200
    assert kinds(net.uas_events) == [RequestReceived, TransactionTerminated]
    # Sent at 0, 0.1, 0.3 (delivered), 0.7 (answered with the stored 200).
    assert len(net.sent(UAS)) == 4 and len(net.sent(UAC)) == 2
    assert len(net.uac) == len(net.uas) == 0


def test_invite_rejected_over_a_lossy_link() -> None:
    clock = FakeClock()
    # To the UAS: INVITE lost once, then its retransmission, then the ACK lost once.
    net = MemoryNetwork(clock, config=CFG, loss_to_uas=[True, False, True] + [False] * 50)
    answer(net, 486)
    net.uac.send_request(make_request("INVITE"), UAS, False, 0.0)
    net.run(100.0)
    assert kinds(net.uac_events) == [ResponseReceived, TransactionTerminated]
    assert kinds(net.uas_events) == [RequestReceived, TransactionTerminated]
    to_uas = [reparse_request(d).method for d in net.sent(UAS)]
    assert to_uas == ["INVITE", "INVITE", "ACK", "ACK"]  # ACK re-sent on the 486 retransmission
    assert len(net.uac) == len(net.uas) == 0


def test_invite_accepted_end_to_end() -> None:
    clock = FakeClock()
    net = MemoryNetwork(clock, config=CFG, loss_to_uac=[True] + [False] * 50)
    answer(net, 200)  # the 2xx is lost once: the TUs retransmit and acknowledge
    invite = make_request("INVITE")
    tx = net.uac.send_request(invite, UAS, False, 0.0)
    net.flush()
    (received,) = [e for e in net.uas_events if isinstance(e, RequestReceived)]
    assert received.tx.state is TxState.ACCEPTED
    assert tx.state is TxState.CALLING
    net.run(0.15)  # the INVITE retransmission is absorbed by Accepted
    assert [e for e in net.uas_events if isinstance(e, RequestReceived)] == [received]
    ok = make_response(received.request, 200, to_tag="uas-1")
    net.uas.send_response(received.tx, ok, clock.now)  # the UAS core's 2xx retransmission
    net.flush()
    (got,) = [e for e in net.uac_events if isinstance(e, ResponseReceived)]
    assert got.response.status == 200 and tx.state is TxState.ACCEPTED
    ack = make_request("ACK", branch="z9hG4bK-ack", to_tag="uas-1")
    net.uac.send_stateless(ack, UAS)
    net.flush()
    acks = [e for e in net.uas_events if isinstance(e, AckReceived)]
    assert len(acks) == 1 and acks[0].tx is None and acks[0].source == UAC
    net.run(100.0)
    assert len(net.uac) == len(net.uas) == 0
