"""The last registrations in the trace, as ladders numbered like TS 24.371
Figure A.3.2-1 (WIC registration based on web authentication).

A flow is one REGISTER transaction of a WIC followed across the elements
(same Call-ID and CSeq: a proxy changes neither), the Cx requests about that
user inside its time span (their answers by Session-Id), and the OAuth
exchanges of that user just before it.  Its steps::

    1  login and access token         WIC <-> WWSF/WAF (login, /authorize, /token)
    2  WSS connection                 WIC <-> eP-CSCF (the connection step 3 came on)
    3  REGISTER (Bearer token)        WIC -> eP-CSCF
    4  token validation               at the eP-CSCF (and RFC 7662 introspection, if any)
    5  REGISTER to the core           eP-CSCF -> I-CSCF -> S-CSCF, with UAR/UAA
    6  S-CSCF registration            SAR/SAA (MAR/MAA for SIP Digest)
    7  200 (OK)                       S-CSCF -> I-CSCF -> eP-CSCF
    8  200 (OK)                       eP-CSCF -> WIC

Columns are the elements, named by what each records about itself: an
address an element recorded as its own (the destination of what it received,
the source of what it sent) is that element; any other address is the WIC.
A message recorded by both its sender and its receiver is drawn once.
Step 2 is not a message: it is drawn from the transport step 3 arrived on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from rich.console import Group
from rich.text import Text

from .messages import DiameterView, SipView, diameter_view, sip_view
from .record import Address, TraceRecord, read_trace

__all__ = [
    "COLUMNS",
    "NO_FINAL",
    "PCSCF",
    "WIC",
    "Exchange",
    "LadderFlow",
    "Step",
    "cx_steps",
    "exchanges",
    "find_flows",
    "load_flows",
    "render_plain",
    "render_rich",
    "sip_views",
]

WIC: Final = "WIC"
#: The outcome of a flow whose final answer to the WIC is not (yet) recorded.
NO_FINAL: Final = "no final response"
WEB: Final = "WWSF/WAF"
PCSCF: Final = "eP-CSCF"
COLUMNS: Final = (WIC, WEB, PCSCF, "I-CSCF", "S-CSCF", "HSS")

#: OAuth exchanges of step 1 are looked for this long before the REGISTER.
_OAUTH_WINDOW: Final = 900.0
_CX_STEP: Final = {300: 5, 301: 6, 303: 6}
_UNSPECIFIED: Final = ("0.0.0.0", "::")
#: Messages looked back at for an earlier use of the REGISTER's connection.
_LOOK_BACK: Final = 20_000


@dataclass(frozen=True, slots=True)
class Exchange:
    """One message on the wire, as its sender and/or its receiver recorded it."""

    time: float
    protocol: str
    transport: str
    src: Address
    dst: Address
    sender: str
    receiver: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Step:
    """An arrow (``src != dst``) or a note on one column (``src == dst``)."""

    number: int | None
    time: float
    src: str
    dst: str
    label: str
    kind: str  # "sip" | "diameter" | "http" | "note" | "connection"
    #: Breaks ties in time: step 2 before step 3 before step 4.
    order: int = 0


@dataclass
class LadderFlow:
    """One registration, ready to draw."""

    title: str
    start: float
    impu: str
    outcome: str
    steps: list[Step] = field(default_factory=list)
    columns: tuple[str, ...] = COLUMNS


# -- messages and who sent them --------------------------------------------------------


def _address_book(records: Iterable[TraceRecord]) -> dict[Address, str]:
    book: dict[Address, str] = {}
    for r in records:
        local = r.local
        book[local] = r.element
        if local[0] in _UNSPECIFIED:
            book[("*", local[1])] = r.element
    return book


def _who(book: dict[Address, str], addr: Address) -> str:
    return book.get(addr) or book.get(("*", addr[1])) or WIC


def exchanges(records: Sequence[TraceRecord]) -> list[Exchange]:
    """The messages of ``records`` (sorted by time), each once, with the
    columns of its sender and receiver."""
    book = _address_book(records)
    out: list[Exchange] = []
    seen: dict[tuple[str, Address, Address, bytes], int] = {}
    for r in records:
        if r.protocol == "http":
            path = _http(r).get("path")
            sender = PCSCF if path == "/introspect" else _who(book, r.src)
            out.append(
                Exchange(r.time, "http", r.transport, r.src, r.dst, sender, r.element, r.payload)
            )
            continue
        key = (r.protocol, r.src, r.dst, r.payload)
        if key in seen:
            continue  # the other end's record of it (or a retransmission)
        seen[key] = len(out)
        if r.direction == "out":
            sender, receiver = r.element, _who(book, r.dst)
        else:
            sender, receiver = _who(book, r.src), r.element
        out.append(
            Exchange(r.time, r.protocol, r.transport, r.src, r.dst, sender, receiver, r.payload)
        )
    return out


def sip_views(msgs: Sequence[Exchange]) -> Callable[[int], SipView | None]:
    """The SIP view of ``msgs[i]``, parsed once when first asked for."""
    views: dict[int, SipView | None] = {}

    def view(i: int) -> SipView | None:
        if i not in views:
            views[i] = sip_view(msgs[i].payload)
        return views[i]

    return view


def _http(r: TraceRecord | Exchange) -> dict[str, object]:
    try:
        value = json.loads(r.payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- flows -----------------------------------------------------------------------------


def load_flows(
    directory: Path, last: int = 1, impus: Iterable[str] | None = None
) -> list[LadderFlow]:
    """The last ``last`` registrations recorded in ``directory``, oldest first."""
    return find_flows(read_trace(directory), last, impus)


def find_flows(
    records: Sequence[TraceRecord], last: int = 1, impus: Iterable[str] | None = None
) -> list[LadderFlow]:
    """The last ``last`` REGISTER flows of WICs in ``records`` (of ``impus`` only,
    when given), oldest first."""
    wanted = set(impus) if impus is not None else None
    msgs = exchanges(records)
    view = sip_views(msgs)

    found: list[LadderFlow] = []
    done: set[tuple[str, int]] = set()
    for i in range(len(msgs) - 1, -1, -1):
        if len(found) >= last:
            break
        x = msgs[i]
        if x.protocol != "sip" or x.sender != WIC or not x.payload.startswith(b"REGISTER "):
            continue
        v = view(i)
        if v is None or (v.call_id, v.cseq) in done:
            continue
        if wanted is not None and v.to_uri not in wanted:
            continue
        done.add((v.call_id, v.cseq))
        found.append(_flow(msgs, view, i, v))
    found.reverse()
    return found


def _flow(
    msgs: list[Exchange], view: Callable[[int], SipView | None], first: int, reg: SipView
) -> LadderFlow:
    """The flow of the WIC's REGISTER ``msgs[first]``."""
    needle = reg.call_id.encode()
    key = (reg.call_id, reg.cseq, "REGISTER")
    chain: list[tuple[Exchange, SipView]] = []
    for j in range(first, len(msgs)):
        x = msgs[j]
        if x.protocol != "sip" or needle not in x.payload:
            continue
        v = view(j)
        if v is not None and (v.call_id, v.cseq, v.cseq_method) == key:
            chain.append((x, v))
    start = msgs[first]
    t0 = start.time
    t1 = max(x.time for x, _ in chain)
    impi = _impi(chain)
    steps: list[Step] = []
    steps += _oauth_steps(msgs, first, reg.to_uri)
    steps += _sip_steps(chain, msgs[max(0, first - _LOOK_BACK) : first])
    steps += cx_steps(msgs, t0, t1, reg.to_uri, impi)
    steps += _introspection_steps(msgs, t0, t1)
    steps.sort(key=lambda s: (s.time, s.order))
    final = next(
        (v.label for x, v in reversed(chain) if x.receiver == WIC and (v.status or 0) >= 200),
        NO_FINAL,
    )
    ms = (t1 - t0) * 1000
    title = (
        f"REGISTER {reg.to_uri}: {final} in {ms:.1f} ms (Call-ID {reg.call_id}, "
        f"CSeq {reg.cseq}, from {start.src[0]}:{start.src[1]} over {start.transport})"
    )
    return LadderFlow(title=title, start=t0, impu=reg.to_uri, outcome=final, steps=steps)


