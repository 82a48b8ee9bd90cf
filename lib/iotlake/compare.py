"""Cross-dataset comparison: the queries of sql/compare/ as views `iotlake_compare.<name>` over every dataset.

`register_views` creates the views (devices, models, datasets) in the session catalog next to the
`iotlake.<table>` tables they read, so `iotlake sql` and notebooks can query them; `devices`, `models` and
`dataset_pair` read them with the user's filters applied as DataFrame predicates (values never become SQL).
The views read the latest version of each gold table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from iotlake.config import Config
from iotlake.errors import IotlakeError
from iotlake.lake import tables
from iotlake.models.runner import declare, discover
from iotlake.names import check_name
from iotlake.query import Result, plain

DATABASE = "iotlake_compare"
FOLDER = "compare"
VIEWS = ("devices", "models", "datasets")  # in dependency order: models and datasets read devices
SOURCES = ("devices", "volume_stats", "protocol_type_distribution", "endpoint_class_distribution")
DEFAULT_PROFILE = "passive"
_HEADER = re.compile(r"^--\s*([a-z_]+):\s*(.*)$")


@dataclass(frozen=True)
class View:
    """One comparison query: its file, what a row is and its grain (from the header)."""

    name: str
    path: Path
    comment: str
    grain: str

    @property
    def qualified(self) -> str:
        """`iotlake_compare.<name>`."""
        return f"{DATABASE}.{self.name}"


def parse_view(path: Path) -> View:
    """Read a comparison query's header (`-- <name>: what a row is`, `-- grain: …`); errors name the file."""
    header: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _HEADER.match(line.strip())
        if not match:
            break
        header.setdefault(match.group(1), match.group(2).strip())
    if path.stem not in header:
        raise IotlakeError(path, f"the first line must be '-- {path.stem}: <what a row is>'")
    if "grain" not in header:
        raise IotlakeError(path, "header line '-- grain: …' is missing")
    return View(path.stem, path, header[path.stem], header["grain"])


def views(sql_dir: Path) -> list[View]:
    """The comparison views of `sql/compare/`, in dependency order."""
    return [parse_view(sql_dir / FOLDER / f"{name}.sql") for name in VIEWS]


def register_views(spark: SparkSession, lake_root: str, sql_dir: Path) -> list[View]:
    """Register the lake's tables and create (or replace) the `iotlake_compare.<name>` views over them."""
    declare(discover(sql_dir))
    tables.register_all(spark, lake_root)
    for name in SOURCES:
        entry = tables.table(name)
        if not tables.exists(spark, lake_root, entry):
            raise IotlakeError(entry.path(lake_root), f"table {name} does not exist yet: run `iotlake build`")
    found = views(sql_dir)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    for view in found:
        text = view.path.read_text(encoding="utf-8")
        spark.sql(f"CREATE OR REPLACE VIEW {view.qualified} AS\n{text}")
    return found


def _open(spark: SparkSession, config: Config, name: str, profile: str) -> DataFrame:
    if profile not in config.settings.profiles:
        known = ", ".join(config.settings.profiles)
        raise IotlakeError("--profile", f"unknown filter profile {profile!r} (profiles: {known})")
    register_views(spark, config.lake_root, config.project_dir / "sql")
    return spark.table(f"{DATABASE}.{name}").where(F.col("profile") == profile)


def _matches(column: str, value: str | None) -> Column:
    return F.lit(True) if value is None else F.lower(F.col(column)) == value.lower()


def _order(frame: DataFrame, *columns: str) -> DataFrame:
    keys = []
    for column in columns:
        keys += [F.col(column).isNull(), F.col(column) != "*", F.lower(F.col(column))]
    return frame.orderBy(*keys)


def devices(
    spark: SparkSession,
    config: Config,
    vendor: str | None = None,
    kind: str | None = None,
    profile: str = DEFAULT_PROFILE,
) -> DataFrame:
    """Every device of every dataset and site (or one vendor/kind), the same vendor and kind next to each other."""
    frame = _open(spark, config, "devices", profile).where(
        _matches("vendor", vendor) & _matches("kind", kind)
    )
    return _order(frame, "vendor", "kind", "dataset", "site", "device")


def models(
    spark: SparkSession,
    config: Config,
    vendor: str | None = None,
    kind: str | None = None,
    profile: str = DEFAULT_PROFILE,
) -> DataFrame:
    """Per vendor and kind (and per vendor, kind '*') at every site of every dataset: devices and their means."""
    frame = _open(spark, config, "models", profile).where(_matches("vendor", vendor) & _matches("kind", kind))
    return _order(frame, "vendor", "kind", "dataset", "site")


def dataset_pair(
    spark: SparkSession,
    config: Config,
    dataset_a: str,
    dataset_b: str,
    profile: str = DEFAULT_PROFILE,
    vendor: str | None = None,
) -> DataFrame:
    """Dataset b against dataset a: the whole datasets, each vendor and each vendor and kind."""
    for name in (dataset_a, dataset_b):
        check_name("dataset", name)
    if dataset_a == dataset_b:
        raise IotlakeError(dataset_b, "compare a dataset with another one, not with itself")
    frame = _open(spark, config, "datasets", profile)
    present = {
        r["dataset"] for r in spark.table(f"{DATABASE}.devices").select("dataset").distinct().collect()
    }
    for name in (dataset_a, dataset_b):
        if name not in present:
            known = ", ".join(sorted(present)) or "none"
            raise IotlakeError(
                config.lake_root, f"unknown dataset {name!r}: no rows in the gold tables (present: {known})"
            )
    frame = frame.where((F.col("dataset_a") == dataset_a) & (F.col("dataset_b") == dataset_b))
    if vendor is not None:
        frame = frame.where((F.col("vendor") == "*") | _matches("vendor", vendor))
    return _order(frame, "vendor", "kind")


def result(frame: DataFrame, title: str, digits: int | None = None) -> Result:
    """A comparison as a query Result (printed like `iotlake sql`); floats rounded to `digits` when given."""

    def value(v: object) -> object:
        v = plain(v)
        return round(v, digits) if digits is not None and isinstance(v, float) else v

    rows = [tuple(value(v) for v in row) for row in frame.collect()]
    return Result(title, list(frame.columns), rows)
