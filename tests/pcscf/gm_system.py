"""A running ``webims up`` (its own process, data directory and free ports) and a
plain SIP phone on raw UDP or TCP sockets, for the tests of SIP UEs on Gm.

:class:`Phone` builds REGISTER, MESSAGE and OPTIONS itself and computes the RFC 2617
Digest response (MD5, ``qop=auth``) with :mod:`hashlib`, so that nothing of the
project's own SIP stack is on the phone's side of the wire except the parser used to
read what comes back.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.system import up_config
from tests.wic.conftest import running
from webims.sip import Request, Response, make_response, new_tag, parse_message
from webims.sip.auth import parse_challenge
from webims.sip.framing import KeepAlive, StreamFramer

DOMAIN = "home1.net"
STEP = 10.0  # seconds any one exchange may take

_n = itertools.count(1)


@dataclass(frozen=True)
class User:
    name: str
    impi: str
    impu: str
    password: str


USER1 = User("user1", "user1_private@home1.net", "sip:user1_public1@home1.net", "user1-secret")
USER2 = User("user2", "user2_private@home1.net", "sip:user2_public1@home1.net", "user2-secret")


@dataclass(frozen=True)
class CoreSystem:
    """``webims up`` with the demo subscribers: where its elements listen."""

    data_dir: Path
    ports: dict[str, int]

    @property
    def pcscf(self) -> int:
        return self.ports["pcscf"]

    @property
    def icscf(self) -> int:
        return self.ports["icscf"]

    def subscriber(self, name: str) -> dict[str, Any]:
        """GET /subscribers/<name> of the HSS's provisioning API."""
        key = (self.data_dir / "hss-api-key").read_text().strip()
        got = httpx.get(
            f"http://127.0.0.1:{self.ports['api']}/subscribers/{name}",
            headers={"X-API-Key": key},
            timeout=STEP,
        )
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body

    def state(self, user: User) -> str:
        """The HSS's registration state of the user's IMPU."""
        publics = self.subscriber(user.name)["publics"]
        return next(str(p["state"]) for p in publics if p["impu"] == user.impu)

    def wait_state(self, user: User, wanted: str, timeout: float = STEP) -> str:
        deadline = time.monotonic() + timeout
        while (state := self.state(user)) != wanted and time.monotonic() < deadline:
            time.sleep(0.05)
        return state


@contextlib.contextmanager
def core_system(data: Path, attempts: int = 3, *, pcscf: str = "") -> Iterator[CoreSystem]:
    """``webims up`` on free ports in ``data`` until the block ends (started again on
    other ports when one was taken meanwhile by another process of the machine);
    ``pcscf``: lines of its ``[pcscf]`` section."""
    for attempt in range(1, attempts + 1):
        made = up_config(data, extra='[sip]\nhost = "127.0.0.1"\n', pcscf=pcscf)
        ports = made.ports
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(running("up", "--config", str(made.path)))
        except AssertionError as err:
            if "address already in use" in str(err) and attempt < attempts:
                continue
            raise
        with stack:
            yield CoreSystem(data, ports)
        return


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def digest_response(
    user: User, *, realm: str, nonce: str, uri: str, method: str, nc: str, cnonce: str
) -> str:
    """RFC 2617 §3.2.2.1 with ``qop=auth``."""
    ha1 = _md5(f"{user.impi}:{realm}:{user.password}")
    ha2 = _md5(f"{method}:{uri}")
    return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")


def answer_challenge(
    user: User, challenge: Response, nc: int = 1, *, password: str | None = None
) -> str:
    """The REGISTER's Authorization answering the 401's Digest challenge (the
    first one, when the 401 also offers other schemes), with ``password``
    instead of the user's when given."""
    values = challenge.headers.get_all("WWW-Authenticate")
    chal = parse_challenge(next((v for v in values if v.lower().startswith("digest")), ""))
    realm, nonce = chal.get("realm") or "", chal.get("nonce") or ""
    uri, cnonce, count = f"sip:{DOMAIN}", secrets.token_hex(8), f"{nc:08x}"
    if password is not None:
        user = User(user.name, user.impi, user.impu, password)
    response = digest_response(
        user, realm=realm, nonce=nonce, uri=uri, method="REGISTER", nc=count, cnonce=cnonce
    )
    return (
        f'Digest username="{user.impi}", realm="{realm}", nonce="{nonce}", '
        f'uri="{uri}", response="{response}", algorithm=MD5, qop=auth, nc={count}, '
        f'cnonce="{cnonce}"'
    )