def _impi(chain: list[tuple[Exchange, SipView]]) -> str | None:
    """The Digest username the eP-CSCF put in the REGISTER it forwarded."""
    for x, v in chain:
        if v.is_request and x.sender != WIC:
            for value in v.authorization:
                if value.lstrip().lower().startswith("digest"):
                    return _param(value, "username")
    return None


def _param(value: str, name: str) -> str | None:
    for part in value.split(","):
        key, _, val = part.strip().partition("=")
        if key.split()[-1:] == [name]:
            return val.strip().strip('"')
    return None


def _sip_steps(chain: list[tuple[Exchange, SipView]], earlier: Sequence[Exchange]) -> list[Step]:
    steps: list[Step] = []
    for x, v in chain:
        label = v.label
        if v.is_request:
            if x.sender == WIC:
                bearer = any(a.lstrip().lower().startswith("bearer") for a in v.authorization)
                steps.append(
                    Step(3, x.time, WIC, x.receiver, label + (" (Bearer)" * bearer), "sip")
                )
                steps.append(_connection_step(x, earlier))
                steps.append(_validation_step(x, chain, bearer))
                continue
            digest = next((a for a in v.authorization if "auth-done" in a), None)
            steps.append(
                Step(
                    5, x.time, x.sender, x.receiver, label + (" (auth-done)" * bool(digest)), "sip"
                )
            )
            continue
        final = (v.status or 0) >= 200
        number = (8 if x.receiver == WIC else 7) if final else None
        steps.append(Step(number, x.time, x.sender, x.receiver, label, "sip"))
    return steps


