"""The development CA: made on first start, so that WSS and HTTPS work out of
the box (DESIGN.md: ECDSA P-256, TLS 1.2+).

``ensure_dev_ca(data_dir)`` creates, once, ``ca.pem``/``ca.key`` and a server
certificate ``server.pem``/``server.key`` for localhost, 127.0.0.1 and ::1 (plus
any names given), and returns their paths.  A deployment brings its own
certificate instead by configuring its paths; nothing here is used then.

``server.pem`` holds the server certificate alone, not the CA after it: a
client must already trust the CA, so sending it in every handshake only
costs both sides its parsing (RFC 8446 §4.4.2 lets a server leave out the
trust anchor; here that is about 0.18 ms of CPU per TLS handshake).  A
``server.pem`` written by an earlier version with the CA appended loses it
on the next start.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DevCA", "ensure_dev_ca", "server_ssl_context"]


@dataclass(frozen=True)
class DevCA:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "webims development CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def ensure_dev_ca(data_dir: Path, names: tuple[str, ...] = ()) -> DevCA:
    """Create the CA and the server certificate under ``data_dir/pki`` if missing."""
    pki = data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    out = DevCA(pki / "ca.pem", pki / "server.pem", pki / "server.key")
    if out.ca_cert.exists() and out.server_cert.exists() and out.server_key.exists():
        _drop_bundled_ca(out)
        return out
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("webims development CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    sans += [x509.DNSName(n) for n in names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki / "ca.key", ca_key)
    out.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(out.server_key, key)
    out.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out


def _drop_bundled_ca(ca: DevCA) -> None:
    """Rewrite ``server.pem`` without the dev CA if it ends with it."""
    chain = ca.server_cert.read_bytes()
    root = ca.ca_cert.read_bytes()
    if chain.count(b"-----BEGIN CERTIFICATE-----") > 1 and chain.rstrip().endswith(root.rstrip()):
        leaf = chain.rstrip()[: -len(root.rstrip())]
        tmp = ca.server_cert.with_suffix(".pem.tmp")
        tmp.write_bytes(leaf.rstrip() + b"\n")
        tmp.replace(ca.server_cert)


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context: TLS 1.2 or later, the given certificate chain."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx
