"""The ladder of Figure A.3.2-1 found in what the elements recorded."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from webims.observe.ladder import COLUMNS, find_flows, load_flows, render_plain, render_rich
from webims.observe.record import read_trace

from .flows import HSS, P_SIP, WIC_WSS, Deployment

#: (step, from, to, label start) of a successful registration, in order.
FIGURE_A_3_2_1 = [
    (1, "WIC", "WWSF/WAF", "POST /login"),
    (None, "WWSF/WAF", "WIC", "303 (logged in for user1)"),
    (1, "WIC", "WWSF/WAF", "GET /authorize"),
    (None, "WWSF/WAF", "WIC", "302 (authorisation code for user1)"),
    (1, "WIC", "WWSF/WAF", "POST /token"),
    (None, "WWSF/WAF", "WIC", "200 (access token for user1)"),
    (2, "WIC", "eP-CSCF", "WSS connection"),
    (3, "WIC", "eP-CSCF", "REGISTER sip:home1.net (Bearer)"),
    (4, "eP-CSCF", "eP-CSCF", "token valid: IMPI user1_private@home1.net"),
    (5, "eP-CSCF", "I-CSCF", "REGISTER sip:home1.net (auth-done)"),
    (5, "I-CSCF", "HSS", "UAR REGISTRATION"),
    (5, "HSS", "I-CSCF", "UAA 2001 DIAMETER_FIRST_REGISTRATION"),
    (5, "I-CSCF", "S-CSCF", "REGISTER sip:home1.net (auth-done)"),
    (6, "S-CSCF", "HSS", "SAR"),
    (6, "HSS", "S-CSCF", "SAA 2001"),
    (7, "S-CSCF", "I-CSCF", "200 OK"),
    (7, "I-CSCF", "eP-CSCF", "200 OK"),
    (8, "eP-CSCF", "WIC", "200 OK"),
]


def recorded(tmp_path: Path, *users: str) -> Deployment:
    dep = Deployment(tmp_path)
    for n, user in enumerate(users, start=1):
        dep.register(n, user)
    dep.close()
    return dep


def shape(flow: object) -> list[tuple[int | None, str, str, str]]:
    steps = flow.steps  # type: ignore[attr-defined]
    return [(s.number, s.src, s.dst, s.label) for s in steps]


def test_steps_1_to_8_of_figure_a_3_2_1_in_order(tmp_path: Path) -> None:
    recorded(tmp_path, "user1")
    [flow] = load_flows(tmp_path)
    got = shape(flow)
    assert len(got) == len(FIGURE_A_3_2_1), got
    for (n, src, dst, label), want in zip(got, FIGURE_A_3_2_1, strict=True):
        assert (n, src, dst) == want[:3]
        assert label.startswith(want[3]), (label, want)
    assert flow.outcome == "200 OK"
    assert flow.impu == "sip:user1_public1@home1.net"
    numbers = [s.number for s in flow.steps if s.number is not None]
    assert numbers == sorted(numbers)


def test_each_message_is_drawn_once_though_both_ends_recorded_it(tmp_path: Path) -> None:
    dep = Deployment(tmp_path, separate=True)  # every element in its own process
    dep.register(1, "user1")
    dep.close()
    records = read_trace(tmp_path)
    # The forwarded REGISTER: the eP-CSCF's "out" and the I-CSCF's "in".
    forwarded = [r for r in records if r.src == P_SIP and r.payload.startswith(b"REGISTER")]
    assert {(r.element, r.direction) for r in forwarded} == {("eP-CSCF", "out"), ("I-CSCF", "in")}
    [flow] = find_flows(records)
    assert sum(1 for s in flow.steps if s.number == 5 and s.label.startswith("REGISTER")) == 2
    assert shape(flow) == shape(load_flows(_one_process(tmp_path / "one"))[0])


def _one_process(directory: Path) -> Path:
    recorded(directory, "user1")
    return directory


def test_in_one_process_a_message_between_elements_is_recorded_by_its_sender(
    tmp_path: Path,
) -> None:
    recorded(tmp_path, "user1")
    records = read_trace(tmp_path)
    forwarded = [r for r in records if r.src == P_SIP and r.payload.startswith(b"REGISTER")]
    assert [(r.element, r.direction) for r in forwarded] == [("eP-CSCF", "out")]
    uaa = [r for r in records if r.protocol == "diameter" and r.src == HSS]
    assert {(r.element, r.direction) for r in uaa} == {("HSS", "out")}
    # What comes from the WIC is recorded by its receiver, what goes to it by its sender.
    assert {(r.element, r.direction) for r in records if WIC_WSS in (r.src, r.dst)} == {
        ("eP-CSCF", "in"),
        ("eP-CSCF", "out"),
    }
    assert len(records) == 14  # 3 OAuth exchanges, 11 SIP and Cx messages, each once


def test_the_wic_column_is_every_address_no_element_recorded_as_its_own(tmp_path: Path) -> None:
    recorded(tmp_path, "user1")
    records = read_trace(tmp_path)
    assert all(r.local != WIC_WSS for r in records)
    [flow] = find_flows(records)
    assert flow.title.startswith("REGISTER sip:user1_public1@home1.net")
    assert f"from {WIC_WSS[0]}:{WIC_WSS[1]} over wss" in flow.title
    assert {s.src for s in flow.steps} | {s.dst for s in flow.steps} == set(COLUMNS)


def test_last_flows_are_the_latest_registers_and_other_users_stay_out(tmp_path: Path) -> None:
    recorded(tmp_path, "user2", "user1")
    flows = load_flows(tmp_path, last=2)
    assert [f.impu for f in flows] == [
        "sip:user2_public1@home1.net",
        "sip:user1_public1@home1.net",
    ]
    for flow, user in zip(flows, ("user2", "user1"), strict=True):
        labels = " ".join(s.label for s in flow.steps)
        other = "user1" if user == "user2" else "user2"
        assert f"{user}_private" in labels and other not in labels
        # Only this user's Cx exchanges, one UAR/UAA and one SAR/SAA.
        assert sorted(
            s.label.split()[0] for s in flow.steps if s.src == "HSS" or s.dst == "HSS"
        ) == [
            "SAA",
            "SAR",
            "UAA",
            "UAR",
        ]
    only = load_flows(tmp_path, last=5, impus=["sip:user2_public1@home1.net"])
    assert [f.impu for f in only] == ["sip:user2_public1@home1.net"]


def test_a_reregistration_on_the_same_connection_says_it_is_open(tmp_path: Path) -> None:
    dep = Deployment(tmp_path)
    dep.register(1, "user1")
    dep.register(2, "user1")
    dep.close()
    first, second = load_flows(tmp_path, last=2)
    assert first.steps[6].label == "WSS connection (TLS, subprotocol sip)"
    assert second.steps[6].label.startswith("WSS connection (TLS, subprotocol sip), open since -")


def test_introspection_is_part_of_step_4_before_the_decision(tmp_path: Path) -> None:
    dep = Deployment(tmp_path)
    dep.register(1, "user1", introspect=True)
    dep.close()
    [flow] = load_flows(tmp_path)
    got = shape(flow)
    assert got[8:12] == [
        (4, "eP-CSCF", "WWSF/WAF", "POST /introspect"),
        (None, "WWSF/WAF", "eP-CSCF", "200 (token introspection)"),
        (4, "eP-CSCF", "eP-CSCF", got[10][3]),
        (5, "eP-CSCF", "I-CSCF", "REGISTER sip:home1.net (auth-done)"),
    ]
    assert got[10][3].startswith("token valid: IMPI user1_private@home1.net")


def test_a_refused_register_ends_with_its_answer(tmp_path: Path) -> None:
    dep = Deployment(tmp_path)
    dep.register(1, "user1", outcome=403)
    dep.close()
    [flow] = load_flows(tmp_path)
    assert flow.outcome == "403 Forbidden"
    assert (8, "eP-CSCF", "WIC", "403 Forbidden") in shape(flow)


def test_a_sip_phone_without_token_is_challenged_after_a_mar(tmp_path: Path) -> None:
    dep = Deployment(tmp_path)
    dep.register(1, "user1", outcome=401, web=False)
    dep.close()
    [flow] = load_flows(tmp_path)
    got = shape(flow)
    assert flow.outcome == "401 Unauthorized" and "over udp" in flow.title
    assert [n for n, *_ in got] == [2, 3, 4, 5, 5, 5, 5, 6, 6, 7, 7, 8]
    assert got[0][3] == "UDP (no connection)"
    assert got[2][3].startswith("no Bearer token: SIP Digest")
    assert [label for n, *_, label in got if n == 6] == ["MAR", "MAA 2001"]
    assert got[3][3] == "REGISTER sip:home1.net"  # no auth-done


def test_nothing_recorded_is_no_flow(tmp_path: Path) -> None:
    assert load_flows(tmp_path / "none") == []


def test_plain_and_rich_renderings_show_the_steps(tmp_path: Path) -> None:
    recorded(tmp_path, "user1")
    [flow] = load_flows(tmp_path)
    text = render_plain(flow)
    lines = text.splitlines()
    header = next(line for line in lines if "WIC" in line and "HSS" in line)
    for name in COLUMNS:
        assert name in header
    assert header.index("WIC") < header.index("WWSF/WAF") < header.index("eP-CSCF")
    assert header.index("I-CSCF") < header.index("S-CSCF") < header.index("HSS")
    numbered = [int(line[:3]) for line in lines if line[:3].strip().isdigit()]
    assert numbered == [1, 1, 1, 2, 3, 4, 5, 5, 5, 5, 6, 6, 7, 7, 8]
    arrow = next(line for line in lines if line.rstrip().endswith("-->|") and "|--" in line)
    assert "\x1b" not in text and arrow
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="standard")
    console.print(render_rich(flow))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[35m" in shown  # Diameter in magenta
    plain_lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in shown.splitlines()]
    # The title may wrap; the ladder's lines are cut at 80 columns, never wrapped.
    assert all(len(line) <= 80 for line in plain_lines)
    ladder = plain_lines[plain_lines.index("") + 1 :]
    assert len(ladder) == len(lines) - 2
    assert [line[:40] for line in ladder] == [line[:40] for line in lines[2:]]


def test_last_ladder_of_a_deployment(tmp_path: Path) -> None:
    from webims.config import load_settings
    from webims.observe.trace import last_ladder

    settings = load_settings(None, data_dir=tmp_path)
    assert last_ladder(settings) == ""
    recorded(tmp_path / "trace", "user1", "user2")
    assert last_ladder(settings).startswith("REGISTER sip:user2_public1@home1.net: 200 OK")
    one = last_ladder(settings, "sip:user1_public1@home1.net", wait=0.2)
    assert one.startswith("REGISTER sip:user1_public1@home1.net: 200 OK")