def _connection_step(register: Exchange, earlier: Sequence[Exchange]) -> Step:
    """Step 2: the connection the REGISTER came on; one that carried messages
    before (a re-registration) is said to be open already."""
    kinds = {
        "wss": "WSS connection (TLS, subprotocol sip)",
        "ws": "WS connection (subprotocol sip)",
        "tls": "TLS connection",
        "tcp": "TCP connection",
    }
    label = kinds.get(register.transport, f"{register.transport.upper()} (no connection)")
    if register.transport in kinds:
        since = next(
            (
                x.time
                for x in earlier
                if x.transport == register.transport and register.src in (x.src, x.dst)
            ),
            None,
        )
        if since is not None:
            label += f", open since {(since - register.time) * 1000:+.1f} ms"
    return Step(2, register.time, WIC, register.receiver, label, "connection", order=-1)


def _validation_step(
    register: Exchange, chain: list[tuple[Exchange, SipView]], bearer: bool
) -> Step:
    """Step 4, read from what the eP-CSCF did next: the IMPI and WAF identity
    it put in the REGISTER it forwarded (Table A.3.2-2), or no forwarding."""
    at = register.receiver
    if not bearer:
        label = "no Bearer token: SIP Digest at the S-CSCF (TS 24.229 5.4.1.2)"
        return Step(4, register.time, at, at, label, "note", order=1)
    # Drawn where the decision shows: just before the eP-CSCF's next message
    # of the transaction (after any introspection), else after the REGISTER.
    after = [(x, v) for x, v in chain if x.sender == at and x.time >= register.time]
    forwarded = next(((x, v) for x, v in after if v.is_request), None)
    if forwarded is None:
        label = "token not accepted: REGISTER not forwarded"
    else:
        digest = next((a for a in forwarded[1].authorization if "auth-done" in a), "")
        impi = _param(digest, "username") if digest else None
        entity = _param(digest, "authorization-entity") if digest else None
        label = "token valid"
        if impi:
            label += f": IMPI {impi}"
        if entity:
            label += f", WAF {entity}"
    if after:
        return Step(4, after[0][0].time, at, at, label, "note", order=-1)
    return Step(4, register.time, at, at, label, "note", order=1)


def cx_steps(msgs: list[Exchange], t0: float, t1: float, impu: str, impi: str | None) -> list[Step]:
    """The Cx requests between ``t0`` and ``t1`` about ``impu`` (or ``impi``),
    with their answers (by Session-Id)."""
    cx: list[tuple[Exchange, DiameterView]] = []
    sessions: set[str] = set()
    for x in msgs:
        if x.protocol != "diameter" or not t0 <= x.time <= t1:
            continue
        d = diameter_view(x.payload)
        if d is None:
            continue
        if d.is_request and (impu in d.public_identities or (impi and d.user_name == impi)):
            if d.session_id:
                sessions.add(d.session_id)
            cx.append((x, d))
        elif not d.is_request and d.session_id in sessions:
            cx.append((x, d))
    return [
        Step(_CX_STEP.get(d.command), x.time, x.sender, x.receiver, d.label, "diameter")
        for x, d in cx
    ]


def _oauth_steps(msgs: list[Exchange], first: int, impu: str) -> list[Step]:
    """Step 1: the access token issued for ``impu`` last before the REGISTER,
    and the same web user's login and authorisation before it."""
    t_reg = msgs[first].time
    http = [
        (x, _http(x))
        for x in msgs[:first]
        if x.protocol == "http" and x.time >= t_reg - _OAUTH_WINDOW and x.sender == WIC
    ]
    token_at = None
    for k in range(len(http) - 1, -1, -1):
        x, h = http[k]
        impus = h.get("impus")
        assert impus is None or isinstance(impus, list)
        if h.get("path") == "/token" and h.get("status") == 200 and impu in (impus or ()):
            token_at = k
            break
    if token_at is None:
        return []
    user = http[token_at][1].get("user")
    begin = 0
    for k in range(token_at - 1, -1, -1):
        h = http[k][1]
        if h.get("user") == user and h.get("path") == "/token" and h.get("status") == 200:
            begin = k + 1  # an earlier token of this user: its own step 1
            break
    steps: list[Step] = []
    for x, h in http[begin : token_at + 1]:
        if h.get("user") != user or h.get("path") not in ("/login", "/authorize", "/token"):
            continue
        steps += _http_steps(x, h, 1)
    return steps


