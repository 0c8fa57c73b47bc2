"""A registration of Figure A.3.2-1 recorded through the recorders' hooks, as
the elements record it, without a network: each element's recorder, a
clock the test moves, real SIP messages (parsed as the transport layer hands
them over) and real Cx messages (encoded by webims.diameter.cx)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webims.config import TraceSettings
from webims.diameter.base import Identity
from webims.diameter.cx import PUBLIC_IDENTITY, USER_NAME, avp, base_avp, cx_answer, cx_request
from webims.diameter.cxdefs import (
    CX_APPLICATION_ID,
    VENDOR_3GPP,
    CxCommand,
    CxResult,
    ExperimentalResult,
)
from webims.observe.trace import TraceRecorder
from webims.sip import parse_message
from webims.transport.flow import Flow

IP = "127.0.0.1"
WIC_WSS = (IP, 50000)
WIC_HTTPS = (IP, 50001)
P_WSS = (IP, 7443)
P_SIP = (IP, 5060)
I_SIP = (IP, 5070)
S_SIP = (IP, 5080)
HSS = (IP, 3868)
I_DIA = (IP, 41001)
S_DIA = (IP, 41002)
WEB = (IP, 8443)

#: What a WIC's token looks like (never to be found in a trace file).
TOKEN = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ1c2VyMSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"

TRACE = TraceSettings(flush_interval=60)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, ms: float = 1.0) -> None:
        self.t += ms / 1000


@dataclass
class FakeHttpRequest:
    """The part of a Starlette request the HTTP hook reads."""

    method: str
    path: str
    client: tuple[str, int] = WIC_HTTPS
    scope: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scope = {"path": self.path, "client": self.client, "server": WEB, "scheme": "https"}


@dataclass
class Deployment:
    """The five recording elements; in one process (``webims up``), or each in
    its own (``separate``: each recorder knows only its own sending addresses)."""

    directory: Path
    clock: Clock = field(default_factory=Clock)
    separate: bool = False

    def __post_init__(self) -> None:
        def rec(name: str) -> TraceRecorder:
            senders: set[tuple[str, int]] | None = set() if self.separate else None
            return TraceRecorder(self.directory, name, TRACE, clock=self.clock, senders=senders)

        self.web = rec("WWSF/WAF")
        self.p = rec("eP-CSCF")
        self.i = rec("I-CSCF")
        self.s = rec("S-CSCF")
        self.hss = rec("HSS")
        self.conn = 0

    def close(self) -> None:
        for r in (self.web, self.p, self.i, self.s, self.hss):
            r.close()

    def flow(self, transport: str, local: tuple[str, int], remote: tuple[str, int]) -> Flow:
        self.conn += 1
        return Flow(transport, local, remote, self.conn)

    def sip(
        self,
        data: bytes,
        sender: TraceRecorder | None,
        receiver: TraceRecorder | None,
        src: tuple[str, int],
        dst: tuple[str, int],
        *,
        transport: str = "tcp",
    ) -> None:
        """``data`` sent by ``sender`` (None: the WIC) and received by ``receiver``."""
        if sender is not None:
            sender.sip_out(data, self.flow(transport, src, dst))
            self.clock.tick(0.2)
        if receiver is not None:
            receiver.sip_in(parse_message(data), self.flow(transport, dst, src))
        self.clock.tick(1)

    def diameter(
        self, data: bytes, sender: TraceRecorder, receiver: TraceRecorder, src: Any, dst: Any
    ) -> None:
        sender.diameter_out(data, (src, dst))
        self.clock.tick(0.2)
        receiver.diameter_in(data, (dst, src))
        self.clock.tick(1)

    def oauth(self, user: str, impu: str) -> None:
        self.web.http(FakeHttpRequest("POST", "/login"), 303, user)
        self.clock.tick(5)
        self.web.http(FakeHttpRequest("GET", "/authorize"), 302, user, [impu])
        self.clock.tick(5)
        self.web.http(FakeHttpRequest("POST", "/token"), 200, user, [impu])
        self.clock.tick(20)

    def register(
        self,
        n: int,
        user: str = "user1",
        *,
        outcome: int = 200,
        web: bool = True,
        introspect: bool = False,
    ) -> str:
        """Steps 1-8 for ``user``; the Call-ID.  Without ``web``: a SIP phone's
        first REGISTER over UDP, no token, challenged after a MAR."""
        impu = f"sip:{user}_public1@home1.net"
        impi = f"{user}_private@home1.net"
        call_id = f"reg{n}-{user}@wic.invalid"
        if web:
            self.oauth(user, impu)
            wic_reg = register(call_id, impu, f"Authorization: Bearer {TOKEN}\r\n", "WSS w.invalid")
            self.sip(wic_reg, None, self.p, WIC_WSS, P_WSS, transport="wss")
            if introspect:  # RFC 7662, from the eP-CSCF's HTTP client
                self.clock.tick(2)
                self.web.http(FakeHttpRequest("POST", "/introspect", (IP, 42000)), 200)
            digest = (
                f'Authorization: Digest username="{impi}", realm="home1.net", '
                'uri="sip:home1.net", nonce="", response="", integrity-protected="auth-done", '
                'authorization-entity="webrtc_authserver1@thirdparty.net"\r\n'
            )
        else:
            ue_reg = register(call_id, impu, "", "UDP 127.0.0.1:5999")
            self.sip(ue_reg, None, self.p, (IP, 5999), P_SIP, transport="udp")
            digest = ""
        self.clock.tick(3)
        p_reg = register(call_id, impu, digest, "TCP 127.0.0.1:5060", via_wic=True)
        self.sip(p_reg, self.p, self.i, P_SIP, I_SIP)
        uar, uaa = cx_pair(CxCommand.USER_AUTHORIZATION, "icscf.home1.net", impi, impu)
        self.diameter(uar, self.i, self.hss, I_DIA, HSS)
        self.diameter(uaa, self.hss, self.i, HSS, I_DIA)
        i_reg = register(call_id, impu, digest, "TCP 127.0.0.1:5070", via_wic=True, via_p=True)
        self.sip(i_reg, self.i, self.s, I_SIP, S_SIP)
        command = CxCommand.SERVER_ASSIGNMENT if web else CxCommand.MULTIMEDIA_AUTH
        sar, saa = cx_pair(command, "scscf.home1.net", impi, impu)
        self.diameter(sar, self.s, self.hss, S_DIA, HSS)
        self.diameter(saa, self.hss, self.s, HSS, S_DIA)
        ok = response(call_id, impu, outcome, 3)
        self.sip(ok, self.s, self.i, S_SIP, I_SIP)
        self.sip(response(call_id, impu, outcome, 2), self.i, self.p, I_SIP, P_SIP)
        last = response(call_id, impu, outcome, 1)
        if web:
            self.sip(last, self.p, None, P_WSS, WIC_WSS, transport="wss")
        else:
            self.sip(last, self.p, None, P_SIP, (IP, 5999), transport="udp")
        # Later traffic of the same user, not part of the flow.
        self.clock.tick(2)
        subscribe = (
            f"SUBSCRIBE {impu} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKs{n}\r\n"
            f"From: <sip:pcscf.home1.net>;tag=s1\r\nTo: <{impu}>\r\nCall-ID: sub{n}\r\n"
            "CSeq: 1 SUBSCRIBE\r\nEvent: reg\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        self.sip(subscribe, self.p, self.s, P_SIP, S_SIP)
        self.clock.tick(50)
        return call_id


_VIAS = {
    "wic": "Via: SIP/2.0/WSS wic.invalid;branch=z9hG4bKwic;received=127.0.0.1;rport=50000\r\n",
    "p": "Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKp\r\n",
    "i": "Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKi\r\n",
}


def register(
    call_id: str,
    impu: str,
    auth: str,
    top_via: str,
    *,
    via_wic: bool = False,
    via_p: bool = False,
) -> bytes:
    vias = f"Via: SIP/2.0/{top_via};branch=z9hG4bK{top_via.split(maxsplit=1)[0].lower()}\r\n"
    if via_p:
        vias += _VIAS["p"]
    if via_wic:
        vias += _VIAS["wic"]
    return (
        f"REGISTER sip:home1.net SIP/2.0\r\n{vias}Max-Forwards: 70\r\n"
        f"From: <{impu}>;tag=w1\r\nTo: <{impu}>\r\nCall-ID: {call_id}\r\nCSeq: 1 REGISTER\r\n"
        'Contact: <sip:a@wic.invalid;transport=ws>;+sip.instance="<urn:uuid:1>";reg-id=1\r\n'
        f"{auth}Expires: 3600\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def response(call_id: str, impu: str, status: int, depth: int) -> bytes:
    """The 200 (or other) answer with ``depth`` Vias left (3 at the S-CSCF)."""
    vias = [_VIAS["i"], _VIAS["p"], _VIAS["wic"]][3 - depth :]
    reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden"}.get(status, "Whatever")
    return (
        f"SIP/2.0 {status} {reason}\r\n{''.join(vias)}"
        f"From: <{impu}>;tag=w1\r\nTo: <{impu}>;tag=s1\r\nCall-ID: {call_id}\r\n"
        "CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def cx_pair(command: CxCommand, origin: str, impi: str, impu: str) -> tuple[bytes, bytes]:
    me = Identity(
        origin_host=origin,
        origin_realm="home1.net",
        applications=((VENDOR_3GPP, CX_APPLICATION_ID),),
    )
    hss = Identity(
        origin_host="hss.home1.net",
        origin_realm="home1.net",
        applications=((VENDOR_3GPP, CX_APPLICATION_ID),),
    )
    req = cx_request(
        me,
        command,
        session_id=f"{origin};1;{abs(hash((impi, command))) % 100000}",
        destination_realm="home1.net",
        destination_host="hss.home1.net",
        avps=[base_avp(USER_NAME, impi), avp(PUBLIC_IDENTITY, impu)],
    )
    req.header.hop_by_hop_identifier = 7
    req.header.end_to_end_identifier = 9
    raw_req = bytes(req.as_bytes())
    if command == CxCommand.USER_AUTHORIZATION:
        result = CxResult.exp(ExperimentalResult.DIAMETER_FIRST_REGISTRATION)
    else:
        result = CxResult.base(2001)
    ans = cx_answer(hss, req, result)
    return raw_req, bytes(ans.as_bytes())
