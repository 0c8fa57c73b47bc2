"""The WIC's registration, sans-I/O: the REGISTER it sends and what it reads
back (TS 24.371 clause 6.1 / Annex A.3.2 step 3, TS 24.229 5.1.1.2–5.1.1.6,
RFC 7118 §5, RFC 5626 §4.2, RFC 8898 §2).

:class:`UaInstance` is what stays the same across the registrations of one
WIC: its random ``.invalid`` host (RFC 7118 §5.2: a browser cannot listen,
so Via and Contact name a host that is never resolved), its Contact user,
its ``+sip.instance`` (RFC 5626 §4.1) and the Call-ID, From tag and CSeq of
its registrations with this registrar (RFC 3261 §10.2: one Call-ID, CSeq
incremented by one per REGISTER).

:func:`build_register` makes the REGISTER of SPEC §8 statements 8–9;
:func:`read_outcome` reads a final response into a :class:`RegisterOutcome`;
:func:`refresh_delay` is the re-registration time of TS 24.229 5.1.1.4.1;
:func:`answer_request` is what the WIC answers a request the network sends it.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field

from ..sip import Request, Response, SipURI, parse_uri
from ..sip.checks import make_response, new_tag
from ..sip.errors import ParseError
from ..sip.grammar import is_digits
from ..sip.uac import new_branch, new_request

__all__ = [
    "DEFAULT_EXPIRES",
    "RegisterOutcome",
    "UaInstance",
    "answer_request",
    "build_register",
    "home_domain",
    "read_outcome",
    "refresh_delay",
]

#: Registration lifetime a WIC asks for unless told otherwise (seconds).
#: TS 24.229 UEs ask 600000; the S-CSCF grants at most its max_expires.
DEFAULT_EXPIRES = 3600
#: Option tags of a WIC's REGISTER (RFC 7118 §5 example, RFC 5626, RFC 5627).
SUPPORTED = "path, outbound, gruu"


def _random_label(n: int = 6) -> str:
    return secrets.token_hex(n)


@dataclass
class UaInstance:
    """One WIC as its registrar sees it, from one REGISTER to the next."""

    impu: str
    #: The random ``.invalid`` host of Via sent-by and Contact (RFC 7118 §5.2).
    host: str = field(default_factory=lambda: f"{_random_label()}.invalid")
    contact_user: str = field(default_factory=lambda: _random_label(4))
    #: RFC 5626 §4.1 instance id, the same for the life of the WIC.
    instance: str = field(default_factory=lambda: f"urn:uuid:{uuid.uuid4()}")
    reg_id: int = 1
    call_id: str = ""
    from_tag: str = field(default_factory=new_tag)
    cseq: int = 0

    def __post_init__(self) -> None:
        if not self.call_id:
            self.call_id = f"{_random_label(10)}@{self.host}"

    @property
    def contact_uri(self) -> str:
        """``sip:<user>@<host>.invalid;transport=ws`` (RFC 7118 §5.2)."""
        return f"sip:{self.contact_user}@{self.host};transport=ws"

    @property
    def contact(self) -> str:
        """The Contact value with ``+sip.instance`` and ``reg-id`` (RFC 5626 §4.2.1)."""
        return f'<{self.contact_uri}>;+sip.instance="<{self.instance}>";reg-id={self.reg_id}'

    def via(self, branch: str | None = None) -> str:
        """``SIP/2.0/WSS <host>.invalid;branch=…`` (RFC 7118 §5: transport WSS)."""
        return f"SIP/2.0/WSS {self.host};branch={branch or new_branch()}"


def home_domain(impu: str) -> str:
    """The registrar's domain: the host of a SIP IMPU (TS 24.229 5.1.1.2.1:
    the Request-URI is the home network domain name)."""
    uri = parse_uri(impu)
    if not isinstance(uri, SipURI):
        raise ValueError(f"not a SIP URI: {impu}")
    return uri.host


def build_register(
    ua: UaInstance,
    token: str,
    *,
    expires: int = DEFAULT_EXPIRES,
    domain: str | None = None,
    user_agent: str = "webims-wic",
) -> Request:
    """The next REGISTER of ``ua`` (SPEC §8 8–9; Expires 0 deregisters, 24.229 5.1.1.6).

    To = From = the IMPU; ``Authorization: Bearer <token>`` in the RFC 8898
    form (SPEC §0 point 3); ``Supported: path, outbound, gruu``.
    """
    ua.cseq += 1
    impu = f"<{ua.impu}>"
    return new_request(
        "REGISTER",
        f"sip:{domain or home_domain(ua.impu)}",
        from_=f"{impu};tag={ua.from_tag}",
        to=impu,
        call_id=ua.call_id,
        cseq=ua.cseq,
        via=ua.via(),
        contact=ua.contact,
        extra=[
            ("Expires", str(expires)),
            ("Supported", SUPPORTED),
            ("Authorization", f"Bearer {token}"),
            ("User-Agent", user_agent),
        ],
    )


@dataclass(frozen=True)
class RegisterOutcome:
    """What a final response to a REGISTER tells the WIC (24.229 5.1.1.2.2)."""

    status: int
    reason: str
    #: Registered identities, the default IMPU first (P-Associated-URI).
    associated_uris: tuple[str, ...] = ()
    #: Route set for originating requests (RFC 3608 Service-Route).
    service_route: tuple[str, ...] = ()
    #: Path the registrar stored (RFC 3327), as echoed in the 200.
    path: tuple[str, ...] = ()
    #: Lifetime granted for our Contact (seconds); None when not a 2xx.
    expires: int | None = None
    #: Every WWW-Authenticate value of a 401 (RFC 8898 Bearer challenge).
    www_authenticate: tuple[str, ...] = ()
    #: ``pub-gruu`` of our Contact when the registrar assigned one (RFC 5627).
    pub_gruu: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _our_contact_expires(response: Response, ua: UaInstance) -> tuple[int | None, str | None]:
    """Our binding's ``expires`` and ``pub-gruu`` among the 200's Contacts:
    matched by instance and reg-id (RFC 5626 §4.2.1), else by URI."""
    for contact in response.contacts:
        instance = (contact.params.get("+sip.instance") or "").strip('"<>')
        ours = instance == ua.instance and contact.params.get("reg-id") == str(ua.reg_id)
        if not instance:
            ours = str(contact.uri) == ua.contact_uri
        if ours:
            value = contact.params.get("expires")
            gruu = contact.params.get("pub-gruu")
            return (int(value) if value and is_digits(value) else None), (
                gruu.strip('"') if gruu else None
            )
    return None, None


def read_outcome(response: Response, ua: UaInstance, requested: int) -> RegisterOutcome:
    """Read the final answer to a REGISTER (24.229 5.1.1.2.2 and 5.1.1.4).

    The granted lifetime is our Contact's ``expires`` parameter, else the
    Expires header, else what we asked for (RFC 3261 §10.2.4).
    """
    challenges = tuple(response.headers.get_all("WWW-Authenticate"))
    if not 200 <= response.status < 300:
        return RegisterOutcome(response.status, response.reason, www_authenticate=challenges)
    try:
        expires, gruu = _our_contact_expires(response, ua)
        if expires is None:
            expires = response.expires
    except (ParseError, ValueError):
        expires, gruu = None, None
    return RegisterOutcome(
        response.status,
        response.reason,
        associated_uris=tuple(str(a.uri) for a in response.p_associated_uri),
        service_route=tuple(str(a) for a in response.service_routes),
        path=tuple(str(a) for a in response.paths),
        expires=requested if expires is None else expires,
        www_authenticate=challenges,
        pub_gruu=gruu,
    )


def refresh_delay(expires: int) -> float:
    """Seconds until the re-REGISTER (TS 24.229 5.1.1.4.1, SPEC §9.1 3): 600 s
    before expiry when the registration lasts more than 1200 s, else at half
    of its time."""
    if expires > 1200:
        return float(expires - 600)
    return expires / 2


def answer_request(request: Request) -> Response | None:
    """The WIC's answer to a request from the network (None for an ACK).

    NOTIFY (the reg event, RFC 3680 / 24.229 5.1.1.3) and OPTIONS (RFC 3261
    §11) get 200; an INVITE 486 Busy Here (this WIC takes no calls); any
    other request 480 Temporarily Unavailable.
    """
    if request.method == "ACK":
        return None
    if request.method in ("NOTIFY", "OPTIONS"):
        status = 200
    elif request.method == "INVITE":
        status = 486
    else:
        status = 480
    return make_response(request, status, to_tag=new_tag())