@dataclass
class Phone:
    """An RFC 3261 UA with one socket towards the eP-CSCF's SIP port."""

    pcscf_port: int
    user: User
    transport: str = "udp"
    sock: socket.socket = field(init=False)
    framer: StreamFramer = field(default_factory=StreamFramer, init=False)
    #: Requests the network sent the phone (each answered 200).
    received: list[Request] = field(default_factory=list, init=False)
    call_id: str = field(default_factory=lambda: f"{secrets.token_hex(8)}@phone", init=False)
    cseq: int = field(default=0, init=False)
    tag: str = field(default_factory=new_tag, init=False)

    def __post_init__(self) -> None:
        if self.transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        else:
            self.sock = socket.create_connection(("127.0.0.1", self.pcscf_port), STEP)
        self.sock.settimeout(STEP)

    def close(self) -> None:
        self.sock.close()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def contact(self) -> str:
        return f"sip:{self.user.name}@127.0.0.1:{self.port};transport={self.transport}"

    # -- the wire -----------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.transport == "udp":
            self.sock.sendto(data, ("127.0.0.1", self.pcscf_port))
        else:
            self.sock.sendall(data)

    def receive(self) -> Request | Response:
        if self.transport == "udp":
            return parse_message(self.sock.recv(65535))
        while True:
            raw = self.framer.next_message()
            if raw is not None and not isinstance(raw, KeepAlive):
                return parse_message(raw)
            if raw is None:
                data = self.sock.recv(65535)
                if not data:
                    raise ConnectionError("the eP-CSCF closed the connection")
                self.framer.feed(data)

    def next_request(self) -> Request:
        """The next request from the network, answered 200."""
        while True:
            msg = self.receive()
            if isinstance(msg, Request):
                self._answer(msg)
                return msg

    def _answer(self, req: Request) -> None:
        """200, as a UA answers: its tag ``callee`` (the one ``bye_as_callee`` sends
        from), and Record-Route copied into the answer to an INVITE (RFC 3261 §12.1.1)."""
        self.received.append(req)
        if req.method == "ACK":
            return
        copied = req.headers.get_all("Record-Route") if req.method == "INVITE" else []
        extra = [("Record-Route", value) for value in copied]
        self.send(make_response(req, 200, to_tag="callee", extra=extra).serialize())

    def final_response(self) -> Response:
        """The next final response (requests meanwhile are answered 200)."""
        while True:
            msg = self.receive()
            if isinstance(msg, Request):
                self._answer(msg)
            elif msg.status >= 200:
                return msg

    def exchange(self, request: bytes) -> Response:
        """Send ``request``; its final response."""
        self.send(request)
        return self.final_response()

    # -- requests -----------------------------------------------------------------------
    def via(self) -> str:
        return f"SIP/2.0/{self.transport.upper()} 127.0.0.1:{self.port};branch=z9hG4bK-ph{next(_n)}"

    def register_request(
        self, *, authorization: str | None = None, expires: int = 600, extra: str = ""
    ) -> bytes:
        self.cseq += 1
        auth = f"Authorization: {authorization}\r\n" if authorization is not None else ""
        return (
            f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
            f"Via: {self.via()}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{self.user.impu}>;tag={self.tag}\r\n"
            f"To: <{self.user.impu}>\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {self.cseq} REGISTER\r\n"
            f"Contact: <{self.contact}>;expires={expires}\r\n"
            f"{auth}{extra}"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    def initial_credentials(self) -> str:
        """TS 24.229 5.1.1.2.1: the private identity, empty nonce and response."""
        return (
            f'Digest username="{self.user.impi}", realm="{DOMAIN}", uri="sip:{DOMAIN}", '
            'nonce="", response=""'
        )

    def answer_challenge(self, challenge: Response, nc: int = 1) -> str:
        """The Authorization answering the 401's Digest challenge."""
        return answer_challenge(self.user, challenge, nc)

    def register(self, expires: int = 600) -> tuple[Response, Response]:
        """The registration of TS 24.229 5.1.1.2: the 401, then the final answer."""
        challenge = self.exchange(
            self.register_request(authorization=self.initial_credentials(), expires=expires)
        )
        assert challenge.status == 401, f"{challenge.status} {challenge.reason}"
        final = self.exchange(
            self.register_request(authorization=self.answer_challenge(challenge), expires=expires)
        )
        return challenge, final

    def message(self, to: str, *, from_: str | None = None, extra: str = "") -> bytes:
        body = b"hello from a SIP phone"
        return (
            f"MESSAGE {to} SIP/2.0\r\n"
            f"Via: {self.via()}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <{from_ or self.user.impu}>;tag={new_tag()}\r\n"
            f"To: <{to}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}@phone\r\n"
            "CSeq: 1 MESSAGE\r\n"
            f"{extra}"
            "Content-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body


def invite(phone: Phone, to: str) -> bytes:
    """An initial INVITE of ``phone`` for ``to`` (no offer: it comes in the 200)."""
    return (
        f"INVITE {to} SIP/2.0\r\n"
        f"Via: {phone.via()}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <{phone.user.impu}>;tag={new_tag()}\r\n"
        f"To: <{to}>\r\n"
        f"Call-ID: {secrets.token_hex(8)}@phone\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <{phone.contact}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def bye_as_callee(phone: Phone, invite: Request) -> bytes:
    """The BYE the UAS of ``invite`` sends: Request-URI the caller's Contact, Route the
    INVITE's Record-Route in order (RFC 3261 §12.1.1), From/To swapped."""
    routes = "".join(f"Route: {rr}\r\n" for rr in invite.headers.get_all("Record-Route"))
    return (
        f"BYE {invite.contacts[0].uri} SIP/2.0\r\n"
        f"Via: {phone.via()}\r\n"
        "Max-Forwards: 70\r\n"
        f"{routes}"
        f"From: {invite.headers.get('To')};tag=callee\r\n"
        f"To: {invite.headers.get('From')}\r\n"
        f"Call-ID: {invite.call_id}\r\n"
        "CSeq: 1 BYE\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def options_to(impu: str, port: int) -> bytes:
    """An OPTIONS for ``impu`` sent to the I-CSCF from a UDP socket on ``port``."""
    n = next(_n)
    return (
        f"OPTIONS {impu} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-opt{n}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{DOMAIN}>;tag=o{n}\r\n"
        f"To: <{impu}>\r\n"
        f"Call-ID: options-{n}-{secrets.token_hex(4)}@probe\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def send_options(icscf_port: int, impu: str) -> Response:
    """OPTIONS for ``impu`` to the I-CSCF over UDP; its final response."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(STEP)
        s.sendto(options_to(impu, s.getsockname()[1]), ("127.0.0.1", icscf_port))
        while True:
            msg = parse_message(s.recv(65535))
            if isinstance(msg, Response) and msg.status >= 200:
                return msg
