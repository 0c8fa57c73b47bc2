"""What the transaction layer tells its transaction user (TU).

Drained one by one with :meth:`webims.sip.transaction.TransactionLayer.next_event`.
A transaction that ends always produces :class:`TransactionTerminated` last,
after any :class:`TimedOut` or :class:`TransportFailed` that ended it.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .message import Request, Response

if TYPE_CHECKING:
    from .transaction import ClientTransaction, ServerTransaction

__all__ = [
    "AckReceived",
    "Event",
    "RequestReceived",
    "ResponseReceived",
    "StrayResponse",
    "TimedOut",
    "TransactionTerminated",
    "TransportFailed",
]


class Event:
    """Base class of the transaction layer's events."""

    __slots__ = ()


@dataclass(slots=True)
class RequestReceived(Event):
    """A new request created a server transaction (RFC 3261 §17.2.1, §17.2.2).

    CANCEL is one of these too; the TU finds the INVITE it refers to with
    ``find_server_invite``.
    """

    tx: ServerTransaction
    "The new server transaction; answer through it with ``send_response``."
    request: Request
    "The request as received."
    source: Hashable
    "Where it came from, as the transport named it."


@dataclass(slots=True)
class AckReceived(Event):
    """An ACK the TU must see: one for a 2xx, either matching an INVITE server
    transaction in Accepted (RFC 6026, on §17.2.1) or matching no transaction at all
    (§17.2.3; a proxy forwards it, a UAS core ends its 2xx retransmissions).
    """

    request: Request
    "The ACK."
    source: Hashable
    "Where it came from."
    tx: ServerTransaction | None
    "The INVITE server transaction it matched, or None."


@dataclass(slots=True)
class ResponseReceived(Event):
    """A response for a client transaction that the TU must see (§17.1.1.2,
    §17.1.2.2); in Accepted every further 2xx too (RFC 6026, on §17.1.1.2)."""

    tx: ClientTransaction
    "The client transaction."
    response: Response
    "The response as received."


@dataclass(slots=True)
class StrayResponse(Event):
    """A response matching no client transaction (§17.1.3).  A stateful proxy
    forwards a stray 2xx to INVITE statelessly (RFC 6026, on §16.7); anything else
    is usually dropped."""

    response: Response
    "The response as received."
    source: Hashable
    "Where it came from."


@dataclass(slots=True)
class TimedOut(Event):
    """Timer B or F (no final response; the TU acts as on a 408) or Timer H (no
    ACK for a final response) fired (§17.1.1.2, §17.1.2.2, §17.2.1)."""

    tx: ClientTransaction | ServerTransaction
    "The transaction that timed out."


@dataclass(slots=True)
class TransportFailed(Event):
    """The transport failed for this transaction's destination (§17.1.4, §17.2.4)."""

    tx: ClientTransaction | ServerTransaction
    "The transaction concerned."


@dataclass(slots=True)
class TransactionTerminated(Event):
    """The transaction reached Terminated and was forgotten by the layer."""

    tx: ClientTransaction | ServerTransaction
    "The transaction that ended."
