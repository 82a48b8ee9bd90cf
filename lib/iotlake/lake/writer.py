"""The only code that writes lake tables: atomic partition replacement with provenance in the commit info.

Writers of different captures or datasets may commit to the same table at once (two ingests of one dataset).
Delta's optimistic concurrency lets one commit win and fails the other with a conflict; every write here is
idempotent (replace a scope, MERGE by key, create when absent), so it is simply re-run after a jittered,
growing pause, a bounded number of times (`with_retry`).
"""

from __future__ import annotations

import getpass
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from iotlake import __version__
from iotlake.errors import IotlakeError
from iotlake.lake.tables import Table, exists, register
from iotlake.names import NAME_PATTERN

log = logging.getLogger(__name__)

Scope = Mapping[str, str | Sequence[str]]
Scopes = Scope | Sequence[Scope]
T = TypeVar("T")

# Commit conflicts: attempts in all (the first and the retries), and the first pause before jitter.
ATTEMPTS = 8
BACKOFF_S = 0.5
MAX_BACKOFF_S = 15.0


def conflict_types() -> tuple[type[BaseException], ...]:
    """The exceptions of a Delta commit that lost to a concurrent one (importing them installs PySpark's
    conversion of the Java exceptions)."""
    import delta.exceptions as dx

    return (
        dx.DeltaConcurrentModificationException,
        dx.ConcurrentWriteException,
        dx.MetadataChangedException,
        dx.ProtocolChangedException,
        dx.ConcurrentAppendException,
        dx.ConcurrentDeleteReadException,
        dx.ConcurrentDeleteDeleteException,
        dx.ConcurrentTransactionException,
    )


