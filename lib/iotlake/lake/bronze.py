"""Bronze tables from the landing zone and the config: typed `packets`, `captures`, `devices`, `sites`.

The landing TSV is read with an explicit all-string schema in catalog order and typed here, in Spark, by the
catalog's kinds: no inference, no Python per row.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from iotlake import __version__
from iotlake.capture.fields import FIELDS, Field
from iotlake.config import Device, SiteConfig

LANDING_SCHEMA = T.StructType([T.StructField(f.column, T.StringType()) for f in FIELDS])

CHUNK_SCHEMA = "dataset string, site string, capture string, chunk int, frame_offset long"
# Landing files are <root>/dataset=<d>/site=<s>/capture=<c>/part-<chunk>.tsv.gz; names are restricted to
# [A-Za-z0-9._+-], so they read back unchanged from Spark's file URIs.
LANDING_FILE = r"/dataset=([^/]+)/site=([^/]+)/capture=([^/]+)/part-([0-9]+)[.]tsv[.]gz$"


def _first(raw: Column) -> Column:
    return F.nullif(F.split(raw, ",", 2).getItem(0), F.lit(""))


def _hex(raw: Column) -> Column:
    return F.conv(F.regexp_replace(raw, "^0x", ""), 16, 10).cast("long")


def _typed(field: Field) -> Column:
    """The typed value of one catalog field, parsed from its landing text."""
    raw = F.col(field.column)
    present = raw.isNotNull() & (raw != "")
    items = F.split(raw, ",")
    match field.kind:
        case "long":
            value = _first(raw).cast("long")
        case "int":
            value = _first(raw).cast("int")
        case "hex":
            value = _hex(_first(raw)).cast("int")
        case "bool":
            value = F.coalesce(~_first(raw).isin("0", "False", "false"), F.lit(False))
        case "string":
            value = _first(raw)
        case "text":
            value = F.nullif(raw, F.lit(""))
        case "string_list":
            value = F.when(present, items)
        case "int_list":
            value = F.when(present, F.transform(items, lambda v: v.cast("int")))
        case "hex_list":
            value = F.when(present, F.transform(items, lambda v: _hex(v).cast("int")))
        case _:
            raise ValueError(f"unknown field kind {field.kind!r}")
    return value.alias(field.column)


def _typed_columns() -> list[Column]:
    columns = []
    for field in FIELDS:
        if field.column == "frame_no":
            columns.append((_first(F.col("frame_no")).cast("long") + F.col("frame_offset")).alias("frame_no"))
        elif field.column == "ts":
            micros = (F.col("ts").cast("decimal(20,9)") * F.lit(1_000_000)).cast("long")
            columns.append(F.timestamp_micros(micros).alias("ts"))
        else:
            columns.append(_typed(field))
    return columns


def _chunk_index(file: str) -> int:
    match = re.search(r"part-([0-9]+)[.]tsv[.]gz$", file)
    if match is None:
        raise ValueError(f"not a landing file name: {file}")
    return int(match.group(1))


def read_landing(spark: SparkSession, extracts: Sequence[Any]) -> DataFrame:
    """Typed `packets` rows of the given capture extracts, with capture keys and global frame numbers."""
    chunks = [
        (e.dataset, e.site, e.capture, _chunk_index(chunk["file"]), int(chunk["frame_offset"]))
        for e in extracts
        for chunk in e.chunks
    ]
    files = [chunk["file"] for e in extracts for chunk in e.chunks]
    raw = (
        spark.read.schema(LANDING_SCHEMA)
        .option("header", True)
        .option("sep", "\t")
        .option("quote", "\u0000")
        .option("escape", "\u0000")
        .option("mode", "PERMISSIVE")
        .csv(files)
    )
    path = F.col("_metadata.file_path")
    keyed = raw.select(
        *[F.regexp_extract(path, LANDING_FILE, i).alias(k) for i, k in enumerate(("dataset", "site", "capture"), 1)],
        F.regexp_extract(path, LANDING_FILE, 4).cast("int").alias("chunk"),
        *LANDING_SCHEMA.names,
    )
    joined = keyed.join(F.broadcast(spark.createDataFrame(chunks, CHUNK_SCHEMA)), ["dataset", "site", "capture", "chunk"])
    return with_derived_columns(joined.select("dataset", "site", "capture", *_typed_columns()))


def with_derived_columns(packets: DataFrame) -> DataFrame:
    """Columns every model needs, computed once: IP version, addresses, ports and transport."""
    return (
        packets.withColumn(
            "ip_version",
            F.when(F.col("ip_src").isNotNull(), F.lit(4)).when(F.col("ipv6_src").isNotNull(), F.lit(6)),
        )
        .withColumn("src_ip", F.coalesce("ip_src", "ipv6_src"))
        .withColumn("dst_ip", F.coalesce("ip_dst", "ipv6_dst"))
        .withColumn("src_port", F.coalesce("tcp_srcport", "udp_srcport"))
        .withColumn("dst_port", F.coalesce("tcp_dstport", "udp_dstport"))
        .withColumn(
            "transport",
            F.when(F.col("tcp_srcport").isNotNull(), "tcp")
            .when(F.col("udp_srcport").isNotNull(), "udp")
            .when(F.col("icmpv6_type").isNotNull(), "icmpv6")
            .when(F.col("icmp_type").isNotNull(), "icmp")
            .when(F.col("igmp_type").isNotNull(), "igmp"),
        )
    )


CAPTURES_SCHEMA = T.StructType(
    [
        T.StructField("dataset", T.StringType(), False),
        T.StructField("site", T.StringType(), False),
        T.StructField("capture", T.StringType(), False),
        T.StructField("path", T.StringType()),
        T.StructField("sha256", T.StringType()),
        T.StructField("bytes", T.LongType()),
        T.StructField("format", T.StringType()),
        T.StructField("link_types", T.ArrayType(T.IntegerType())),
        T.StructField("tshark_version", T.StringType()),
        T.StructField("truncated", T.BooleanType()),
        T.StructField("warnings", T.ArrayType(T.StringType())),
        T.StructField("chunks", T.IntegerType()),
        T.StructField("extracted_at", T.StringType()),
        T.StructField("iotlake_version", T.StringType()),
    ]
)


def captures_frame(spark: SparkSession, extracts: Sequence[Any], packets: DataFrame) -> DataFrame:
    """`captures` rows: the extraction manifest plus packet counts and time span from the written packets."""
    rows = [
        (
            e.dataset,
            e.site,
            e.capture,
            str(e.path),
            e.sha256,
            int(e.bytes),
            e.format,
            [int(x) for x in e.link_types],
            e.tshark_version,
            bool(e.truncated),
            list(e.warnings),
            len(e.chunks),
            e.extracted_at,
            __version__,
        )
        for e in extracts
    ]
    manifest = spark.createDataFrame(rows, CAPTURES_SCHEMA)
    counts = packets.groupBy("dataset", "site", "capture").agg(
        F.count(F.lit(1)).alias("packets"),
        F.min("ts").alias("first_ts"),
        F.max("ts").alias("last_ts"),
        F.sum("frame_len").alias("wire_bytes"),
    )
    return (
        manifest.join(counts, ["dataset", "site", "capture"], "left")
        .withColumn("packets", F.coalesce("packets", F.lit(0)).cast("long"))
        .withColumn("ingested_at", F.lit(datetime.now(UTC)).cast("timestamp"))
    )


def with_labels(spark: SparkSession, captures: DataFrame, specs: Sequence[Any]) -> DataFrame:
    """Add each capture's labels (e.g. device and event of an event capture) as a map column."""
    rows = [(s.dataset, s.site, s.capture, dict(s.labels)) for s in specs]
    labels = spark.createDataFrame(
        rows, "dataset string, site string, capture string, labels map<string, string>"
    )
    return captures.join(labels, ["dataset", "site", "capture"], "left")


