"""TLS end to end: the server with a certificate, linkplane.client verifying it."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from linkplane.client import AsyncClient, ClientConfig, errors
from linkplane.server.config import Role, Settings
from linkplane.server.runtime import Runtime


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_client_talks_tls_and_refuses_an_unknown_server(database_url, tmp_path):
    cert, key = self_signed(tmp_path)
    runtime = Runtime(
        Settings(listen="127.0.0.1:0", role=Role.API, tls_cert_file=cert, tls_key_file=key),
        database_url,
    )
    await runtime.start()
    try:
        address = f"localhost:{runtime.port}"
        trusted = ClientConfig(address=address, tls_root_certificates=cert.read_bytes())
        async with AsyncClient(trusted) as client:
            accounts = [a async for a in client.list_accounts(parent="projects/tls")]
            assert accounts == []
        (tmp_path / "other").mkdir()
        other, _ = self_signed(tmp_path / "other")
        untrusted = ClientConfig(
            address=address,
            tls_root_certificates=other.read_bytes(),
            default_timeout=3,
            max_attempts=1,
        )
        async with AsyncClient(untrusted) as client:
            with pytest.raises(errors.LinkplaneError):
                [a async for a in client.list_accounts(parent="projects/tls")]
    finally:
        await runtime.stop()
