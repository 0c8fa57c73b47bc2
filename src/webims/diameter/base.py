"""Base-protocol messages a peer exchanges on its own (RFC 6733 §5):
CER/CEA, DWR/DWA, DPR/DPA, plus identifiers and answers.

Built with python-diameter's command classes; the Cx application is
advertised as Vendor-Specific-Application-Id {10415, 16777216} with
Supported-Vendor-Id 10415 (TS 29.229 §6).
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

from diameter.message import Message
from diameter.message.avp.grouped import VendorSpecificApplicationId
from diameter.message.commands.capabilities_exchange import (
    CapabilitiesExchangeAnswer,
    CapabilitiesExchangeRequest,
)
from diameter.message.commands.device_watchdog import (
    DeviceWatchdogAnswer,
    DeviceWatchdogRequest,
)
from diameter.message.commands.disconnect_peer import (
    DisconnectPeerAnswer,
    DisconnectPeerRequest,
)

from .avp import Avp
from .codec import (
    _FLAG_ERROR,
    _FLAG_PROXIABLE,
    AVP_ERROR_MESSAGE,
    AVP_ORIGIN_HOST,
    AVP_ORIGIN_REALM,
    AVP_RESULT_CODE,
    AVP_SESSION_ID,
    AppHeader,
    AppMessage,
)
from .errors import DIAMETER_SUCCESS

__all__ = [
    "CMD_CAPABILITIES_EXCHANGE",
    "CMD_DEVICE_WATCHDOG",
    "CMD_DISCONNECT_PEER",
    "DISCONNECT_CAUSE_BUSY",
    "DISCONNECT_CAUSE_DO_NOT_WANT_TO_TALK_TO_YOU",
    "DISCONNECT_CAUSE_REBOOTING",
    "RELAY_APPLICATION_ID",
    "IdGenerator",
    "Identity",
    "advertised_applications",
    "make_answer",
]

CMD_CAPABILITIES_EXCHANGE = 257
CMD_DEVICE_WATCHDOG = 280
CMD_DISCONNECT_PEER = 282

DISCONNECT_CAUSE_REBOOTING = 0
DISCONNECT_CAUSE_BUSY = 1
DISCONNECT_CAUSE_DO_NOT_WANT_TO_TALK_TO_YOU = 2

RELAY_APPLICATION_ID = 0xFFFFFFFF

AVP_VENDOR_ID = 266
AVP_AUTH_SESSION_STATE = 277
AVP_FAILED_AVP = 279
AVP_EXPERIMENTAL_RESULT = 297
AVP_EXPERIMENTAL_RESULT_CODE = 298
AVP_VENDOR_SPECIFIC_APPLICATION_ID = 260
_COPIED = frozenset({AVP_SESSION_ID, AVP_VENDOR_SPECIFIC_APPLICATION_ID, AVP_AUTH_SESSION_STATE})


@dataclass(frozen=True, slots=True)
class Identity:
    """What this node says about itself in CER/CEA and every message."""

    origin_host: str
    origin_realm: str
    #: (Vendor-Id, Auth-Application-Id) pairs this node supports.
    applications: tuple[tuple[int, int], ...]
    host_ip_addresses: tuple[str, ...] = ("127.0.0.1",)
    product_name: str = "webims"
    vendor_id: int = 0
    #: Origin-State-Id: changes on every restart (RFC 6733 §8.16).
    origin_state_id: int = 0

    @property
    def host_bytes(self) -> bytes:
        return self.origin_host.encode()

    @property
    def realm_bytes(self) -> bytes:
        return self.origin_realm.encode()

    def application_ids(self) -> frozenset[int]:
        return frozenset(app for _vendor, app in self.applications)


class IdGenerator:
    """Hop-by-hop and End-to-End identifiers (RFC 6733 §3).

    End-to-End: the high 12 bits from the start time, the low 20 bits
    random then incremented, so they stay unique across a restart within
    4 minutes.  Hop-by-hop: random start, incremented.
    """

    __slots__ = ("_e2e", "_hop")

    def __init__(self) -> None:
        self._hop = random.getrandbits(32)
        self._e2e = ((int(time.time()) & 0xFFF) << 20) | random.getrandbits(20)

    def hop_by_hop(self) -> int:
        self._hop = (self._hop + 1) & 0xFFFFFFFF
        return self._hop

    def end_to_end(self) -> int:
        self._e2e = (self._e2e + 1) & 0xFFFFFFFF
        return self._e2e


def new_origin_state_id() -> int:
    return (int(time.time()) ^ int.from_bytes(os.urandom(2), "big")) & 0xFFFFFFFF


def _vsai(applications: Iterable[tuple[int, int]]) -> list[VendorSpecificApplicationId]:
    return [
        VendorSpecificApplicationId(vendor_id=vendor, auth_application_id=app)
        for vendor, app in applications
    ]


def _capabilities(msg: Message, me: Identity, result_code: int | None = None) -> Message:
    _origin(msg, me, result_code)
    msg.host_ip_address = list(me.host_ip_addresses)
    msg.vendor_id = me.vendor_id
    msg.product_name = me.product_name
    msg.origin_state_id = me.origin_state_id
    msg.supported_vendor_id = sorted({v for v, _ in me.applications if v})
    msg.vendor_specific_application_id = _vsai(me.applications)
    return msg


def cer(me: Identity) -> Message:
    return _capabilities(CapabilitiesExchangeRequest(), me)


def cea(me: Identity, request: Message, result_code: int = DIAMETER_SUCCESS) -> Message:
    msg = request.to_answer()
    assert isinstance(msg, CapabilitiesExchangeAnswer)
    _capabilities(msg, me, result_code)
    msg.header.is_error = 3000 <= result_code < 4000
    return msg


def advertised_applications(cer_or_cea: Message) -> frozenset[int]:
    """Every Auth-Application-Id a CER/CEA advertises, grouped or not."""
    apps = set(getattr(cer_or_cea, "auth_application_id", None) or [])
    for vsai in getattr(cer_or_cea, "vendor_specific_application_id", None) or []:
        if vsai.auth_application_id is not None:
            apps.add(vsai.auth_application_id)
    return frozenset(apps)


def _origin(msg: Message, me: Identity, result_code: int | None = None) -> Message:
    if result_code is not None:
        msg.result_code = result_code
    msg.origin_host = me.host_bytes
    msg.origin_realm = me.realm_bytes
    return msg


def dwr(me: Identity) -> Message:
    msg = _origin(DeviceWatchdogRequest(), me)
    msg.origin_state_id = me.origin_state_id
    return msg


def dwa(me: Identity, request: Message) -> Message:
    msg = request.to_answer()
    assert isinstance(msg, DeviceWatchdogAnswer)
    _origin(msg, me, DIAMETER_SUCCESS).origin_state_id = me.origin_state_id
    return msg


def dpr(me: Identity, cause: int) -> Message:
    msg = _origin(DisconnectPeerRequest(), me)
    msg.disconnect_cause = cause
    return msg


def dpa(me: Identity, request: Message) -> Message:
    msg = request.to_answer()
    assert isinstance(msg, DisconnectPeerAnswer)
    return _origin(msg, me, DIAMETER_SUCCESS)


@functools.lru_cache(maxsize=8)
def _origin_avps(host: str, realm: str) -> tuple[Avp, Avp]:
    return Avp.new(AVP_ORIGIN_HOST, host.encode()), Avp.new(AVP_ORIGIN_REALM, realm.encode())


def answer_header(request: AppMessage, *, error: bool = False) -> AppHeader:
    """The header of the answer to ``request``: same command, application and
    identifiers, R bit clear, P bit kept, E bit when ``error``."""
    req = request.header
    flags = req.command_flags & _FLAG_PROXIABLE
    if error:
        flags |= _FLAG_ERROR
    return AppHeader(
        flags,
        req.command_code,
        req.application_id,
        req.hop_by_hop_identifier,
        req.end_to_end_identifier,
    )


def make_answer(
    me: Identity,
    request: AppMessage,
    result_code: int | None = None,
    *,
    experimental: tuple[int, int] | None = None,
    avps: Iterable[Avp] = (),
    failed_avps: Iterable[Avp] = (),
    error_message: str | None = None,
) -> AppMessage:
    """The answer to ``request``, built AVP by AVP (RFC 6733 §6.2).

    Session-Id, Vendor-Specific-Application-Id and Auth-Session-State are
    copied from the request when it has them; then Origin-Host/Realm, either
    a Result-Code or an Experimental-Result {Vendor-Id, code}, then ``avps``,
    Error-Message and Failed-AVP.  Protocol errors (3xxx) set the E bit.
    """
    copied: dict[int, Avp] = {}
    for item in request.avps:
        if item.vendor_id == 0 and item.code in _COPIED and item.code not in copied:
            copied[item.code] = item
    out: list[Avp] = []
    if AVP_SESSION_ID in copied:
        out.append(copied[AVP_SESSION_ID])
    if AVP_VENDOR_SPECIFIC_APPLICATION_ID in copied:
        out.append(copied[AVP_VENDOR_SPECIFIC_APPLICATION_ID])
    if experimental is not None:
        vendor, code = experimental
        out.append(
            Avp.new(
                AVP_EXPERIMENTAL_RESULT,
                [Avp.new(AVP_VENDOR_ID, vendor), Avp.new(AVP_EXPERIMENTAL_RESULT_CODE, code)],
            )
        )
    elif result_code is not None:
        out.append(Avp.new(AVP_RESULT_CODE, result_code))
    if AVP_AUTH_SESSION_STATE in copied:
        out.append(copied[AVP_AUTH_SESSION_STATE])
    out += _origin_avps(me.origin_host, me.origin_realm)
    out.extend(avps)
    if error_message:
        out.append(Avp.new(AVP_ERROR_MESSAGE, error_message, mandatory=False))
    failed = list(failed_avps)
    if failed:
        out.append(Avp.new(AVP_FAILED_AVP, failed))
    error = experimental is None and result_code is not None and 3000 <= result_code < 4000
    return AppMessage(answer_header(request, error=error), out)
