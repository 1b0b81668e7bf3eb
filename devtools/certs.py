"""Test certificate authorities and server certificates, made with `cryptography`.

TLS tests need a server certificate that chains to a CA the test controls, for
host names the test chooses (so it can also connect under a name the
certificate does not carry), and a second, unrelated CA to show that a client
really verifies the chain. Everything is written as PEM files, because that is
what PostgreSQL's `ssl_cert_file` and a client's `sslrootcert` take.

    ca = make_ca(directory, "test-ca")
    tls = make_server_cert(ca, directory, hostnames=["localhost"])
    stranger = make_ca(directory, "unrelated-ca")   # for "wrong CA" tests

Two styles. The default is complete by RFC 5280 (keyUsage on both, key
identifiers, extendedKeyUsage, subjectAltName), which Python 3.13's strict
verification (VERIFY_X509_STRICT) also accepts. `hand_made=True` makes what
PostgreSQL's documentation recipe (`openssl req -x509`, `openssl x509 -req`
with OpenSSL's default configuration) makes: a CA with basicConstraints and key
identifiers but no keyUsage, and a server certificate with no extensions at
all, its host name in the subject's common name; libpq accepts both, strict
verification refuses both. `expired=True` makes a server certificate whose
validity ended yesterday.

Keys are ECDSA P-256: small, fast to generate, accepted by OpenSSL 3, Python's
ssl module and PostgreSQL alike.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import pathlib
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1")


@dataclasses.dataclass(frozen=True)
class CertificateAuthority:
    """A CA that can sign server certificates; `cert_path` is what clients trust."""

    name: str
    cert_path: pathlib.Path
    key_path: pathlib.Path
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """What a TLS server needs (certificate and key) and the CA file its clients trust."""

    ca_cert: pathlib.Path
    server_cert: pathlib.Path
    server_key: pathlib.Path


def make_ca(
    directory: str | os.PathLike,
    name: str = "devtools-test-ca",
    *,
    valid_days: int = 7,
    hand_made: bool = False,
) -> CertificateAuthority:
    """A new self-signed CA, written to DIRECTORY/NAME.crt and DIRECTORY/NAME.key.

    Each call makes an unrelated CA (a fresh key), which is all a "wrong CA"
    test needs. `hand_made`: OpenSSL's v3_ca extensions, without keyUsage.
    """
    directory = pathlib.Path(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    not_before, not_after = _validity(valid_days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if hand_made:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        ).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        ).add_extension(_key_usage(key_cert_sign=True), critical=True)
    certificate = builder.sign(key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    _write_certificate(cert_path, certificate)
    _write_private_key(key_path, key)
    return CertificateAuthority(name, cert_path, key_path, certificate, key)


def make_server_cert(
    ca: CertificateAuthority,
    directory: str | os.PathLike,
    hostnames: Iterable[str] = DEFAULT_HOSTNAMES,
    *,
    name: str | None = None,
    valid_days: int = 7,
    hand_made: bool = False,
    expired: bool = False,
) -> TlsFiles:
    """A server certificate signed by `ca`, valid for exactly `hostnames`.

    Each host name becomes a subjectAltName: an IP address entry when it parses
    as one (clients match IPs only against those), else a DNS entry. The files
    are DIRECTORY/NAME.crt and DIRECTORY/NAME.key (mode 0600), NAME defaulting
    to "<ca name>-server". `hand_made`: no extensions, exactly one host name, in
    the common name (clients fall back to it when there is no subjectAltName).
    `expired`: valid for a month that ended yesterday.
    """
    hostnames = list(hostnames)
    if not hostnames:
        raise ValueError("a server certificate needs at least one host name")
    if hand_made and len(hostnames) > 1:
        raise ValueError("a hand-made server certificate names one host, in its common name")
    directory = pathlib.Path(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity(valid_days)
    if expired:
        not_before, not_after = (
            not_before - datetime.timedelta(days=31),
            not_before - datetime.timedelta(days=1),
        )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if not hand_made:
        builder = (
            builder.add_extension(
                x509.SubjectAlternativeName([_general_name(h) for h in hostnames]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
            )
        )
    certificate = builder.sign(ca.key, hashes.SHA256())
    stem = name or f"{ca.name}-server"
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    _write_certificate(cert_path, certificate)
    _write_private_key(key_path, key)
    return TlsFiles(ca_cert=ca.cert_path, server_cert=cert_path, server_key=key_path)


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    # A few minutes in the past, so a clock a little behind still accepts it.
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)


def _key_usage(digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)


def _write_certificate(path: pathlib.Path, certificate: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _write_private_key(path: pathlib.Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Created 0600 from the start: never readable by others, not even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
