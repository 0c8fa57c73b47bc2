"""A throwaway ECDSA P-256 CA and server certificate, for TLS and WSS tests."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from webims.devca import ensure_dev_ca


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx


def make_pki(directory: Path) -> Pki:
    """A CA and a server certificate for 127.0.0.1/localhost under ``directory``,
    made by the project's development CA (the one ``webims up`` uses)."""
    ca = ensure_dev_ca(directory)
    return Pki(ca.ca_cert, ca.server_cert, ca.server_key)
