"""Leaf certificate parsing on a certificate built here with known contents (wildcard SAN, subject, validity)."""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iotlake.enrich.certificates import parse_leaf


def _certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "*.example.com"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Devices Ltd"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
        ]
    )
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Issuing CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(datetime(2025, 1, 1))
        .not_valid_after(datetime(2026, 1, 1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("*.example.com"), x509.DNSName("Example.com")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_leaf_fields() -> None:
    row = parse_leaf(_certificate().hex())
    _, fingerprint, cn, org, country, issuer, san, not_before, not_after, error = row
    assert (cn, org, country) == ("*.example.com", "Example Devices Ltd", "NL")
    assert issuer == "CN=Example Issuing CA"
    assert san == ["*.example.com", "example.com"]
    assert (not_before, not_after) == (datetime(2025, 1, 1), datetime(2026, 1, 1))
    assert len(fingerprint) == 64 and error is None


def test_unparsable_certificate_keeps_its_error() -> None:
    row = parse_leaf("3003020101")
    assert row[2] is None and row[-1]