def with_retry(
    commit: Callable[[], T],
    what: str,
    attempts: int = ATTEMPTS,
    backoff_s: float = BACKOFF_S,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run an idempotent `commit`; on a concurrent-commit conflict wait (exponential, jittered) and run it again.

    Each retry is logged; after `attempts` conflicts the error is one line naming `what` (the table's path).
    """
    conflicts = conflict_types()
    for attempt in range(1, attempts + 1):
        try:
            return commit()
        except conflicts as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if attempt == attempts:
                raise IotlakeError(
                    what, f"concurrent writes kept conflicting, gave up after {attempts} attempts: {reason}"
                ) from exc
            delay = min(MAX_BACKOFF_S, backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
            log.warning(
                "%s: commit conflict (%s), retry %d of %d in %.2fs",
                what,
                type(exc).__name__,
                attempt,
                attempts - 1,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")


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


def _register(spark: SparkSession, lake_root: str, entry: Table) -> None:
    """`tables.register`, tolerating another thread of this session registering the same table meanwhile."""
    from pyspark.errors import AnalysisException

    try:
        register(spark, lake_root, entry)
    except AnalysisException:
        if not spark.catalog.tableExists(entry.qualified):
            raise


def _commit_info(job: str, metadata: Mapping[str, object] | None) -> str:
    """The Delta commit's userMetadata: the job, the iotlake version, the user, the caller's metadata and a
    unique write id (so the writer finds its own commit among concurrent ones)."""
    info = {
        "job": job,
        "iotlake": __version__,
        "user": getpass.getuser(),
        "write": uuid.uuid4().hex,
        **(metadata or {}),
    }
    return json.dumps(info, sort_keys=True, default=str)


def _own_commit(spark: SparkSession, path: str, info: str | None = None) -> tuple[int, dict[str, str]]:
    """Version and operation metrics of this writer's commit (the newest with userMetadata `info`), else of
    the newest commit."""
    from delta.tables import DeltaTable

    history = DeltaTable.forPath(spark, path).history(20 if info else 1)
    rows = history.select("version", "userMetadata", "operationMetrics").collect()
    own = [r for r in rows if info is not None and r["userMetadata"] == info] or rows[:1]
    newest = max(own, key=lambda r: r["version"])
    return int(newest["version"]), dict(newest["operationMetrics"] or {})


def _latest_version(spark: SparkSession, path: str, info: str | None = None) -> int:
    """The version of this writer's commit (the newest with userMetadata `info`), else the newest version."""
    return _own_commit(spark, path, info)[0]


def _described(df: DataFrame, entry: Table) -> DataFrame:
    """`df` with its column comments (sql/columns.yaml) in the schema: the write stores them in the Delta log,
    so no `ALTER TABLE` commit is needed. A table's existing comments are kept by Delta's schema merge."""
    from iotlake.catalog import SQL_DIR, load_column_comments

    comments = load_column_comments(SQL_DIR)
    wanted = {}
    for field in df.schema.fields:
        comment = comments.comment(entry.name, field.name)
        if comment is not None and field.metadata.get("comment") != comment:
            wanted[field.name] = {**field.metadata, "comment": comment}
    if not wanted:
        return df
    return df.select(
        [F.col(f"`{c}`").alias(c, metadata=wanted[c]) if c in wanted else F.col(f"`{c}`") for c in df.columns]
    )


def _comment_new_table(spark: SparkSession, entry: Table, lake_root: str, version: int) -> None:
    """Set the table comment once, on the commit that created the table (path-addressed: never another lake's
    table of the same name)."""
    if version != 0 or not entry.comment:
        return
    from iotlake.catalog import _ident, _literal

    path = entry.path(lake_root)
    statement = f"ALTER TABLE delta.{_ident(path)} SET TBLPROPERTIES ('comment' = {_literal(entry.comment)})"
    with_retry(lambda: spark.sql(statement), path)


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
    return write_table_counted(df, entry, lake_root, scope, job, metadata)[0]


def write_table_counted(
    df: DataFrame,
    entry: Table,
    lake_root: str,
    scope: Scopes,
    job: str,
    metadata: Mapping[str, object] | None = None,
) -> tuple[int, int]:
    """`write_table`, returning (version, rows written) from the commit's metrics: the rows now in `scope`,
    without a second pass over the table."""
    spark = df.sparkSession
    path = entry.path(lake_root)
    info = _commit_info(job, metadata)
    writer = (
        _described(df, entry)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", replace_predicate(scope))
        # New columns (a model or the field catalog grew) are added to the table; types never change silently.
        .option("mergeSchema", "true")
        .option("userMetadata", info)
    )
    if entry.partition_by:
        writer = writer.partitionBy(*entry.partition_by)
    with_retry(lambda: writer.save(path), path)
    version, metrics = _own_commit(spark, path, info)
    _comment_new_table(spark, entry, lake_root, version)
    _register(spark, lake_root, entry)
    log.info("wrote %s version %s (%s)", entry.qualified, version, replace_predicate(scope))
    return version, int(metrics.get("numOutputRows", 0))


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
    spark = df.sparkSession
    path = entry.path(lake_root)
    info = _commit_info(job, metadata)
    with_retry(lambda: _merge(_described(df, entry), entry, lake_root, keys, info), path)
    version = _latest_version(spark, path, info)
    _comment_new_table(spark, entry, lake_root, version)
    _register(spark, lake_root, entry)
    log.info("merged into %s version %s", entry.qualified, version)
    return version


def _merge(df: DataFrame, entry: Table, lake_root: str, keys: Sequence[str], info: str) -> None:
    """One MERGE commit of `df` by `keys` (or the table's first commit, when it does not exist yet)."""
    from delta.tables import DeltaTable

    spark, path = df.sparkSession, entry.path(lake_root)
    if not exists(spark, lake_root, entry):
        # append, not create: a concurrent creator makes this commit conflict (retried as a MERGE), not fail
        df.write.format("delta").mode("append").option("userMetadata", info).save(path)
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


def ensure_table(spark: SparkSession, entry: Table, lake_root: str, schema: str) -> None:
    """Create an empty table when it does not exist yet, so models that read it (e.g. a cache) can run."""

    path = entry.path(lake_root)

    def create() -> bool:
        if exists(spark, lake_root, entry):
            return False
        empty = _described(spark.createDataFrame([], schema), entry).write.format("delta")
        empty.partitionBy(*entry.partition_by).mode("append").save(path)
        return True

    if with_retry(create, path):
        _comment_new_table(spark, entry, lake_root, _latest_version(spark, path))
    _register(spark, lake_root, entry)


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
    info = _commit_info(job, metadata)
    writer = (
        _described(df, entry)
        .write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .option("userMetadata", info)
    )
    if entry.partition_by:
        writer = writer.partitionBy(*entry.partition_by)
    with_retry(lambda: writer.save(path), path)
    version = _latest_version(spark, path, info)
    _comment_new_table(spark, entry, lake_root, version)
    _register(spark, lake_root, entry)
    log.info("replaced %s: version %s", entry.qualified, version)
    return version
