"""The only code that writes lake tables: atomic partition replacement with provenance in the commit info."""

from __future__ import annotations

import getpass
import json
import logging
from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession

from iotlake import __version__
from iotlake.lake.tables import Table, register
from iotlake.names import NAME_PATTERN

log = logging.getLogger(__name__)

Scope = Mapping[str, str | Sequence[str]]
Scopes = Scope | Sequence[Scope]


def _literal(value: str) -> str:
    # Values are partition names that passed names.check_name at the boundary; refuse anything else so no
    # user text can change the predicate.
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(f"refusing to use {value!r} in a partition predicate")
    return f"'{value}'"


def replace_predicate(scopes: Scopes) -> str:
    """`replaceWhere` text for scopes such as {"dataset": "d", "capture": ["a", "b"]} (a list is OR-ed)."""
    if isinstance(scopes, Mapping):
        scopes = [scopes]
    terms = []
    for scope in scopes:
        parts = []
        for column, value in scope.items():
            if isinstance(value, str):
                parts.append(f"{column} = {_literal(value)}")
            else:
                parts.append(f"{column} IN ({', '.join(_literal(v) for v in sorted(set(value)))})")
        terms.append(" AND ".join(parts))
    return " OR ".join(f"({t})" for t in terms) if len(terms) > 1 else terms[0]


def _commit_info(job: str, metadata: Mapping[str, object] | None) -> str:
    """The Delta commit's userMetadata: the job, the iotlake version, the user and the caller's metadata."""
    info = {"job": job, "iotlake": __version__, "user": getpass.getuser(), **(metadata or {})}
    return json.dumps(info, sort_keys=True, default=str)


def _latest_version(spark: SparkSession, path: str) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).history(1).collect()[0]["version"])


def write_table(
    df: DataFrame,
    entry: Table,
    lake_root: str,
    scope: Scopes,
    job: str,
    metadata: Mapping[str, object] | None = None,
) -> int:
    """Replace exactly the rows of `scope` in one Delta commit and return the new table version.

    Rows outside the scope are untouched; a failure leaves the previous version readable. The commit info
    records the job, the iotlake version, the user and `metadata` (e.g. source file hashes).
    """

    spark = df.sparkSession
    path = entry.path(lake_root)
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", replace_predicate(scope))
        # New columns (a model or the field catalog grew) are added to the table; types never change silently.
        .option("mergeSchema", "true")
        .option("userMetadata", _commit_info(job, metadata))
    )
    if entry.partition_by:
        writer = writer.partitionBy(*entry.partition_by)
    writer.save(path)
    version = _latest_version(spark, path)
    register(spark, lake_root, entry)
    log.info("wrote %s version %s (%s)", entry.qualified, version, replace_predicate(scope))
    return version


def upsert_table(
    df: DataFrame,
    entry: Table,
    lake_root: str,
    keys: Sequence[str],
    job: str,
    metadata: Mapping[str, object] | None = None,
) -> int:
    """MERGE `df` into a keyed table (update matching keys, insert new ones) in one commit; returns the version.

    For caches such as ip_owners, which grow across runs and datasets instead of being rebuilt per dataset.
    """
    from delta.tables import DeltaTable

    spark = df.sparkSession
    path = entry.path(lake_root)
    info = _commit_info(job, metadata)
    if not DeltaTable.isDeltaTable(spark, path):
        df.write.format("delta").option("userMetadata", info).save(path)
    else:
        condition = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        previous = spark.conf.get("spark.databricks.delta.commitInfo.userMetadata", None)
        spark.conf.set("spark.databricks.delta.commitInfo.userMetadata", info)
        try:
            (
                DeltaTable.forPath(spark, path)
                .alias("t")
                .merge(df.alias("s"), condition)
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )
        finally:
            if previous is None:
                spark.conf.unset("spark.databricks.delta.commitInfo.userMetadata")
            else:
                spark.conf.set("spark.databricks.delta.commitInfo.userMetadata", previous)
    version = _latest_version(spark, path)
    register(spark, lake_root, entry)
    log.info("merged into %s version %s", entry.qualified, version)
    return version


def ensure_table(spark: SparkSession, entry: Table, lake_root: str, schema: str) -> None:
    """Create an empty table when it does not exist yet, so models that read it (e.g. a cache) can run."""
    from delta.tables import DeltaTable

    path = entry.path(lake_root)
    if not DeltaTable.isDeltaTable(spark, path):
        spark.createDataFrame([], schema).write.format("delta").partitionBy(*entry.partition_by).save(path)
    register(spark, lake_root, entry)


def overwrite_table(
    df: DataFrame,
    entry: Table,
    lake_root: str,
    job: str,
    metadata: Mapping[str, object] | None = None,
) -> int:
    """Replace the whole table in one commit and return the new version.

    For small mirrors of config registries (e.g. `datasets` from conf/datasets.csv), where the rows of the
    source file are the whole truth; fact and model tables use `write_table`'s scoped replacement instead.
    """

    spark = df.sparkSession
    path = entry.path(lake_root)
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .option("userMetadata", _commit_info(job, metadata))
    )
    if entry.partition_by:
        writer = writer.partitionBy(*entry.partition_by)
    writer.save(path)
    version = _latest_version(spark, path)
    register(spark, lake_root, entry)
    log.info("replaced %s: version %s", entry.qualified, version)
    return version
