"""A TLS connection in memory (``ssl.MemoryBIO``), handshake done: for tests of
what the server's context sends and how its connections read."""

from __future__ import annotations

import contextlib
import ssl

__all__ = ["tls_pair"]


def tls_pair(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str = "localhost"
) -> tuple[ssl.SSLObject, ssl.SSLObject, list[ssl.MemoryBIO]]:
    """(server, client, BIOs) once the handshake is over; the BIOs are the server's
    incoming and outgoing, then the client's.  Raises what the handshake raises
    (``ssl.SSLCertVerificationError`` for a server the client does not trust)."""
    bios = [ssl.MemoryBIO() for _ in range(4)]
    server = server_ctx.wrap_bio(bios[0], bios[1], server_side=True)
    client = client_ctx.wrap_bio(bios[2], bios[3], server_hostname=server_hostname)
    for _ in range(6):
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        bios[0].write(bios[3].read())
        bios[2].write(bios[1].read())
    return server, client, bios
