"""The table registry: every table's name, layer, partitioning and meaning, and where it lives.

Tables are path-based Delta tables under the lake root (`<root>/<layer>/<name>`) and are registered in the
session catalog as `iotlake.<name>` so that SQL can address them by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession

DATABASE = "iotlake"
CAPTURE_KEYS = ("dataset", "site", "capture")


@dataclass(frozen=True)
class Table:
    """A table of the lake."""

    name: str
    layer: str
    partition_by: tuple[str, ...]
    comment: str

    def path(self, lake_root: str) -> str:
        """The table's location under the lake root."""
        return f"{lake_root.rstrip('/')}/{self.layer}/{self.name}"

    @property
    def qualified(self) -> str:
        """The name SQL uses: `iotlake.<name>`."""
        return f"{DATABASE}.{self.name}"


BRONZE = (
    Table(
        "packets", "bronze", CAPTURE_KEYS, "one row per captured frame, with the fields of the tshark catalog"
    ),
    Table(
        "captures",
        "bronze",
        ("dataset",),
        "one row per ingested capture file: hash, counts, time span, warnings",
    ),
    Table("devices", "bronze", ("dataset",), "one row per device of a site's MAC map"),
    Table("sites", "bronze", ("dataset",), "one row per site: local prefixes and gateway addresses"),
    Table(
        "site_prefixes",
        "bronze",
        ("dataset",),
        "one row per address range of a site (local, gateway, excluded) with its hex bounds for range joins",
    ),
    Table(
        "site_rules",
        "bronze",
        ("dataset",),
        "one row per endpoint party rule a site's config adds (party, vendor, domain or org)",
    ),
)

# Tables filled by enrichment jobs rather than SQL models: caches that span datasets.
ENRICHMENT = (
    Table(
        "ip_owners",
        "silver",
        (),
        "one row per public IP address: its owner (AS, network, organisation), the source and the lookup time",
    ),
    Table(
        "certificates",
        "silver",
        ("dataset",),
        "one row per capture, server address, SNI and leaf TLS certificate (or a handshake that hides it)",
    ),
    Table(
        "endpoint_overrides",
        "silver",
        (),
        "one row per manual party class for an IP or host name (dataset and device '*' = any); wins over rules",
    ),
)

# Mirrors of the registries in conf/, so SQL can join data with its provenance.
REGISTRY = (
    Table(
        "datasets",
        "meta",
        (),
        "one row per dataset of conf/datasets.csv: directory, source, licence, contributor, status",
    ),
)

_tables: dict[str, Table] = {t.name: t for t in (*BRONZE, *ENRICHMENT, *REGISTRY)}


def table(name: str) -> Table:
    """A registered table by name."""
    return _tables[name]


def register_model_table(name: str, layer: str, partition_by: tuple[str, ...], comment: str) -> Table:
    """Declare a table produced by a SQL model (the models runner calls this from the file's header)."""
    entry = Table(name, layer, partition_by, comment)
    _tables[name] = entry
    return entry


def all_tables() -> list[Table]:
    """Every declared table, bronze first."""
    return list(_tables.values())


def exists(spark: SparkSession, lake_root: str, entry: Table) -> bool:
    """True when the table's Delta log exists under the lake root.

    Asks the file system (any Hadoop URI) rather than `DeltaTable.isDeltaTable`, whose cached answer stays
    False in a long-lived session after another process creates the table.
    """
    jvm = spark.sparkContext._jvm
    log = jvm.org.apache.hadoop.fs.Path(f"{entry.path(lake_root)}/_delta_log")
    fs = log.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return bool(fs.exists(log)) and len(fs.listStatus(log)) > 0


def register(spark: SparkSession, lake_root: str, entry: Table) -> None:
    """Register one existing table as `iotlake.<name>` in this session's catalog."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    if not spark.catalog.tableExists(entry.qualified):
        spark.catalog.createTable(entry.qualified, path=entry.path(lake_root), source="delta")


def register_all(spark: SparkSession, lake_root: str) -> list[Table]:
    """Register every declared table that exists in the lake; returns those registered."""
    found = [t for t in all_tables() if exists(spark, lake_root, t)]
    for entry in found:
        register(spark, lake_root, entry)
    return found
