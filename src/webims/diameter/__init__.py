"""Diameter for webims: framing and decoding on python-diameter's codec.

The peer state machine (RFC 6733 §5.6) and the Cx procedures build on these.
"""

from .codec import DecodedMessage, decode, error_answer, peek_header
from .errors import DiameterError, FramingError
from .framing import DiameterFramer

__all__ = [
    "DecodedMessage",
    "DiameterError",
    "DiameterFramer",
    "FramingError",
    "decode",
    "error_answer",
    "peek_header",
]
