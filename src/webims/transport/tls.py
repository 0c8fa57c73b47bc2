"""TLS contexts for SIP over TLS and WSS: TLS 1.2 or later, nothing older.

The caller brings the certificates (the dev CA, or a deployment's own); these
helpers only make sure that whatever context reaches a listener or an
outgoing connection refuses TLS 1.0/1.1.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "MAX_READ",
    "BoundedReadSSLObject",
    "bounded_reads",
    "client_context",
    "require_tls12",
    "server_context",
]

#: Largest plaintext of one TLS record (RFC 8446 §5.1, RFC 5246 §6.2.1: 2^14).
MAX_READ = 16 * 1024


class BoundedReadSSLObject(ssl.SSLObject):
    """An :class:`ssl.SSLObject` that reads at most one record's plaintext a call.

    The event loop's TLS layer (uvloop's and asyncio's) asks for 256 KiB at a
    time, and ``read`` allocates what it is asked for before it decrypts one
    record (at most 16 KiB) and shrinks the result: with the mmap threshold
    pinned (:func:`~webims.transport.loop.pin_mmap_threshold`) that would be a
    map, a remap and an unmap for every record received (20 times the cost of
    the read).  ``SSL_read`` returns one record at most, so asking for one
    record's worth gives the same data per call.
    """

    def read(self, len: int = 1024, buffer: WriteableBuffer | None = None) -> bytes:
        return super().read(min(len, MAX_READ), buffer)


def bounded_reads(context: ssl.SSLContext) -> ssl.SSLContext:
    """Have ``context``'s connections read with :class:`BoundedReadSSLObject`."""
    context.sslobject_class = BoundedReadSSLObject
    return context


def require_tls12(context: ssl.SSLContext) -> ssl.SSLContext:
    """Raise the context's minimum protocol version to TLS 1.2 if it is lower."""
    context.minimum_version = max(context.minimum_version, ssl.TLSVersion.TLSv1_2)
    return context


def server_context(certfile: str | Path, keyfile: str | Path | None = None) -> ssl.SSLContext:
    """A server context with the given certificate chain and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certfile), None if keyfile is None else str(keyfile))
    return require_tls12(context)


def client_context(cafile: str | Path | None = None) -> ssl.SSLContext:
    """A client context verifying the server against ``cafile`` (or the system CAs)."""
    context = ssl.create_default_context(cafile=None if cafile is None else str(cafile))
    return require_tls12(context)
