"""Numbers of the Cx application (TS 29.229 §6 and §7, TS 29.228 §6).

Command codes, the AVP codes the CSCFs and the HSS use, the enumerations,
and the result codes: base ones travel in Result-Code (268), 3GPP ones in
Experimental-Result (297) with Vendor-Id 10415.  ``Result-Code 2001``
(DIAMETER_SUCCESS) and ``Experimental-Result-Code 2001``
(DIAMETER_FIRST_REGISTRATION) are different things; :class:`CxResult` keeps
the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "CX_APPLICATION_ID",
    "VENDOR_3GPP",
    "CxCommand",
    "CxResult",
    "DeregistrationReason",
    "ExperimentalResult",
    "ServerAssignmentType",
    "UserAuthorizationType",
    "UserDataAlreadyAvailable",
]

CX_APPLICATION_ID = 16777216
VENDOR_3GPP = 10415


class CxCommand(IntEnum):
    USER_AUTHORIZATION = 300  # UAR/UAA
    SERVER_ASSIGNMENT = 301  # SAR/SAA
    LOCATION_INFO = 302  # LIR/LIA
    MULTIMEDIA_AUTH = 303  # MAR/MAA
    REGISTRATION_TERMINATION = 304  # RTR/RTA
    PUSH_PROFILE = 305  # PPR/PPA


class UserAuthorizationType(IntEnum):
    REGISTRATION = 0
    DE_REGISTRATION = 1
    REGISTRATION_AND_CAPABILITIES = 2


class ServerAssignmentType(IntEnum):
    NO_ASSIGNMENT = 0
    REGISTRATION = 1
    RE_REGISTRATION = 2
    UNREGISTERED_USER = 3
    TIMEOUT_DEREGISTRATION = 4
    USER_DEREGISTRATION = 5
    TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME = 6
    USER_DEREGISTRATION_STORE_SERVER_NAME = 7
    ADMINISTRATIVE_DEREGISTRATION = 8
    AUTHENTICATION_FAILURE = 9
    AUTHENTICATION_TIMEOUT = 10
    DEREGISTRATION_TOO_MUCH_DATA = 11


class UserDataAlreadyAvailable(IntEnum):
    USER_DATA_NOT_AVAILABLE = 0
    USER_DATA_ALREADY_AVAILABLE = 1


class DeregistrationReason(IntEnum):
    """Reason-Code of Deregistration-Reason (TS 29.229 §6.3.17)."""

    PERMANENT_TERMINATION = 0
    NEW_SERVER_ASSIGNED = 1
    SERVER_CHANGE = 2
    REMOVE_S_CSCF = 3


class ExperimentalResult(IntEnum):
    """Experimental-Result-Code values of TS 29.229 §6.2 (Vendor-Id 10415)."""

    DIAMETER_FIRST_REGISTRATION = 2001
    DIAMETER_SUBSEQUENT_REGISTRATION = 2002
    DIAMETER_UNREGISTERED_SERVICE = 2003
    DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED = 2004
    DIAMETER_ERROR_USER_UNKNOWN = 5001
    DIAMETER_ERROR_IDENTITIES_DONT_MATCH = 5002
    DIAMETER_ERROR_IDENTITY_NOT_REGISTERED = 5003
    DIAMETER_ERROR_ROAMING_NOT_ALLOWED = 5004
    DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED = 5005
    DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED = 5006
    DIAMETER_ERROR_IN_ASSIGNMENT_TYPE = 5007
    DIAMETER_ERROR_TOO_MUCH_DATA = 5008
    DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA = 5009
    DIAMETER_ERROR_FEATURE_UNSUPPORTED = 5011
    DIAMETER_ERROR_SERVING_NODE_FEATURE_UNSUPPORTED = 5012


# Base Result-Code values (RFC 6733 §7.1) that Cx answers use.
DIAMETER_SUCCESS = 2001
DIAMETER_UNABLE_TO_DELIVER = 3002
DIAMETER_TOO_BUSY = 3004
DIAMETER_AUTHORIZATION_REJECTED = 5003
DIAMETER_MISSING_AVP = 5005
DIAMETER_UNABLE_TO_COMPLY = 5012


@dataclass(frozen=True, slots=True)
class CxResult:
    """The outcome of a Cx request: exactly one of a base Result-Code or a
    3GPP Experimental-Result-Code."""

    code: int
    experimental: bool = False

    @classmethod
    def base(cls, code: int) -> CxResult:
        return cls(code, False)

    @classmethod
    def exp(cls, code: ExperimentalResult) -> CxResult:
        return cls(int(code), True)

    @property
    def success(self) -> bool:
        return 2000 <= self.code < 3000

    def __str__(self) -> str:
        if self.experimental:
            try:
                return f"Experimental-Result {self.code} {ExperimentalResult(self.code).name}"
            except ValueError:
                return f"Experimental-Result {self.code}"
        return f"Result-Code {self.code}"
