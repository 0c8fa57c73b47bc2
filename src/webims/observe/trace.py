"""The message trace recorder: every SIP, Diameter and OAuth message an
element handles, for ``webims trace`` (a ladder of the last flows) and its
pcap export.

Each element holds one :class:`TraceRecorder` (``[trace] enabled``, the
default) and hands it to the places that see messages:

- :class:`~webims.transport.endpoint.SipEndpoint` (``tracer``): each message
  received (the bytes as they arrived) and each one sent, with the flow's
  addresses and transport;
- :class:`~webims.diameter.node.DiameterNode` (``tracer``): application
  messages (Cx) in and out — not CER/DWR/DPR;
- the WWSF and the WAF (``tracer``): login, /authorize, /token and
  /introspect, as a one-line summary (``POST /token 200 (access token for
  user1)``) — never a token, a code or a password.

Cost: a hook is one method call that appends a tuple (time, kind, transport,
addresses, the bytes object already in hand) to a bounded ring; nothing is
formatted or copied then.  A loop timer writes the ring to
``<data_dir>/trace/<element>-<pid>.trc`` every ``flush_interval`` in one
``write`` (:mod:`.record` has the format), masking credentials first
(:mod:`.redact`).  When more arrives between two writes than the ring holds,
the oldest records are lost, never the element's time.  Files are rotated at
``file_bytes`` and the directory is kept under ``max_bytes``.

Elements of one process (``webims up``) record a message between them once,
at its sender: a recorder skips what it receives from an address another
recorder of the process has sent from.  Elements in separate processes
record it at both ends; ``webims trace`` draws it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final, Protocol

from ..config import Settings, TraceSettings
from .record import DIAMETER, HTTP, IN, OUT, SIP, SUFFIX, Address, Rec, file_header, pack_records
from .record import trace_files as _trace_files
from .redact import redact_diameter, redact_sip

__all__ = ["TraceRecorder", "flush_directory", "last_ladder", "open_recorder", "trace_dir"]

log = logging.getLogger(__name__)

SIP_IN: Final = SIP << 1 | IN
SIP_OUT: Final = SIP << 1 | OUT
DIAMETER_IN: Final = DIAMETER << 1 | IN
DIAMETER_OUT: Final = DIAMETER << 1 | OUT
HTTP_IN: Final = HTTP << 1 | IN

#: Application-Id 0: the base protocol (CER/CEA, DWR/DWA, DPR/DPA), not traced.
_BASE_APPLICATION: Final = b"\0\0\0\0"
_NOWHERE: Final = ("0.0.0.0", 0)


class _Flow(Protocol):
    """What a SIP hook needs of :class:`~webims.transport.flow.Flow`."""

    @property
    def transport(self) -> str: ...
    @property
    def local(self) -> Address: ...
    @property
    def remote(self) -> Address: ...


class _WireMessage(Protocol):
    _wire: bytes | None

    def serialize(self) -> bytes: ...


class _HttpRequest(Protocol):
    """What the HTTP hook needs of a Starlette request."""

    @property
    def method(self) -> str: ...
    @property
    def scope(self) -> Mapping[str, Any]: ...


def trace_dir(settings: Settings) -> Path:
    return settings.data_dir / "trace"


def flush_directory(directory: Path) -> None:
    """Write what every recorder of this process holds for ``directory`` (a reader
    in the same process, such as the WWSF's /trace page, then sees it all)."""
    for recorder in list(_PROCESS_RECORDERS.get(directory, ())):
        recorder.flush()


def open_recorder(settings: Settings, element: str) -> TraceRecorder | None:
    """The recorder of ``element`` (its title: ``eP-CSCF``) in this deployment,
    or None when ``[trace] enabled`` is false."""
    config = settings.trace
    if not config.enabled:
        return None
    return TraceRecorder(trace_dir(settings), element, config)


def last_ladder(settings: Settings, impu: str | None = None, *, wait: float = 0.0) -> str:
    """The last registration recorded in ``settings``' deployment (of ``impu``
    only, when given) as a plain-text ladder; empty when there is none.

    The elements write every ``[trace] flush_interval``: a caller that has
    just seen the 200 (OK) can ``wait`` up to that many seconds for the flow
    to be on disk whole (its answer to the WIC recorded)."""
    from .ladder import NO_FINAL, load_flows, render_plain  # noqa: PLC0415 (not on the hot path)

    deadline = time.monotonic() + wait
    while True:
        flows = load_flows(trace_dir(settings), 1, [impu] if impu else None)
        if (flows and flows[-1].outcome != NO_FINAL) or time.monotonic() >= deadline:
            return render_plain(flows[-1]) if flows else ""
        time.sleep(0.05)


#: Per trace directory, the addresses this process's recorders have sent from.
#: A message between two elements of one process (``webims up``) is then
#: recorded once, by its sender: the receiver skips what comes from there.
_PROCESS_SENDERS: dict[Path, set[Address]] = {}
#: Per trace directory, the recorders of this process (``flush_directory``).
_PROCESS_RECORDERS: dict[Path, weakref.WeakSet[TraceRecorder]] = {}
#: Beyond this many sending addresses, both ends record (the set stays small).
_MAX_SENDERS: Final = 4096


def _slug(element: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", element.lower()).strip("-") or "element"


class TraceRecorder:
    """One element's trace: a bounded ring in memory, written to disk in batches."""

    def __init__(
        self,
        directory: Path,
        element: str,
        config: TraceSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        senders: set[Address] | None = None,
    ) -> None:
        """``senders``: the sending addresses shared with the other recorders of
        this process (default: those writing to ``directory``)."""
        config = config or TraceSettings()
        self.element = element
        self.directory = directory
        self.config = config
        self.path = directory / f"{_slug(element)}-{os.getpid()}{SUFFIX}"
        self._now = clock
        self._senders = (
            senders if senders is not None else _PROCESS_SENDERS.setdefault(directory, set())
        )
        _PROCESS_RECORDERS.setdefault(directory, weakref.WeakSet()).add(self)
        self._ring_size = config.ring
        self._pending: deque[Rec] = deque(maxlen=config.ring)
        self._timer: asyncio.TimerHandle | None = None
        self._file: IO[bytes] | None = None
        self._size = 0
        self._closed = False
        self._failed = False
        #: Records written, and batches that filled the ring (older records lost).
        self.written = 0
        self.overflows = 0

    # -- hooks (hot path: one tuple, one append) -----------------------------------
    def sip_in(self, msg: _WireMessage, flow: _Flow) -> None:
        """A SIP message received on ``flow`` (its bytes as they arrived)."""
        remote = flow.remote
        if remote in self._senders:
            return  # sent by an element of this process, which recorded it
        data = msg._wire  # the bytes the parser was given (before Via stamping)
        if data is None:
            data = msg.serialize()
        self._add((self._now(), SIP_IN, flow.transport, remote, flow.local, data))

    def sip_out(self, data: bytes, flow: _Flow) -> None:
        """A SIP message sent on ``flow``."""
        local = flow.local
        if local not in self._senders:
            self._sent_from(local)
        self._add((self._now(), SIP_OUT, flow.transport, local, flow.remote, data))

    def diameter_in(self, data: bytes, addresses: tuple[Address, Address] | None) -> None:
        """A Diameter message received on a connection (``addresses`` = local, remote)."""
        if addresses is None or data[8:12] == _BASE_APPLICATION:
            return
        if addresses[1] not in self._senders:
            self._add((self._now(), DIAMETER_IN, "tcp", addresses[1], addresses[0], data))

    def diameter_out(self, data: bytes, addresses: tuple[Address, Address] | None) -> None:
        """A Diameter message sent on a connection (``addresses`` = local, remote)."""
        if addresses is None or data[8:12] == _BASE_APPLICATION:
            return
        if addresses[0] not in self._senders:
            self._sent_from(addresses[0])
        self._add((self._now(), DIAMETER_OUT, "tcp", addresses[0], addresses[1], data))

    def http(
        self,
        request: _HttpRequest,
        status: int,
        web_user: str | None = None,
        impus: Sequence[str] = (),
    ) -> None:
        """An HTTP exchange of the WWSF/WAF: what was asked, the status, and for
        whom — a summary, never a token, code or password."""
        scope = request.scope
        path = str(scope.get("path", ""))
        client = scope.get("client") or _NOWHERE
        server = scope.get("server") or _NOWHERE
        summary = http_summary(request.method, path, status, web_user)
        payload = {
            "method": request.method,
            "path": path,
            "status": status,
            "user": web_user,
            "impus": list(impus),
            "summary": summary,
        }
        self._add(
            (
                self._now(),
                HTTP_IN,
                str(scope.get("scheme", "http")),
                (str(client[0]), int(client[1] or 0)),
                (str(server[0]), int(server[1] or 0)),
                json.dumps(payload, separators=(",", ":")).encode(),
            )
        )

    def _sent_from(self, local: Address) -> None:
        if len(self._senders) < _MAX_SENDERS:
            self._senders.add(local)

    def _add(self, rec: Rec) -> None:
        self._pending.append(rec)
        if self._timer is None:
            self._arm()

    # -- writing --------------------------------------------------------------------
    def _arm(self) -> None:
        if self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test, a tool): written by flush()/close()
            return
        self._timer = loop.call_later(self.config.flush_interval, self.flush)

    def flush(self) -> None:
        """Write what is held (one write); called by the timer and by close()."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch, self._pending = self._pending, deque(maxlen=self._ring_size)
        if len(batch) >= self._ring_size:
            self.overflows += 1
            if self.overflows == 1:
                log.warning(
                    "%s: trace ring full (%d records); older records were dropped",
                    self.element,
                    self._ring_size,
                )
        chunk = b"".join(pack_records(_masked(batch)))
        self._write(chunk)
        self.written += len(batch)

    def close(self) -> None:
        """Write what is held and close the file; later records are ignored."""
        self.flush()
        self._closed = True
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _write(self, chunk: bytes) -> None:
        if self._failed:
            return
        try:
            if self._file is None or self._size + len(chunk) > self.config.file_bytes:
                self._open()
            assert self._file is not None
            self._file.write(chunk)
            self._file.flush()
            self._size += len(chunk)
        except OSError as err:
            self._failed = True
            log.warning("%s: trace not written to %s: %s", self.element, self.path, err)

    def _open(self) -> None:
        """Open the trace file, rotating the current one if it has grown."""
        if self._file is not None:
            self._file.close()
            self._file = None
            os.replace(self.path, self.path.with_suffix(".1" + SUFFIX))
        else:
            # Identities, addresses and user profiles: for the owner's eyes only.
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._prune()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "ab", buffering=0)
        header = file_header(self.element, os.getpid())
        self._file.write(header)
        self._size = len(header)

    def _prune(self) -> None:
        """Delete the oldest trace files until the directory is under max_bytes."""
        files = _trace_files(self.directory)
        sizes = []
        for path in files:
            try:
                sizes.append(path.stat().st_size)
            except OSError:
                sizes.append(0)
        total = sum(sizes) + self.config.file_bytes
        for path, size in zip(files, sizes, strict=True):
            if total <= self.config.max_bytes:
                break
            if path == self.path:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size


def _masked(batch: deque[Rec]) -> Iterator[Rec]:
    """The records with their credentials masked (:mod:`.redact`)."""
    for rec in batch:
        proto = rec[1] >> 1
        if proto == SIP:
            data = redact_sip(rec[5])
            yield rec if data is rec[5] else (*rec[:5], data)
        elif proto == DIAMETER:
            data = redact_diameter(rec[5])
            yield rec if data is rec[5] else (*rec[:5], data)
        else:
            yield rec


_HTTP_WHAT: Final = {
    ("/token", True): "access token",
    ("/token", False): "token refused",
    ("/authorize", True): "authorisation code",
    ("/authorize", False): "authorisation refused",
    ("/login", True): "logged in",
    ("/login", False): "login refused",
    ("/introspect", True): "token introspection",
    ("/introspect", False): "introspection refused",
}


def http_summary(method: str, path: str, status: int, web_user: str | None) -> str:
    """``POST /token 200 (access token for user1)``."""
    what = _HTTP_WHAT.get((path, status < 400))
    if what is None:
        return f"{method} {path} {status}"
    who = f" for {web_user}" if web_user else ""
    return f"{method} {path} {status} ({what}{who})"
