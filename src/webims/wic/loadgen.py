"""The WIC of ``webims bench register``: registrations over new WSS connections
at the least CPU per registration.

The bench client shares the machine with the server, so each of its
milliseconds is one the server does not get.  :class:`~webims.wic.client.WicClient`
is a general WIC (a reader task, a transaction table, ``websockets``'
connection object); this module does only what one registration on a new
connection needs, on the wire exactly as a WIC does it (SPEC §8 6–9):

* a new TCP connection, then a full TLS handshake that verifies the server's
  certificate with the given context (shared by every connection: building
  one per connection is costly), driven here through memory BIOs on a plain
  asyncio transport, without the event loop's TLS layer;
* the WebSocket opening handshake offering ``sip`` (RFC 6455 §4.1, RFC 7118
  §4): the 101 must carry the expected ``Sec-WebSocket-Accept``, no
  extension (none was offered) and the subprotocol ``sip``, else the
  connection is failed (:class:`~webims.wic.client.HandshakeRefused`);
* the REGISTER of :func:`~webims.wic.registration.build_register`, built once
  per client as a template (:class:`RegisterTemplate`) of which only the Via
  branch and the CSeq number change, in one masked text frame (RFC 6455 §5.3:
  every client frame is masked);
* its final response, matched by Via branch and CSeq (RFC 3261 §17.1.3);
  provisional responses are skipped, a request from the network is answered
  by :func:`~webims.wic.registration.answer_request`, a Ping gets its Pong,
  no final response within the timeout is a
  :class:`~webims.wic.client.TransactionTimeout`;
* then, in the background, a Close with status 1000, the server's Close
  awaited (at most ``close_timeout``), TLS close_notify and the TCP close.

A client (:class:`LoadClient`) keeps its :class:`~webims.wic.registration.UaInstance`
(``+sip.instance``, ``reg-id``, Call-ID, From tag, CSeq) and token from one
connection to the next, so each REGISTER replaces its previous binding
(RFC 5626 §6).  With ``tls_resume`` a client offers the session ticket of
its previous connection, as a browser does; without it (the default) every
connection is a full handshake.

Cost, measured with ``bench/bench_register.py --separate`` on the 2-core
development machine (shared, so ±10%): about 1.05–1.15 ms of the bench
process's CPU per registration, where ``WicClient`` took 1.6–1.75 ms.  The
same exchange over ``ws://`` costs 0.25 ms (TCP on the loopback, this
module's Python, the event loop, the SIP parser): TLS is the rest, mostly
OpenSSL 3.0's client handshake (a blocking loop of bare TLS handshakes costs
0.65–0.75 ms each here, most of it decoding and checking the server's
certificate), then the server's two session tickets and the records.
Resuming sessions does not make it cheaper: the ``ssl`` module copies a
session by re-encoding it, peer certificate included, both when it is read
and when it is offered (about 0.18 ms each).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
import struct
from dataclasses import dataclass, replace
from typing import cast
from urllib.parse import urlsplit

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the pure-Python fallback of websockets
    from websockets.utils import apply_mask

from websockets.utils import accept_key

from ..sip import Request, Response, SipError, parse_message
from .client import HandshakeRefused, TransactionTimeout, WicError
from .registration import DEFAULT_EXPIRES, UaInstance, answer_request, build_register

__all__ = ["LoadClient", "RegisterTemplate", "WsTarget"]

_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: A Close frame's payload: status 1000, normal closure (RFC 6455 §7.4.1).
_CLOSE_NORMAL = struct.pack("!H", 1000)
#: Largest opening handshake response, and largest message, read.
_MAX_HEAD = 16 * 1024
_MAX_MESSAGE = 1 << 20
_READ = 64 * 1024

_TLS, _UPGRADE, _WAITING, _CLOSING, _CLOSED = range(5)


@dataclass(frozen=True)
class WsTarget:
    """Where the WICs connect: a ``ws://`` or ``wss://`` URL taken apart once."""

    url: str
    host: str
    port: int
    secure: bool
    #: The opening handshake request up to its Sec-WebSocket-Key value.
    request_head: bytes

    @classmethod
    def parse(cls, url: str) -> WsTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a ws:// or wss:// URL: {url}")
        secure = parts.scheme == "wss"
        port = parts.port or (443 if secure else 80)
        host = parts.hostname
        authority = f"[{host}]" if ":" in host else host
        if port != (443 if secure else 80):
            authority = f"{authority}:{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = (
            f"GET {path} HTTP/1.1\r\n"
            f"Host: {authority}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: sip\r\n"
            "Sec-WebSocket-Key: "
        ).encode("ascii")
        return cls(url, host, port, secure, head)


