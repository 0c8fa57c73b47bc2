"""The last calls in the trace, as ladders (SPEC.md §9.7, §9.9).

A call is the dialog of an initial INVITE that a WIC sent, followed across the
elements by its Call-ID (a proxy changes none): the INVITE, every response to
it, CANCEL, ACK, BYE and whatever else the dialog carried (re-INVITE, INFO,
UPDATE …), as each element recorded it; and the Location-Info requests the
I-CSCF sent about the called IMPU while the INVITE was under way (LIR/LIA,
TS 29.228 6.1.4), with their answers.

Columns: the caller (the address the INVITE came from), the elements, and the
callee: every other address outside the deployment that the dialog reached.
A forked call that reached two devices of the callee draws the second as
"callee 2".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final

from .ladder import PCSCF, WIC, Exchange, LadderFlow, Step, cx_steps, exchanges, sip_views
from .messages import SipView
from .record import Address, TraceRecord

__all__ = ["CALL_COLUMNS", "find_calls"]

CALLER: Final = "caller"
CALLEE: Final = "callee"
CALL_COLUMNS: Final = (CALLER, PCSCF, "S-CSCF", "I-CSCF", "HSS", CALLEE)
#: What the ladder says when the INVITE has no final answer (yet) in the trace.
UNANSWERED: Final = "no final response"


def find_calls(
    records: Sequence[TraceRecord], last: int = 1, impus: Iterable[str] | None = None
) -> list[LadderFlow]:
    """The last ``last`` calls made by WICs in ``records`` (from or to one of
    ``impus`` only, when given), oldest first."""
    wanted = set(impus) if impus is not None else None
    msgs = exchanges(records)
    view = sip_views(msgs)

    found: list[LadderFlow] = []
    done: set[str] = set()
    for i in range(len(msgs) - 1, -1, -1):
        if len(found) >= last:
            break
        x = msgs[i]
        if x.protocol != "sip" or x.sender != WIC or not x.payload.startswith(b"INVITE "):
            continue
        v = view(i)
        if v is None or v.call_id in done or v.to_tag:
            continue  # a re-INVITE is part of its call
        if wanted is not None and v.from_uri not in wanted and v.request_uri not in wanted:
            continue
        done.add(v.call_id)
        found.append(_call(msgs, view, i, v))
    found.reverse()
    return found


def _call(
    msgs: list[Exchange], view: Callable[[int], SipView | None], first: int, invite: SipView
) -> LadderFlow:
    start = msgs[first]
    needle = invite.call_id.encode()
    dialog: list[tuple[Exchange, SipView]] = []
    for j in range(first, len(msgs)):
        x = msgs[j]
        if x.protocol == "sip" and needle in x.payload:
            v = view(j)
            if v is not None and v.call_id == invite.call_id:
                dialog.append((x, v))
    parties = _Parties(start.src)
    steps = [
        Step(
            None,
            x.time,
            parties.name(x.sender, x.src),
            parties.name(x.receiver, x.dst),
            _label(v),
            "sip",
        )
        for x, v in dialog
    ]
    finals = [
        (x, v)
        for x, v in dialog
        if not v.is_request
        and v.cseq_method == "INVITE"
        and v.cseq == invite.cseq
        and (v.status or 0) >= 200
        and x.dst == start.src
    ]
    outcome = finals[0][1].label if finals else UNANSWERED
    answered_at = finals[0][0].time if finals else dialog[-1][0].time
    steps += cx_steps(msgs, start.time, answered_at, invite.request_uri, None)
    steps.sort(key=lambda s: (s.time, s.order))
    title = f"INVITE {invite.request_uri}: {outcome}"
    byes = [x for x, v in dialog if v.is_request and v.label.startswith("BYE ")]
    if byes:
        who = parties.name(byes[0].sender, byes[0].src)
        title += f", BYE from the {who} after {byes[0].time - answered_at:.1f} s"
    title += (
        f" (Call-ID {invite.call_id}, from {start.src[0]}:{start.src[1]} over {start.transport})"
    )
    return LadderFlow(
        title=title,
        start=start.time,
        impu=invite.request_uri,
        outcome=outcome,
        steps=steps,
        columns=CALL_COLUMNS,
    )


def _label(v: SipView) -> str:
    """A request's start line; a response's status, with the method it answers
    when that is not the INVITE (``200 OK (CANCEL)``, ``200 OK (BYE)``)."""
    if v.is_request or v.cseq_method == "INVITE":
        return v.label
    return f"{v.label} ({v.cseq_method})"


class _Parties:
    """The columns of the addresses outside the deployment: the caller's, then
    each device of the callee in the order the dialog reached it."""

    def __init__(self, caller: Address) -> None:
        self.caller = caller
        self.callees: list[Address] = []

    def name(self, column: str, address: Address) -> str:
        if column != WIC:
            return column
        if address == self.caller:
            return CALLER
        if address not in self.callees:
            self.callees.append(address)
        n = self.callees.index(address)
        return CALLEE if n == 0 else f"{CALLEE} {n + 1}"
