"""What the lake's tables mean, stored where every Spark client sees it: comments in each Delta log.

Table comments come from the table registry (a model file's first header line, lib/iotlake/lake/tables.py for
the others); column comments from `sql/columns.yaml` and, for the tshark columns of `packets`, the field
catalog. The writer stores them with the data (column comments in the written schema, the table comment on
the commit that creates a table); `annotate` brings an older lake's tables up to date with `ALTER TABLE`,
only where they differ.
`register_script` is the SQL that registers the path-based tables in any session (spark-sql, pyspark).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pyspark.sql import SparkSession

from iotlake.config import read_yaml
from iotlake.errors import ConfigError
from iotlake.lake import tables
from iotlake.lake.tables import DATABASE, Table

log = logging.getLogger(__name__)

COLUMNS_FILE = "columns.yaml"
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"  # the project's sql/, where columns.yaml lives
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


@dataclass(frozen=True)
class ColumnComments:
    """Column comments by table, with `common` ones for columns that mean the same everywhere."""

    common: dict[str, str] = field(default_factory=dict)
    tables: dict[str, dict[str, str]] = field(default_factory=dict)

    def comment(self, table: str, column: str) -> str | None:
        """The comment of `table.column`: the table's own entry first, then the common one; exact before glob."""
        for entries in (self.tables.get(table, {}), self.common):
            if column in entries:
                return entries[column]
            for pattern, text in entries.items():
                if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(column, pattern):
                    return text
        return None


def _packet_docs() -> dict[str, str]:
    from iotlake.capture.fields import FIELDS

    return {f.column: f"{f.doc} (tshark {f.tshark})" if f.doc else f"tshark {f.tshark}" for f in FIELDS}


@lru_cache(maxsize=4)
def _load(path: Path, mtime: float) -> ColumnComments:
    data = read_yaml(path) or {}
    if not isinstance(data, dict) or not set(data) <= {"common", "tables"}:
        raise ConfigError(path, "expected the keys 'common' and 'tables'")
    common = {str(k): str(v) for k, v in (data.get("common") or {}).items()}
    by_table = {
        str(t): {str(k): str(v) for k, v in (cols or {}).items()}
        for t, cols in (data.get("tables") or {}).items()
    }
    packets = by_table.setdefault("packets", {})
    for column, doc in _packet_docs().items():
        packets.setdefault(column, doc)
    return ColumnComments(common, by_table)


def load_column_comments(sql_dir: Path) -> ColumnComments:
    """The column comments of `sql/columns.yaml` plus the field catalog's docs for `packets`."""
    path = sql_dir / COLUMNS_FILE
    if not path.is_file():
        return ColumnComments(tables={"packets": _packet_docs()})
    return _load(path, path.stat().st_mtime)


@dataclass(frozen=True)
class Annotation:
    """What `annotate` found and did for one table."""

    table: str
    table_comment_set: bool
    columns_set: tuple[str, ...]
    missing: tuple[str, ...]


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _registered_here(spark: SparkSession, lake_root: str, entry: Table) -> bool:
    """True when the session's `iotlake.<name>` is the table of this lake root."""
    registered = spark.sql(f"DESCRIBE DETAIL {entry.qualified}").first()["location"]
    return registered.removeprefix("file:").rstrip("/") == location(lake_root, entry).removeprefix(
        "file:"
    ).rstrip("/")


def _current_comment(spark: SparkSession, entry: Table) -> str | None:
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {entry.qualified}").where("col_name = 'Comment'").collect()
    return rows[0]["data_type"] if rows else None


def annotate(
    spark: SparkSession, lake_root: str, sql_dir: Path, entries: Iterable[Table] | None = None
) -> list[Annotation]:
    """Set the table and column comments of existing tables where they differ (one commit for each kind).

    `entries` defaults to every declared table; tables not in the lake are skipped.
    """
    from iotlake import __version__
    from iotlake.lake.writer import _commit_info, with_retry

    comments = load_column_comments(sql_dir)
    done = []
    previous = spark.conf.get(USER_METADATA, None)
    spark.conf.set(USER_METADATA, _commit_info("catalog_comments", {"iotlake_version": __version__}))
    try:
        for entry in entries if entries is not None else tables.all_tables():
            if not tables.exists(spark, lake_root, entry):
                continue
            tables.register(spark, lake_root, entry)
            if not _registered_here(spark, lake_root, entry):
                # `iotlake.<name>` names another lake's table in this session (a contribution's staging lake
                # while the main lake is registered): ALTER TABLE by name would change that lake.
                log.debug("%s is registered for another lake; comments not set", entry.qualified)
                continue
            set_table = False
            if entry.comment and _current_comment(spark, entry) != entry.comment:
                statement = (
                    f"ALTER TABLE {entry.qualified} SET TBLPROPERTIES ('comment' = {_literal(entry.comment)})"
                )
                with_retry(lambda statement=statement: spark.sql(statement), entry.path(lake_root))
                set_table = True
            schema = spark.read.format("delta").load(entry.path(lake_root)).schema
            changes, missing = [], []
            for column in schema.fields:
                wanted = comments.comment(entry.name, column.name)
                if wanted is None:
                    missing.append(column.name)
                elif column.metadata.get("comment") != wanted:
                    changes.append(f"{_ident(column.name)} COMMENT {_literal(wanted)}")
            if changes:
                statement = f"ALTER TABLE {entry.qualified} ALTER COLUMN {', '.join(changes)}"
                with_retry(lambda statement=statement: spark.sql(statement), entry.path(lake_root))
            if missing:
                log.info("%s: no comment in sql/%s for %s", entry.qualified, COLUMNS_FILE, ", ".join(missing))
            done.append(
                Annotation(entry.name, set_table, tuple(c.split("`")[1] for c in changes), tuple(missing))
            )
    finally:
        if previous is None:
            spark.conf.unset(USER_METADATA)
        else:
            spark.conf.set(USER_METADATA, previous)
    return done


def location(lake_root: str, entry: Table) -> str:
    """The table's absolute location: a local lake root is resolved, a Hadoop URI kept as it is."""
    path = entry.path(lake_root)
    return path if "://" in path or path.startswith("file:") else str(Path(path).resolve())


def register_script(spark: SparkSession, lake_root: str) -> str:
    """SQL that registers every table of the lake as `iotlake.<name>` in any Delta-enabled session."""
    lines = [
        f"-- iotlake tables of {lake_root}: run in spark-sql (-i/-f) or pyspark with the Delta configuration.",
        f"CREATE DATABASE IF NOT EXISTS {DATABASE};",
    ]
    for entry in tables.all_tables():
        if tables.exists(spark, lake_root, entry):
            lines.append(
                f"CREATE TABLE IF NOT EXISTS {entry.qualified} USING delta "
                f"LOCATION {_literal(location(lake_root, entry))};"
            )
    return "\n".join(lines) + "\n"
