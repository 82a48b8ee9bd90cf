"""TLS server certificates seen in the captures: the leaf certificate's subject, issuer, SANs and validity,
tied to the server address and the client's SNI.

tshark exports the handshake's DER certificates (TLS ≤ 1.2 sends them in clear); the few distinct leaves are
parsed on the driver with `cryptography`. TLS 1.3 and QUIC encrypt certificates: their servers get a row that
says so (`visible` false, `reason`), never a guess.
"""

from __future__ import annotations

import hashlib
from datetime import UTC

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

TLS13 = 0x0304
# The `certificates` table (created empty by `iotlake build` before the first `iotlake enrich`).
CERTIFICATE_SCHEMA = (
    "dataset STRING, site STRING, capture STRING, server_ip STRING, sni STRING, tls_version STRING, "
    "visible BOOLEAN, reason STRING, first_seen TIMESTAMP, handshakes BIGINT, fingerprint_sha256 STRING, "
    "subject_cn STRING, subject_o STRING, subject_c STRING, issuer STRING, san_dns ARRAY<STRING>, "
    "not_before TIMESTAMP, not_after TIMESTAMP, parse_error STRING, sni_matches BOOLEAN"
)
LEAF_SCHEMA = (
    "leaf_hex STRING, fingerprint_sha256 STRING, subject_cn STRING, subject_o STRING, subject_c STRING, "
    "issuer STRING, san_dns ARRAY<STRING>, not_before TIMESTAMP, not_after TIMESTAMP, parse_error STRING"
)


def parse_leaf(leaf_hex: str) -> tuple:
    """One DER certificate (hex) as a LEAF_SCHEMA row; an unparsable one keeps its error instead of failing."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    der = bytes.fromhex(leaf_hex)
    fingerprint = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return (leaf_hex, fingerprint, None, None, None, None, [], None, None, str(exc))

    def first(oid) -> str | None:
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else None

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    return (
        leaf_hex,
        fingerprint,
        first(NameOID.COMMON_NAME),
        first(NameOID.ORGANIZATION_NAME),
        first(NameOID.COUNTRY_NAME),
        cert.issuer.rfc4514_string(),
        names,
        cert.not_valid_before_utc.astimezone(UTC).replace(tzinfo=None),
        cert.not_valid_after_utc.astimezone(UTC).replace(tzinfo=None),
        None,
    )


def certificates_frame(spark: SparkSession, packets: DataFrame) -> DataFrame:
    """Per capture, server address, SNI and leaf certificate (or encrypted handshake): one row."""
    keys = ["dataset", "site", "capture", "tcp_stream"]
    hellos = (
        packets.where(F.array_contains("tls_handshake_type", 1) & F.col("tls_sni").isNotNull())
        .groupBy(*keys)
        .agg(F.min_by(F.lower("tls_sni"), "ts").alias("sni"))
    )
    clear = packets.where(F.col("tls_certificates").isNotNull()).select(
        *keys,
        "ts",
        F.col("src_ip").alias("server_ip"),
        F.element_at("tls_certificates", 1).alias("leaf_hex"),
        F.lit("TLS <= 1.2").alias("tls_version"),
        F.lit(True).alias("visible"),
        F.lit(None).cast("string").alias("reason"),
    )
    tls13 = packets.where(
        F.array_contains("tls_handshake_type", 2) & F.array_contains("tls_supported_versions", TLS13)
    ).select(
        *keys,
        "ts",
        F.col("src_ip").alias("server_ip"),
        F.lit(None).cast("string").alias("leaf_hex"),
        F.lit("TLS 1.3").alias("tls_version"),
        F.lit(False).alias("visible"),
        F.lit("TLS 1.3 encrypts the certificate").alias("reason"),
    )
    quic = packets.where(F.col("protocols").rlike("(^|:)quic(:|$)") & (F.col("udp_srcport") == 443)).select(
        *keys,
        "ts",
        F.col("src_ip").alias("server_ip"),
        F.lit(None).cast("string").alias("leaf_hex"),
        F.lit("QUIC").alias("tls_version"),
        F.lit(False).alias("visible"),
        F.lit("QUIC encrypts the TLS handshake").alias("reason"),
    )
    seen = clear.unionByName(tls13).unionByName(quic).join(hellos, keys, "left")
    leaves = [
        r["leaf_hex"] for r in seen.where("leaf_hex IS NOT NULL").select("leaf_hex").distinct().collect()
    ]
    parsed = spark.createDataFrame([parse_leaf(h) for h in leaves], LEAF_SCHEMA)
    group = ["dataset", "site", "capture", "server_ip", "sni", "tls_version", "visible", "reason"]
    certs = (
        seen.join(parsed, "leaf_hex", "left")
        .groupBy(*group)
        .agg(
            F.min("ts").alias("first_seen"),
            F.count("*").alias("handshakes"),
            *(
                F.first(c, ignorenulls=True).alias(c)
                for c in (
                    "fingerprint_sha256",
                    "subject_cn",
                    "subject_o",
                    "subject_c",
                    "issuer",
                    "san_dns",
                    "not_before",
                    "not_after",
                    "parse_error",
                )
            ),
        )
        .withColumn("row_key", F.xxhash64(*group))  # null-safe key (reason is NULL on visible rows)
    )
    # Does the SNI match the certificate's CN or a SAN (label boundaries, one-label wildcards)? SQL functions
    # cannot run inside lambdas, so the names are exploded and the matches folded back per row.
    matches = (
        certs.where("visible AND sni IS NOT NULL")
        .select(
            "row_key",
            "sni",
            F.explode(F.array_append(F.coalesce("san_dns", F.array()), "subject_cn")).alias("pattern"),
        )
        .where("pattern IS NOT NULL")
        .groupBy("row_key")
        .agg(F.max(F.expr("cert_name_matches(sni, pattern)")).alias("sni_matches"))
    )
    return certs.join(matches, "row_key", "left").drop("row_key")