class RegisterTemplate:
    """The REGISTER of :func:`build_register` for one WIC as bytes, cut around
    the two values that change from one registration to the next: the Via
    branch and the CSeq number."""

    def __init__(self, ua: UaInstance, token: str, expires: int, domain: str | None = None) -> None:
        # Built from a copy so that the WIC's own CSeq is not consumed.
        request = build_register(replace(ua), token, expires=expires, domain=domain)
        wire = request.serialize()
        branch = (request.top_via.branch or "").encode()
        cseq = f"\r\nCSeq: {request.cseq.seq} REGISTER\r\n".encode()
        if not branch or wire.count(branch) != 1 or wire.count(cseq) != 1:
            raise ValueError("the REGISTER's branch or CSeq cannot be templated")
        head, rest = wire.split(branch)
        middle, tail = rest.split(cseq)
        self._head = head
        self._middle = middle + b"\r\nCSeq: "
        self._tail = b" REGISTER\r\n" + tail

    def render(self, branch: str, cseq: int) -> bytes:
        return self._head + branch.encode() + self._middle + str(cseq).encode() + self._tail


def _client_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final client frame, masked (RFC 6455 §5.2–5.3) with ``mask``, four
    bytes from a strong source of entropy, else with fresh ones."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 0x10000:
        head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    if mask is None:
        mask = os.urandom(4)
    return head + mask + apply_mask(payload, mask)


class LoadClient:
    """One WIC that registers over a new connection each time it is asked."""

    def __init__(
        self,
        target: WsTarget,
        impu: str,
        token: str,
        *,
        ssl_context: ssl.SSLContext | None,
        expires: int = DEFAULT_EXPIRES,
        timeout: float = 10.0,
        close_timeout: float = 5.0,
        tls_resume: bool = False,
        ua: UaInstance | None = None,
    ) -> None:
        if target.secure and ssl_context is None:
            raise ValueError(f"{target.url}: a TLS context is needed")
        self.target = target
        self.ua = ua or UaInstance(impu)
        self.expires = expires
        self.timeout = timeout
        self.close_timeout = close_timeout
        self.ssl_context = ssl_context if target.secure else None
        self.tls_resume = tls_resume
        #: The TLS session of the last connection, offered on the next one (``tls_resume``).
        self.session: ssl.SSLSession | None = None
        #: Connections whose handshake resumed a session.
        self.resumed = 0
        #: Connections not yet closed (their closing handshake runs in the background).
        self.open: set[_Registration] = set()
        self._template = RegisterTemplate(self.ua, token, expires)

    async def register(self) -> Response:
        """One registration on a new connection: its final response (any
        status).  Raises :class:`WicError` when there is none: the connection
        or a handshake failed, or no final response came in time."""
        loop = asyncio.get_running_loop()
        reg = _Registration(self, loop)
        try:
            async with asyncio.timeout(self.timeout):
                await loop.create_connection(lambda: reg, self.target.host, self.target.port)
        except (OSError, TimeoutError) as err:
            reg.discard()
            raise WicError(
                f"cannot connect to {self.target.url}: {err or type(err).__name__}"
            ) from None
        return await reg.result

    async def drain(self, timeout: float) -> None:
        """Wait for the background closes to end (at most ``timeout`` s)."""
        waiting = [r.closed for r in self.open if not r.closed.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)

    def next_register(self, random: bytes) -> tuple[str, int, bytes]:
        """The branch (from 8 ``random`` bytes), CSeq number and bytes of the
        WIC's next REGISTER."""
        self.ua.cseq += 1
        branch = "z9hG4bK" + random.hex()
        return branch, self.ua.cseq, self._template.render(branch, self.ua.cseq)