DEVICES_SCHEMA = (
    "dataset string, site string, device string, mac string, ip string, vendor string, kind string, "
    "attribution string"
)


def devices_frame(spark: SparkSession, dataset: str, site: str, devices: Iterable[Device]) -> DataFrame:
    """`devices` rows of one site's MAC map; `attribution` says whether frames are found by `mac` or `ip`
    (mac is null for a device known only by its IP)."""
    rows = [(dataset, site, d.device, d.mac, d.ip, d.vendor, d.kind, d.attribution) for d in devices]
    return spark.createDataFrame(rows, DEVICES_SCHEMA)


SITES_SCHEMA = (
    "dataset string, site string, local_prefixes array<string>, gateway_ips array<string>, "
    "excluded_ips array<string>"
)
PREFIXES_SCHEMA = "dataset string, site string, kind string, prefix string, start_hex string, end_hex string"


def _hex_bounds(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[str, str]:
    """Hex of the first and last address, IPv4 mapped into ::ffff:0:0/96 (as the SQL `ip_hex` does)."""

    def as_hex(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        if isinstance(address, ipaddress.IPv4Address):
            address = ipaddress.IPv6Address(f"::ffff:{address}")
        return f"{int(address):032x}"

    return as_hex(network.network_address), as_hex(network.broadcast_address)


def sites_frames(
    spark: SparkSession, dataset: str, site: str, config: SiteConfig, builtin_local: Sequence[str]
) -> tuple[DataFrame, DataFrame]:
    """`sites` and `site_prefixes` rows of one site: built-in local ranges plus the site's own."""
    site_row = [(dataset, site, config.local_prefixes, config.gateway_ips, config.excluded_ips)]
    ranges: list[tuple[str, str]] = [("local", p) for p in [*builtin_local, *config.local_prefixes]]
    ranges += [("gateway", ip) for ip in config.gateway_ips]
    ranges += [("excluded", ip) for ip in config.excluded_ips]
    prefix_rows = []
    for kind, text in ranges:
        network = ipaddress.ip_network(text, strict=False)
        low, high = _hex_bounds(network)
        prefix_rows.append((dataset, site, kind, str(network), low, high))
    return spark.createDataFrame(site_row, SITES_SCHEMA), spark.createDataFrame(prefix_rows, PREFIXES_SCHEMA)
