"""Errors of the Diameter layer, each with the Result-Code to answer with
(RFC 6733 §7.1)::

    DiameterError                  result_code; protocol errors set the E bit
     └── FramingError              the byte stream cannot be cut into messages
                                   any more (5015 or 5011): close the connection
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "DIAMETER_APPLICATION_UNSUPPORTED",
    "DIAMETER_COMMAND_UNSUPPORTED",
    "DIAMETER_INVALID_AVP_BITS",
    "DIAMETER_INVALID_AVP_LENGTH",
    "DIAMETER_INVALID_AVP_VALUE",
    "DIAMETER_INVALID_HDR_BITS",
    "DIAMETER_INVALID_MESSAGE_LENGTH",
    "DIAMETER_MISSING_AVP",
    "DIAMETER_NO_COMMON_APPLICATION",
    "DIAMETER_REALM_NOT_SERVED",
    "DIAMETER_SUCCESS",
    "DIAMETER_UNABLE_TO_COMPLY",
    "DIAMETER_UNABLE_TO_DELIVER",
    "DIAMETER_UNKNOWN_PEER",
    "DIAMETER_UNSUPPORTED_VERSION",
    "DiameterError",
    "FramingError",
    "PeerDisconnected",
    "PeerUnavailable",
    "RequestFailed",
    "RequestTimeout",
]

# RFC 6733 §7.1 Result-Code values used here.
DIAMETER_SUCCESS = 2001
DIAMETER_COMMAND_UNSUPPORTED = 3001
DIAMETER_APPLICATION_UNSUPPORTED = 3007
DIAMETER_INVALID_HDR_BITS = 3008
DIAMETER_INVALID_AVP_BITS = 3009
DIAMETER_INVALID_AVP_VALUE = 5004
DIAMETER_MISSING_AVP = 5005
DIAMETER_UNABLE_TO_COMPLY = 5012
DIAMETER_INVALID_AVP_LENGTH = 5014
DIAMETER_INVALID_MESSAGE_LENGTH = 5015
DIAMETER_UNSUPPORTED_VERSION = 5011


class DiameterError(Exception):
    """A peer sent something unusable; ``result_code`` says how to answer."""

    def __init__(self, result_code: int, message: str, failed_avps: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.result_code = result_code
        #: AVPs for the answer's Failed-AVP (python-diameter ``Avp`` objects).
        self.failed_avps = tuple(failed_avps)

    @property
    def protocol_error(self) -> bool:
        """3xxx codes are protocol errors: the answer carries the E bit (§7.1.3)."""
        return 3000 <= self.result_code < 4000


class FramingError(DiameterError):
    """The stream is out of step; answer if possible, then close the connection."""


# Result-Code values of the base protocol used by the peer layer.
DIAMETER_UNABLE_TO_DELIVER = 3002
DIAMETER_REALM_NOT_SERVED = 3003
DIAMETER_UNKNOWN_PEER = 3010
DIAMETER_NO_COMMON_APPLICATION = 5010


class RequestFailed(Exception):
    """A request this node sent got no answer.

    ::

        RequestFailed
         ├── PeerUnavailable     no open connection to a peer that could take it
         ├── PeerDisconnected    the connection went away with the request pending
         └── RequestTimeout      no answer within the request timeout
    """


class PeerUnavailable(RequestFailed):
    """No open connection to a peer that serves the request."""


class PeerDisconnected(RequestFailed):
    """The connection closed while the request waited for its answer."""


class RequestTimeout(RequestFailed):
    """No answer came within the request timeout."""
