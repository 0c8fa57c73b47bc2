"""TLS listeners read one record at a time (``transport.tls.BoundedReadSSLObject``)."""

from __future__ import annotations

import ssl
from pathlib import Path

from tests.tls_pair import tls_pair
from webims.devca import ensure_dev_ca, server_ssl_context
from webims.transport.layer import TransportLayer
from webims.transport.tls import MAX_READ, BoundedReadSSLObject, bounded_reads


def _pair(tmp_path: Path) -> tuple[ssl.SSLObject, ssl.SSLObject, list[ssl.MemoryBIO]]:
    ca = ensure_dev_ca(tmp_path)
    server_ctx = bounded_reads(server_ssl_context(ca.server_cert, ca.server_key))
    return tls_pair(server_ctx, ssl.create_default_context(cafile=str(ca.ca_cert)))


def test_a_large_message_arrives_whole_in_reads_of_a_record(tmp_path: Path) -> None:
    server, client, bios = _pair(tmp_path)
    assert isinstance(server, BoundedReadSSLObject)
    message = bytes(range(256)) * 160  # 40 KiB: three records
    client.write(message)
    bios[0].write(bios[3].read())
    chunks = []
    while True:
        try:
            chunks.append(server.read(256 * 1024))  # what the event loop asks for
        except ssl.SSLWantReadError:
            break
    assert b"".join(chunks) == message
    assert max(len(c) for c in chunks) <= MAX_READ and len(chunks) >= 3


async def test_wss_and_tls_listeners_use_it(tmp_path: Path) -> None:
    ca = ensure_dev_ca(tmp_path)
    wss = server_ssl_context(ca.server_cert, ca.server_key)
    tls = server_ssl_context(ca.server_cert, ca.server_key)
    async with TransportLayer(lambda msg, flow: None) as layer:
        await layer.listen_wss("127.0.0.1", 0, wss)
        await layer.listen_tls("127.0.0.1", 0, tls)
    assert wss.sslobject_class is BoundedReadSSLObject
    assert tls.sslobject_class is BoundedReadSSLObject
