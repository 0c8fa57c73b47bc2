"""A SIP-over-WSS peer for watching what the browser WIC sends on the wire.

It stands where the eP-CSCF will stand (RFC 7118: TLS, subprotocol ``sip``,
one SIP message per text frame), parses every frame with the project's own
SIP parser, keeps the requests, and answers a REGISTER with 200 OK (the
Contact echoed, as a registrar does), or the first one with 401
``invalid_token`` when told to, and anything else with 405.  It checks
nothing itself: the tests read :attr:`SipPeer.requests`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve

from webims.sip import Request, parse_message
from webims.sip.checks import make_response, new_tag


@dataclass
class SipPeer:
    cert: Path
    key: Path
    #: Subprotocol of each WebSocket accepted; frames that were not text.
    subprotocols: list[str | None] = field(default_factory=list)
    binary_frames: int = 0
    requests: list[Request] = field(default_factory=list)
    server: Server | None = None
    #: Answer the first REGISTER with 401 and an RFC 8898 ``invalid_token``
    #: challenge, as an eP-CSCF does for a token it refuses.
    refuse_first_token: bool = False

    async def start(self) -> int:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        self.server = await serve(
            self._connection,
            "127.0.0.1",
            0,
            ssl=ctx,
            subprotocols=["sip"],  # type: ignore[list-item]
        )
        port: int = next(iter(self.server.sockets)).getsockname()[1]
        return port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _connection(self, ws: ServerConnection) -> None:
        self.subprotocols.append(ws.subprotocol)
        async for frame in ws:
            if not isinstance(frame, str):
                self.binary_frames += 1
                continue
            message = parse_message(frame.encode())
            if not isinstance(message, Request):
                continue
            self.requests.append(message)
            if message.method == "REGISTER" and self.refuse_first_token:
                self.refuse_first_token = False
                challenge = 'Bearer realm="home1.net", error="invalid_token"'
                answer = make_response(
                    message, 401, to_tag=new_tag(), extra=[("WWW-Authenticate", challenge)]
                )
            elif message.method == "REGISTER":
                contacts = [("Contact", v) for v in message.headers.get_all("Contact")]
                answer = make_response(message, 200, to_tag=new_tag(), extra=contacts)
            else:
                answer = make_response(
                    message, 405, to_tag=new_tag(), extra=[("Allow", "REGISTER")]
                )
            await ws.send(answer.serialize().decode())
