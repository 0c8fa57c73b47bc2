"""The Python WIC: SIP over secure WebSocket to the eP-CSCF (TS 24.371
clause 6.1, Annex A.3.2 step 3; RFC 7118).

:class:`WicClient` is one WIC on one WebSocket connection:

* :meth:`WicClient.connect` opens ``wss://`` offering the ``sip`` subprotocol
  and gives up (:class:`HandshakeRefused`) unless the server echoes it (RFC
  7118 §4, SPEC §8 6).  The server is authenticated by TLS (the deployment's
  dev CA or a given CA); the client is not (Annex A step 2).
* Each SIP message goes in one text frame (RFC 7118 §4.2, SPEC §8 7).
* :meth:`WicClient.register` sends the REGISTER of
  :func:`~webims.wic.registration.build_register` with the Bearer token
  (SPEC §8 8–9) and waits for its final response, matched by the branch of
  its Via (RFC 3261 §17.1.3); a reliable transport needs no retransmission,
  only Timer F (64*T1, §17.1.2.2).  A 401 whose challenge says
  ``invalid_token`` is tried once more with a fresh token when the client has
  a way to get one (RFC 8898 §2.1: never the same token again).
* :meth:`WicClient.keep_registered` re-registers at the time of TS 24.229
  5.1.1.4.1 (SPEC §9.1 3); :meth:`WicClient.deregister` sends Expires 0 on
  the same flow (5.1.1.6).
* :meth:`WicClient.subscribe_reg_event` subscribes to the registration
  state (24.229 5.1.1.3); its NOTIFYs are kept.
* Requests from the network are answered by
  :func:`~webims.wic.registration.answer_request` (NOTIFY and OPTIONS 200).

Every message sent or received is passed to ``on_message`` with its
direction, for a ladder of the exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from ..sip import Message, Request, Response, parse_message
from ..sip.errors import SipError
from .regevent import RegNotification, build_reg_subscribe, read_reg_notify
from .registration import (
    DEFAULT_EXPIRES,
    RegisterOutcome,
    UaInstance,
    answer_request,
    build_register,
    read_outcome,
    refresh_delay,
)

__all__ = [
    "SIP_SUBPROTOCOL",
    "TIMER_F",
    "HandshakeRefused",
    "MessageHook",
    "TransactionTimeout",
    "WicClient",
    "WicError",
    "client_ssl_context",
]

log = logging.getLogger(__name__)

SIP_SUBPROTOCOL = Subprotocol("sip")
#: Timer F = 64*T1 (RFC 3261 §17.1.2.2, T1 = 500 ms).
TIMER_F = 32.0

Direction = Literal["out", "in"]
#: ``on_message(direction, message, monotonic time)``.
MessageHook = Callable[[Direction, Message, float], None]
TokenSource = Callable[[], Awaitable[str]]


class WicError(Exception):
    """The WIC could not complete a step; the message says which and why."""


class HandshakeRefused(WicError):
    """The WebSocket upgrade failed or did not agree on ``sip`` (RFC 7118 §4)."""


class TransactionTimeout(WicError):
    """No final response within Timer F."""


def client_ssl_context(ca: Path | None) -> ssl.SSLContext:
    """TLS 1.2+ trusting ``ca`` (the dev CA of a deployment), else the system's store."""
    try:
        ctx = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except (OSError, ssl.SSLError) as err:
        raise WicError(f"cannot read the CA certificate {ca}: {err}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class WicClient:
    """One WIC, registered (or not) over one WebSocket connection."""

    def __init__(
        self,
        url: str,
        impu: str,
        token: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        ua: UaInstance | None = None,
        domain: str | None = None,
        renew_token: TokenSource | None = None,
        on_message: MessageHook | None = None,
        timer_f: float = TIMER_F,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        answer: Callable[[Request], Response | None] = answer_request,
    ) -> None:
        self.url = url
        self.token = token
        self.ua = ua or UaInstance(impu)
        self.domain = domain
        self.ssl_context = ssl_context
        self.renew_token = renew_token
        self.on_message = on_message
        self.timer_f = timer_f
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        #: The answer to a request from the network (None: no answer, as to ACK).
        self.answer = answer
        #: The last final answer to a REGISTER that got a 2xx.
        self.registration: RegisterOutcome | None = None
        #: Requested lifetime of the current registration.
        self.expires = DEFAULT_EXPIRES
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[Response]] = {}
        self._refresher: asyncio.Task[None] | None = None
        #: Call-ID of our reg event subscription, and the NOTIFYs it brought.
        self._reg_subscription: str | None = None
        self.reg_notifications: list[RegNotification] = []
        self._notified = asyncio.Event()
        self._notifications_read = 0

    # -- the connection ---------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._reader is not None and not self._reader.done()

    async def connect(self) -> None:
        """Open the WebSocket with subprotocol ``sip`` (SPEC §8 6)."""
        secure = self.url.startswith("wss:")
        try:
            ws = await connect(
                self.url,
                subprotocols=[SIP_SUBPROTOCOL],
                ssl=(self.ssl_context or client_ssl_context(None)) if secure else None,
                compression=None,
                proxy=None,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                user_agent_header=None,
                max_queue=64,
            )
        except InvalidHandshake as err:
            raise HandshakeRefused(f"{self.url}: WebSocket handshake refused: {err}") from None
        except ssl.SSLError as err:
            raise WicError(f"{self.url}: TLS: {err}") from None
        except (OSError, TimeoutError) as err:
            raise WicError(f"cannot connect to {self.url}: {err or type(err).__name__}") from None
        if ws.subprotocol != SIP_SUBPROTOCOL:
            # RFC 7118 §4: without "sip" in the 101, the client fails the connection.
            await ws.close(1002, "subprotocol sip required")
            raise HandshakeRefused(f"{self.url}: the server did not accept subprotocol sip")
        self._ws = ws
        self._reader = asyncio.create_task(self._read(ws))

    async def close(self) -> None:
        """Stop re-registering and close the connection (no deregistration)."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                data = frame.encode() if isinstance(frame, str) else frame
                try:
                    message = parse_message(data)
                except SipError as err:
                    log.warning("unparsable SIP message from %s: %s", self.url, err)
                    continue
                self._trace("in", message)
                if isinstance(message, Response):
                    self._response(message)
                else:
                    await self._request(message)
        except ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(WicError(f"{self.url}: the connection closed"))
            self._pending.clear()

    def _response(self, response: Response) -> None:
        try:
            branch = response.top_via.branch
        except SipError:
            return
        future = self._pending.get(branch or "")
        if future is not None and not future.done() and response.is_final:
            future.set_result(response)

    async def _request(self, request: Request) -> None:
        if request.method == "NOTIFY" and request.call_id == self._reg_subscription:
            self.reg_notifications.append(read_reg_notify(request))
            self._notified.set()
        answer = self.answer(request)
        if answer is not None:
            await self.send(answer)

    def _trace(self, direction: Direction, message: Message) -> None:
        if self.on_message is not None:
            self.on_message(direction, message, time.monotonic())

    async def send(self, message: Message) -> None:
        """Send ``message`` as it is, outside any transaction of ours (a response,
        an ACK to a 2xx; ``request`` sends within one)."""
        if self._ws is None:
            raise WicError("not connected")
        self._trace("out", message)
        data = message.serialize()
        try:
            # RFC 7118 §4.2: one SIP message per WebSocket message, text when UTF-8.
            await self._ws.send(data.decode("utf-8"))
        except UnicodeDecodeError:
            await self._ws.send(data)
        except ConnectionClosed:
            raise WicError(f"{self.url}: the connection closed") from None

    async def request(self, request: Request) -> Response:
        """Send ``request`` in a client transaction; its final response."""
        branch = request.top_via.branch or ""
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[branch] = future
        try:
            await self.send(request)
            async with asyncio.timeout(self.timer_f):
                return await future
        except TimeoutError:
            raise TransactionTimeout(
                f"no final response to {request.method} within {self.timer_f:g} s"
            ) from None
        finally:
            self._pending.pop(branch, None)

    # -- registration -----------------------------------------------------------

    async def register(self, expires: int | None = None) -> RegisterOutcome:
        """REGISTER (or re-REGISTER) with the Bearer token; the outcome.

        A 401 ``invalid_token`` is retried once with a fresh token if
        ``renew_token`` was given (TS 24.371 7.2.1 and RFC 8898 §2.1).
        """
        if expires is not None:
            self.expires = expires
        outcome = await self._register_once(self.expires)
        if (
            outcome.status == 401
            and self.renew_token is not None
            and any("invalid_token" in c for c in outcome.www_authenticate)
        ):
            self.token = await self.renew_token()
            outcome = await self._register_once(self.expires)
        return outcome

    async def _register_once(self, expires: int) -> RegisterOutcome:
        request = build_register(self.ua, self.token, expires=expires, domain=self.domain)
        response = await self.request(request)
        outcome = read_outcome(response, self.ua, expires)
        if outcome.ok:
            self.registration = outcome if expires else None
        return outcome

    async def deregister(self) -> RegisterOutcome:
        """REGISTER with Expires 0 on the same flow (TS 24.229 5.1.1.6)."""
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        return await self._register_once(0)

    async def subscribe_reg_event(self) -> Response:
        """SUBSCRIBE to the reg event of the default IMPU along the Service-Route
        (TS 24.229 5.1.1.3); the final response.  NOTIFYs land in
        :attr:`reg_notifications` (see :meth:`next_reg_notification`)."""
        if self.registration is None or not self.registration.associated_uris:
            raise WicError("subscribe to the reg event after a successful registration")
        request = build_reg_subscribe(
            self.ua,
            self.token,
            impu=self.registration.associated_uris[0],
            service_route=self.registration.service_route,
        )
        self._reg_subscription = request.call_id
        return await self.request(request)

    async def next_reg_notification(self, timeout: float = 5.0) -> RegNotification:
        """The next reg event NOTIFY not yet returned (the immediate one first)."""
        async with asyncio.timeout(timeout):
            while len(self.reg_notifications) <= self._notifications_read:
                self._notified.clear()
                await self._notified.wait()
        self._notifications_read += 1
        return self.reg_notifications[self._notifications_read - 1]

    def keep_registered(self) -> asyncio.Task[None]:
        """Re-register in time, for as long as the task runs (SPEC §9.1 3)."""
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_loop())
        return self._refresher

    async def _refresh_loop(self) -> None:
        while self.registration is not None and self.registration.expires:
            await asyncio.sleep(refresh_delay(self.registration.expires))
            try:
                outcome = await self.register()
            except WicError as err:
                log.warning("re-registration failed: %s", err)
                self.registration = None
                return
            if not outcome.ok:
                log.warning("re-registration refused: %s %s", outcome.status, outcome.reason)
                self.registration = None
