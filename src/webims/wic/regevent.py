"""The WIC's subscription to its registration state, sans-I/O (TS 24.229
5.1.1.3, RFC 3680, RFC 6665): the SUBSCRIBE it sends after a successful
registration, and what it reads in each NOTIFY.

The SUBSCRIBE goes to the default public identity (the first
P-Associated-URI) along the stored Service-Route (RFC 3608), with
``Event: reg``, ``Expires: 600000`` and ``Accept: application/reginfo+xml``
as 24.229 5.1.1.3 asks, the Bearer token as in every request of a WIC
(24.371 7.2.1, SPEC §8 9), and a Contact with ``ob`` (RFC 5626 §4.2.4: a
dialog-forming request asks the edge proxy to keep using this flow).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sip import Request
from ..sip.checks import new_tag
from ..sip.reginfo import REGINFO, ReginfoError, parse_reginfo
from ..sip.uac import new_call_id, new_request
from .registration import UaInstance

__all__ = ["REGINFO", "RegNotification", "build_reg_subscribe", "read_reg_notify"]

#: 24.229 5.1.1.3: the UE asks for this lifetime; the S-CSCF may shorten it.
SUBSCRIBE_EXPIRES = 600000


def build_reg_subscribe(
    ua: UaInstance,
    token: str,
    *,
    impu: str,
    service_route: tuple[str, ...],
    expires: int = SUBSCRIBE_EXPIRES,
) -> Request:
    """A new SUBSCRIBE to the reg event of ``impu`` (24.229 5.1.1.3)."""
    return new_request(
        "SUBSCRIBE",
        impu,
        from_=f"<{impu}>;tag={new_tag()}",
        to=f"<{impu}>",
        call_id=new_call_id(ua.host),
        cseq=1,
        via=ua.via(),
        route=list(service_route),
        contact=f"<{ua.contact_uri};ob>",
        extra=[
            ("Event", "reg"),
            ("Expires", str(expires)),
            ("Accept", REGINFO),
            ("Authorization", f"Bearer {token}"),
        ],
    )


@dataclass(frozen=True)
class RegNotification:
    """One NOTIFY of the reg event (RFC 3680 §5.3, RFC 6665 §4.1.3)."""

    #: ``active;expires=…`` or ``terminated;reason=…`` (RFC 6665 Subscription-State).
    subscription_state: str
    #: The reginfo document's version and state (``full`` or ``partial``).
    version: int | None
    state: str | None
    #: ``(aor, registration state)`` of each ``<registration>``.
    registrations: tuple[tuple[str, str], ...]


def read_reg_notify(request: Request) -> RegNotification:
    """What a reg event NOTIFY says; a body that is no reginfo reads as empty."""
    version: int | None = None
    state: str | None = None
    regs: tuple[tuple[str, str], ...] = ()
    if request.body:
        try:
            doc = parse_reginfo(request.body)
        except ReginfoError:
            pass
        else:
            version, state = doc.version, doc.state
            regs = tuple((reg.aor, reg.state) for reg in doc.registrations)
    return RegNotification(request.headers.get("Subscription-State") or "", version, state, regs)