class _Registration(asyncio.Protocol):
    """One connection of a :class:`LoadClient`: TLS, the WebSocket upgrade, the
    REGISTER transaction, then the closing handshake."""

    def __init__(self, client: LoadClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.result: asyncio.Future[Response] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.state = _TLS if client.ssl_context is not None else _UPGRADE
        self.deadline = loop.time() + client.timeout
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.tls: ssl.SSLObject | None = None
        self.tls_in: ssl.MemoryBIO | None = None
        self.tls_out: ssl.MemoryBIO | None = None
        #: One read of the system's random source for the connection: its
        #: Sec-WebSocket-Key, branch, and the masks of the REGISTER and the Close.
        self.random = os.urandom(32)
        self.key = b""
        self.rx = b""
        self.fragments: list[bytes] = []
        self.branch = ""
        self.cseq = 0
        client.open.add(self)

    # -- the connection ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses.)
        self.transport = cast(asyncio.Transport, transport)
        self.timer = self.loop.call_at(self.deadline, self._timed_out)
        context = self.client.ssl_context
        if context is None:
            self._upgrade()
            return
        self.tls_in, self.tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        session = self.client.session if self.client.tls_resume else None
        self.tls = context.wrap_bio(
            self.tls_in, self.tls_out, server_hostname=self.client.target.host, session=session
        )
        self._handshake()

    def data_received(self, data: bytes) -> None:
        if self.state == _CLOSED:
            return  # the server's close_notify or FIN, after ours
        tls = self.tls
        if tls is None:
            self._received(data)
            return
        assert self.tls_in is not None
        self.tls_in.write(data)
        if self.state == _TLS and not self._handshake():
            return
        chunks = []
        ended = False
        try:
            while chunk := tls.read(_READ):
                chunks.append(chunk)
            ended = True  # b"": the server's close_notify came
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            ended = True
        except ssl.SSLError as err:
            self._fail(WicError(f"{self.client.target.url}: TLS: {err}"))
            return
        if chunks and self.state != _CLOSED:
            self._received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if ended:
            self._lost("the server closed the TLS session")
            self._shutdown()

    def eof_received(self) -> bool | None:
        self._lost("the server closed the connection")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost("the connection closed")
        self.state = _CLOSED
        self.transport = None
        self.client.open.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def discard(self) -> None:
        """The connection was never made."""
        if self.timer is not None:
            self.timer.cancel()
        self.state = _CLOSED
        self.client.open.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)

    # -- TLS ----------------------------------------------------------------------

    def _handshake(self) -> bool:
        """Go on with the TLS handshake; True once it is complete."""
        assert self.tls is not None
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except (ssl.SSLError, ssl.CertificateError) as err:
            self._flush()
            self._fail(WicError(f"{self.client.target.url}: TLS: {err}"))
            return False
        self._upgrade()
        return True

    def _flush(self) -> None:
        assert self.tls_out is not None and self.transport is not None
        data = self.tls_out.read()
        if data:
            self.transport.write(data)

    def _send(self, data: bytes) -> None:
        if self.transport is None:
            return
        if self.tls is None:
            self.transport.write(data)
            return
        try:
            self.tls.write(data)
        except ssl.SSLError as err:
            self._fail(WicError(f"{self.client.target.url}: TLS: {err}"))
            return
        self._flush()

    # -- WebSocket ----------------------------------------------------------------

    def _upgrade(self) -> None:
        """Send the opening handshake (RFC 6455 §4.1)."""
        self.state = _UPGRADE
        self.key = base64.b64encode(self.random[:16])
        self._send(self.client.target.request_head + self.key + b"\r\n\r\n")

    def _received(self, data: bytes) -> None:
        rx = self.rx + data if self.rx else data
        if self.state == _UPGRADE:
            end = rx.find(b"\r\n\r\n")
            if end < 0:
                if len(rx) > _MAX_HEAD:
                    self._refuse("the handshake response is too long")
                else:
                    self.rx = rx
                return
            if not self._upgraded(rx[:end]):
                return
            rx = rx[end + 4 :]
        self.rx = self._frames(rx)

    def _upgraded(self, head: bytes) -> bool:
        """Check the server's opening handshake (RFC 6455 §4.1, RFC 7118 §4);
        on success, send the REGISTER."""
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or status[0] != b"HTTP/1.1" or status[1] != b"101":
            self._refuse(f"status {b' '.join(status[1:]).decode('latin-1')}")
            return False
        fields: dict[bytes, list[bytes]] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                self._refuse("malformed header field")
                return False
            fields.setdefault(name.strip().lower(), []).append(value.strip())
        upgrade = fields.get(b"upgrade", [])
        connection = b",".join(fields.get(b"connection", [])).lower()
        accept = accept_key(self.key.decode("ascii")).encode("ascii")
        if [v.lower() for v in upgrade] != [b"websocket"]:
            self._refuse("no Upgrade: websocket")
        elif b"upgrade" not in [t.strip() for t in connection.split(b",")]:
            self._refuse("no Connection: upgrade")
        elif fields.get(b"sec-websocket-accept") != [accept]:
            self._refuse("wrong Sec-WebSocket-Accept")
        elif b"sec-websocket-extensions" in fields:
            self._refuse("an extension that was not offered")
        elif fields.get(b"sec-websocket-protocol") != [b"sip"]:
            # RFC 7118 §4: without "sip" in the 101, the client fails the connection.
            self._send(_client_frame(_OP_CLOSE, struct.pack("!H", 1002)))
            self._refuse("the server did not accept subprotocol sip")
        else:
            self.state = _WAITING
            self.branch, self.cseq, register = self.client.next_register(self.random[16:24])
            self._send(_client_frame(_OP_TEXT, register, self.random[24:28]))
            return self.state == _WAITING
        return False

    def _frames(self, rx: bytes) -> bytes:
        """Handle the complete frames in ``rx``; what is left of it."""
        while len(rx) >= 2 and self.state != _CLOSED:
            b0, b1 = rx[0], rx[1]
            if b1 & 0x80 or b0 & 0x70:
                # A server never masks (§5.1); no extension gives RSV bits a meaning.
                self._protocol_error("a masked frame or reserved bits from the server")
                return b""
            n, start = b1 & 0x7F, 2
            if n == 126:
                if len(rx) < 4:
                    break
                n, start = int.from_bytes(rx[2:4], "big"), 4
            elif n == 127:
                if len(rx) < 10:
                    break
                n, start = int.from_bytes(rx[2:10], "big"), 10
            if n > _MAX_MESSAGE:
                self._protocol_error("a frame too large")
                return b""
            end = start + n
            if len(rx) < end:
                break
            payload, rx = rx[start:end], rx[end:]
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
        return rx

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (_OP_TEXT, _OP_BINARY, _OP_CONT):
            if (opcode == _OP_CONT) != bool(self.fragments):
                self._protocol_error("a continuation out of place")
                return
            if not fin:
                self.fragments.append(payload)
                if sum(map(len, self.fragments)) > _MAX_MESSAGE:
                    self._protocol_error("a message too large")
                return
            if self.fragments:
                self.fragments.append(payload)
                payload = b"".join(self.fragments)
                self.fragments = []
            self._message(payload)
        elif opcode == _OP_CLOSE:
            if self.state == _CLOSING:
                self._shutdown()
                return
            # The server closes first: echo its status (§5.5.1), then close.
            self._send(_client_frame(_OP_CLOSE, payload[:2]))
            self._lost("the server closed the WebSocket")
            self._shutdown()
        elif opcode == _OP_PING:
            self._send(_client_frame(_OP_PONG, payload))
        elif opcode != _OP_PONG:
            self._protocol_error(f"unknown opcode {opcode}")

    # -- SIP ------------------------------------------------------------------------

    def _message(self, data: bytes) -> None:
        try:
            message = parse_message(data)
        except SipError:
            return  # Not SIP: nothing to answer (RFC 3261 §18.3 drops it).
        if isinstance(message, Request):
            if self.state != _WAITING:
                return  # No data frame after our Close (RFC 6455 §5.5.1).
            try:
                answer = answer_request(message)
            except SipError:
                return
            if answer is not None:
                self._send(_client_frame(_OP_TEXT, answer.serialize()))
            return
        if self.state != _WAITING or message.status < 200:
            return
        try:
            cseq = message.cseq
            ours = message.top_via.branch == self.branch
        except SipError:
            return
        if ours and cseq.seq == self.cseq and cseq.method == "REGISTER":
            if self.client.tls_resume and self.tls is not None:
                self.client.resumed += self.tls.session_reused
                session = self.tls.session
                if session is not None and session.has_ticket:
                    self.client.session = session
            self.result.set_result(message)
            self._close()

    # -- the end ----------------------------------------------------------------------

    def _close(self) -> None:
        """Start the closing handshake (RFC 6455 §7.1.2): Close 1000, then wait
        for the server's Close."""
        self.state = _CLOSING
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(self.client.close_timeout, self._shutdown)
        self._send(_client_frame(_OP_CLOSE, _CLOSE_NORMAL, self.random[28:32]))

    def _shutdown(self) -> None:
        """TLS close_notify and TCP close."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.state = _CLOSED
        transport = self.transport
        if transport is None:
            return
        if self.tls is not None:
            # The server's close_notify is not awaited: unwrap() wants to read it.
            with contextlib.suppress(ssl.SSLError):
                self.tls.unwrap()
            self._flush()
        transport.close()

    def _timed_out(self) -> None:
        self.timer = None
        if self.state == _WAITING:
            self._fail(
                TransactionTimeout(
                    f"no final response to REGISTER within {self.client.timeout:g} s"
                )
            )
        else:
            self._fail(WicError(f"cannot connect to {self.client.target.url}: TimeoutError"))

    def _refuse(self, why: str) -> None:
        self._fail(
            HandshakeRefused(f"{self.client.target.url}: WebSocket handshake refused: {why}")
        )

    def _protocol_error(self, why: str) -> None:
        self._send(_client_frame(_OP_CLOSE, struct.pack("!H", 1002)))
        self._fail(WicError(f"{self.client.target.url}: WebSocket protocol error: {why}"))

    def _fail(self, error: WicError) -> None:
        """No final response will come: the registration fails with ``error``
        and the connection is closed at once."""
        if not self.result.done():
            self.result.set_exception(error)
        if self.state == _TLS and self.transport is not None:
            # Nothing to close politely before the handshake is done.
            self.tls = None
        self._shutdown()

    def _lost(self, why: str) -> None:
        if not self.result.done():
            self.result.set_exception(WicError(f"{self.client.target.url}: {why}"))