def _http_steps(x: Exchange, h: dict[str, object], number: int) -> list[Step]:
    method, path = h.get("method", "?"), h.get("path", "?")
    summary = str(h.get("summary", ""))
    answer = summary.removeprefix(f"{method} {path} ") or str(h.get("status", ""))
    return [
        Step(number, x.time, x.sender, x.receiver, f"{method} {path}", "http"),
        Step(None, x.time, x.receiver, x.sender, answer, "http", order=1),
    ]


def _introspection_steps(msgs: list[Exchange], t0: float, t1: float) -> list[Step]:
    steps: list[Step] = []
    for x in msgs:
        if x.protocol == "http" and t0 <= x.time <= t1:
            h = _http(x)
            if h.get("path") == "/introspect":
                steps += _http_steps(x, h, 4)
    return steps


# -- drawing ---------------------------------------------------------------------------

_WIDTH: Final = 16
_MARGIN: Final = 14
_STYLES: Final = {
    "sip": "cyan",
    "diameter": "magenta",
    "http": "green",
    "note": "yellow",
    "connection": "blue",
}


class _Canvas:
    """Lines of characters, a lifeline per column, with styled spans."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.x = [_MARGIN + i * _WIDTH + _WIDTH // 2 for i in range(len(columns))]
        self.lines: list[list[str]] = []
        self.spans: list[list[tuple[int, int, str]]] = []

    def column(self, name: str) -> int:
        if name not in self.columns:
            self.columns.append(name)
            self.x.append(_MARGIN + len(self.x) * _WIDTH + _WIDTH // 2)
        return self.x[self.columns.index(name)]

    def blank(self) -> int:
        line = [" "] * (self.x[-1] + 1)
        for x in self.x:
            line[x] = "|"
        self.lines.append(line)
        self.spans.append([])
        return len(self.lines) - 1

    def put(self, row: int, at: int, text: str, style: str | None = None) -> None:
        line = self.lines[row]
        if len(line) < at + len(text):
            line.extend(" " * (at + len(text) - len(line)))
        line[at : at + len(text)] = list(text)
        if style:
            self.spans[row].append((at, at + len(text), style))

    def header(self) -> None:
        row = self.blank()
        self.lines[row] = [" "] * len(self.lines[row])
        for i, name in enumerate(self.columns):
            self.put(row, max(0, self.x[i] - len(name) // 2), name, "bold")


def _draw(flow: LadderFlow) -> _Canvas:
    canvas = _Canvas(flow.columns)
    for step in flow.steps:  # columns of elements outside the six of the figure
        canvas.column(step.src)
        canvas.column(step.dst)
    canvas.header()
    canvas.blank()
    for step in flow.steps:
        style = _STYLES.get(step.kind, "")
        a, b = canvas.column(step.src), canvas.column(step.dst)
        number = f"{step.number:>2}" if step.number is not None else "  "
        row = canvas.blank()
        canvas.put(row, 0, number, "bold")
        canvas.put(row, 3, f"{(step.time - flow.start) * 1000:+8.1f}ms", "dim")
        if a == b:
            canvas.put(row, a + 2, f"[{step.label}]", style)
            continue
        lo, hi = min(a, b), max(a, b)
        canvas.put(row, lo + 2, step.label, style)
        fill = "=" if step.kind == "connection" else "-"
        body = [fill] * (hi - lo - 1)
        if step.kind == "connection":
            body[0], body[-1] = "<", ">"
        elif b > a:
            body[-1] = ">"
        else:
            body[0] = "<"
        canvas.put(canvas.blank(), lo + 1, "".join(body), style)
    return canvas


def render_plain(flow: LadderFlow) -> str:
    """The ladder as plain text (for ``--plain``, pipes and the web page)."""
    canvas = _draw(flow)
    body = "\n".join("".join(line).rstrip() for line in canvas.lines)
    return f"{flow.title}\n\n{body}\n"


def render_rich(flow: LadderFlow) -> Group:
    """The ladder with colours (SIP cyan, Diameter magenta, HTTP green); its
    lines are cut at the terminal's width rather than wrapped, which would
    break the lifelines."""
    canvas = _draw(flow)
    ladder = Text(no_wrap=True, overflow="ellipsis")
    for n, (line, spans) in enumerate(zip(canvas.lines, canvas.spans, strict=True)):
        row = Text("".join(line).rstrip())
        for start, end, style in spans:
            row.stylize(style, start, end)
        if n:
            ladder.append("\n")
        ladder.append_text(row)
    return Group(Text(flow.title, style="bold"), Text(), ladder)
