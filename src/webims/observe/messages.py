"""What the ladder shows of a recorded message: a SIP start line, Call-ID and
CSeq; a Cx command with its identities and result (TS 29.229 §6.1).

Parsing stays in ``webims.sip`` and ``webims.diameter``; this reads their
results into small views.  A message that does not parse has no view (the
trace keeps it all the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..diameter.avp import parse_avps
from ..diameter.cxdefs import ExperimentalResult, ServerAssignmentType, UserAuthorizationType
from ..diameter.errors import DiameterError
from ..sip import Request, SipError, parse_message

__all__ = ["DiameterView", "SipView", "diameter_view", "sip_view"]

_VENDOR_3GPP: Final = 10415
_CX_NAMES: Final = {
    300: ("UAR", "UAA"),
    301: ("SAR", "SAA"),
    302: ("LIR", "LIA"),
    303: ("MAR", "MAA"),
    304: ("RTR", "RTA"),
    305: ("PPR", "PPA"),
}
# AVP codes: RFC 6733 and TS 29.229 §6.3.
_SESSION_ID: Final = (263, 0)
_USER_NAME: Final = (1, 0)
_RESULT_CODE: Final = (268, 0)
_EXPERIMENTAL_RESULT: Final = (297, 0)
_EXPERIMENTAL_RESULT_CODE: Final = (298, 0)
_PUBLIC_IDENTITY: Final = (601, _VENDOR_3GPP)
_SERVER_ASSIGNMENT_TYPE: Final = (614, _VENDOR_3GPP)
_USER_AUTHORIZATION_TYPE: Final = (623, _VENDOR_3GPP)


@dataclass(frozen=True, slots=True)
class SipView:
    """A SIP message as the ladder names it."""

    is_request: bool
    #: ``REGISTER sip:home1.net`` or ``200 OK``.
    label: str
    status: int | None
    call_id: str
    cseq: int
    cseq_method: str
    to_uri: str
    #: The Authorization header field values, as received.
    authorization: tuple[str, ...]
    #: The Request-URI of a request ("" for a response).
    request_uri: str = ""
    #: The To tag: a request with one is inside a dialog.
    to_tag: str | None = None
    from_uri: str = ""


def sip_view(payload: bytes) -> SipView | None:
    try:
        msg = parse_message(payload)
        cseq = msg.cseq
        call_id = msg.call_id
        to_uri = str(msg.to.uri)
        to_tag = msg.to_tag
        from_uri = str(msg.from_.uri)
    except (SipError, ValueError):
        return None
    auth = tuple(msg.headers.get_all("Authorization"))
    if isinstance(msg, Request):
        label = f"{msg.method} {msg.uri_text}"
        return SipView(
            True,
            label,
            None,
            call_id,
            cseq.seq,
            cseq.method,
            to_uri,
            auth,
            msg.uri_text,
            to_tag,
            from_uri,
        )
    return SipView(
        False,
        f"{msg.status} {msg.reason}",
        msg.status,
        call_id,
        cseq.seq,
        cseq.method,
        to_uri,
        auth,
        to_tag=to_tag,
        from_uri=from_uri,
    )


@dataclass(frozen=True, slots=True)
class DiameterView:
    """A Diameter (Cx) message as the ladder names it."""

    is_request: bool
    command: int
    #: ``UAR``, ``SAA`` …, or ``Diameter 316`` for a command not of Cx.
    name: str
    session_id: str | None
    user_name: str | None
    public_identities: tuple[str, ...]
    #: ``2001`` or ``2001 DIAMETER_FIRST_REGISTRATION`` (answers).
    result: str | None
    #: The assignment / authorization type of a SAR / UAR.
    request_type: str | None

    @property
    def label(self) -> str:
        extra = self.request_type if self.is_request else self.result
        return f"{self.name} {extra}" if extra else self.name


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def diameter_view(payload: bytes) -> DiameterView | None:
    if len(payload) < 20:
        return None
    flags = payload[4]
    command = int.from_bytes(payload[5:8], "big")
    is_request = bool(flags & 0x80)
    try:
        avps = parse_avps(payload, 20)
    except DiameterError:
        return None
    session = user = result = request_type = None
    publics: list[str] = []
    for a in avps:
        key = (a.code, a.vendor_id)
        if key == _SESSION_ID:
            session = _text(a.data)
        elif key == _USER_NAME:
            user = _text(a.data)
        elif key == _PUBLIC_IDENTITY:
            publics.append(_text(a.data))
        elif key == _RESULT_CODE and len(a.data) == 4:
            result = str(int.from_bytes(a.data, "big"))
        elif key == _EXPERIMENTAL_RESULT:
            result = _experimental(a.data) or result
        elif key == _SERVER_ASSIGNMENT_TYPE and len(a.data) == 4:
            request_type = _enum_name(ServerAssignmentType, a.data)
        elif key == _USER_AUTHORIZATION_TYPE and len(a.data) == 4:
            request_type = _enum_name(UserAuthorizationType, a.data)
    if command == 300 and is_request and request_type is None:
        request_type = UserAuthorizationType.REGISTRATION.name  # the AVP's default
    names = _CX_NAMES.get(command)
    name = (names[0] if is_request else names[1]) if names else f"Diameter {command}"
    return DiameterView(
        is_request, command, name, session, user, tuple(publics), result, request_type
    )


def _enum_name(enum: type[ServerAssignmentType] | type[UserAuthorizationType], data: bytes) -> str:
    value = int.from_bytes(data, "big")
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def _experimental(data: bytes) -> str | None:
    try:
        inner = parse_avps(data)
    except DiameterError:
        return None
    for a in inner:
        if (a.code, a.vendor_id) == _EXPERIMENTAL_RESULT_CODE and len(a.data) == 4:
            code = int.from_bytes(a.data, "big")
            try:
                return f"{code} {ExperimentalResult(code).name}"
            except ValueError:
                return str(code)
    return None
