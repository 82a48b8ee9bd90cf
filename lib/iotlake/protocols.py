"""Protocol labels: the config views the protocol models read, and the application labels with no category.

The labelling itself is SQL (sql/silver/packet_protocols.sql); this module feeds it conf/protocol_types.csv
and reports what that file does not cover, so an uncategorised label is listed rather than silently counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from iotlake.config import Config, load_protocol_types
from iotlake.lake import tables

log = logging.getLogger(__name__)

PROTOCOL_TYPES_FILE = "protocol_types.csv"


def protocol_views(spark: SparkSession, config: Config) -> dict[str, DataFrame]:
    """`protocol_types` (protocol, category, purpose) and `protocol_ports` (transport, port, protocol) views."""
    types = load_protocol_types(config.conf_dir / PROTOCOL_TYPES_FILE)
    return {
        "protocol_types": spark.createDataFrame(
            types.rows(), "protocol STRING, category STRING, purpose STRING"
        ),
        "protocol_ports": spark.createDataFrame(
            types.port_rows(), "transport STRING, port INT, protocol STRING"
        ),
    }


@dataclass(frozen=True)
class UnknownLabel:
    """An application label seen in the lake that conf/protocol_types.csv does not categorise."""

    dataset: str
    protocol: str
    devices: int
    packets: int


def unknown_labels(
    spark: SparkSession, lake_root: str, datasets: list[str] | None = None
) -> list[UnknownLabel]:
    """Application labels with no category in `protocol_usage` (profile `all`, scope ALL), most packets first."""
    entry = tables.table("protocol_usage")
    if not tables.exists(spark, lake_root, entry):
        return []
    usage = spark.read.format("delta").load(entry.path(lake_root))
    usage = usage.where(
        (F.col("category") == "Unknown") & (F.col("profile") == "all") & (F.col("scope") == "ALL")
    )
    if datasets:
        usage = usage.where(F.col("dataset").isin(datasets))
    rows = (
        usage.groupBy("dataset", "protocol")
        .agg(F.countDistinct("site", "device").alias("devices"), F.sum("packets").alias("packets"))
        .orderBy(F.desc("packets"), "dataset", "protocol")
        .collect()
    )
    return [UnknownLabel(r["dataset"], r["protocol"], r["devices"], r["packets"]) for r in rows]


def log_unknown_labels(spark: SparkSession, lake_root: str, datasets: list[str]) -> list[UnknownLabel]:
    """Log (warning) every uncategorised application label of the datasets just built; returns them."""
    found = unknown_labels(spark, lake_root, datasets)
    for label in found:
        log.warning(
            "dataset %s: application label %r has no category in conf/%s (%d packets, %d devices)",
            label.dataset,
            label.protocol,
            PROTOCOL_TYPES_FILE,
            label.packets,
            label.devices,
        )
    return found
