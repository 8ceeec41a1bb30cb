"""Certificates made at run time for the TLS tests (needs the `cryptography` package).

`make_pki(folder)` writes a CA and two leaf certificates it signed (one for the services,
one for a client), each naming localhost and 127.0.0.1 and usable for both server and client
authentication. Nothing here is used by the services.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files `make_pki` wrote."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, cert: Any, key: Any | None = None, key_path: Path | None = None) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None and key_path is not None:
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)


def make_ca(common_name: str = "mishards test CA") -> tuple[Any, Any]:
    """A self-signed CA certificate and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        )  # fmt: skip
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(ca_cert: Any, ca_key: Any, common_name: str, names: tuple[str, ...] = ("localhost",)) -> tuple[Any, Any]:
    """A certificate signed by the CA for `names` and 127.0.0.1, for server and client authentication."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def make_pki(folder: Path | str, names: tuple[str, ...] = ("localhost",)) -> Pki:
    """Write ca.pem, server.pem/server.key and client.pem/client.key into `folder`."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = make_ca()
    pki = Pki(
        ca=root / "ca.pem",
        cert=root / "server.pem",
        key=root / "server.key",
        client_cert=root / "client.pem",
        client_key=root / "client.key",
    )
    _write(pki.ca, ca_cert)
    server_cert, server_key = make_leaf(ca_cert, ca_key, "mishards", names)
    _write(pki.cert, server_cert, server_key, pki.key)
    client_cert, client_key = make_leaf(ca_cert, ca_key, "mishards client", names)
    _write(pki.client_cert, client_cert, client_key, pki.client_key)
    return pki
