"""TLS contexts for SIP over TLS and WSS: TLS 1.2 or later, nothing older.

The caller brings the certificates (the dev CA, or a deployment's own); these
helpers only make sure that whatever context reaches a listener or an
outgoing connection refuses TLS 1.0/1.1.
"""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["client_context", "require_tls12", "server_context"]


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
