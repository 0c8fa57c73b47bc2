"""The development CA of ``webims up`` (src/webims/devca.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509

from tests.tls_pair import tls_pair
from webims.devca import ensure_dev_ca, server_ssl_context

BEGIN = b"-----BEGIN CERTIFICATE-----"


def _handshake(server: ssl.SSLContext, cafile: Path) -> None:
    """A TLS handshake in memory, the server verified against ``cafile``."""
    _, client, _ = tls_pair(server, ssl.create_default_context(cafile=str(cafile)))
    assert client.getpeercert()  # completed, and verified against the CA


def test_the_server_certificate_is_sent_without_the_ca(tmp_path: Path) -> None:
    ca = ensure_dev_ca(tmp_path)
    assert ca.server_cert.read_bytes().count(BEGIN) == 1
    leaf = x509.load_pem_x509_certificate(ca.server_cert.read_bytes())
    root = x509.load_pem_x509_certificate(ca.ca_cert.read_bytes())
    assert leaf.issuer == root.subject and leaf.subject != root.subject
    _handshake(server_ssl_context(ca.server_cert, ca.server_key), ca.ca_cert)


def test_a_server_pem_with_the_ca_bundled_loses_it_on_the_next_start(tmp_path: Path) -> None:
    ca = ensure_dev_ca(tmp_path)
    leaf = ca.server_cert.read_bytes()
    ca.server_cert.write_bytes(leaf + ca.ca_cert.read_bytes())  # as earlier versions wrote it
    again = ensure_dev_ca(tmp_path)
    assert again.server_cert.read_bytes().strip() == leaf.strip()
    _handshake(server_ssl_context(again.server_cert, again.server_key), again.ca_cert)


def test_a_chain_of_another_ca_is_left_alone(tmp_path: Path) -> None:
    ca = ensure_dev_ca(tmp_path)
    other = ensure_dev_ca(tmp_path / "other")
    mixed = ca.server_cert.read_bytes() + other.ca_cert.read_bytes()
    ca.server_cert.write_bytes(mixed)
    ensure_dev_ca(tmp_path)
    assert ca.server_cert.read_bytes() == mixed
