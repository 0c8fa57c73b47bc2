"""The SIP core of webims: messages, URIs, headers, transactions and the proxy.

Sans-I/O: nothing here opens a socket, awaits, or reads a clock.  Time is
passed in as an argument, bytes come in and go out.
"""

from .address import Address, parse_address, parse_address_list
from .auth import (
    BearerCredentials,
    Challenge,
    Credentials,
    DigestCredentials,
    parse_challenge,
    parse_credentials,
)
from .checks import (
    check_proxy_request,
    check_register,
    check_request,
    check_response,
    make_response,
    new_tag,
    response_for_error,
)
from .errors import (
    BadExtension,
    BodyTooLarge,
    LocalError,
    LoopDetected,
    MessageTooLarge,
    ParseError,
    SipError,
    TooManyHops,
    UnsupportedURIScheme,
    VersionNotSupported,
)
from .headers import Headers
from .message import DEFAULT_LIMITS, CSeq, Limits, Message, Request, Response, parse_message
from .params import Params
from .status import reason_phrase
from .uri import URI, AbsoluteURI, SipURI, TelURI, parse_uri
from .via import MAGIC_COOKIE, Via, parse_via

__all__ = [
    "DEFAULT_LIMITS",
    "MAGIC_COOKIE",
    "URI",
    "AbsoluteURI",
    "Address",
    "BadExtension",
    "BearerCredentials",
    "BodyTooLarge",
    "CSeq",
    "Challenge",
    "Credentials",
    "DigestCredentials",
    "Headers",
    "Limits",
    "LocalError",
    "LoopDetected",
    "Message",
    "MessageTooLarge",
    "Params",
    "ParseError",
    "Request",
    "Response",
    "SipError",
    "SipURI",
    "TelURI",
    "TooManyHops",
    "UnsupportedURIScheme",
    "VersionNotSupported",
    "Via",
    "check_proxy_request",
    "check_register",
    "check_request",
    "check_response",
    "make_response",
    "new_tag",
    "parse_address",
    "parse_address_list",
    "parse_challenge",
    "parse_credentials",
    "parse_message",
    "parse_uri",
    "parse_via",
    "reason_phrase",
    "response_for_error",
]
