"""The dataset registry `conf/datasets.csv`: read, validate, update, and mirror it to the `datasets` table.

The CSV is the source of truth (`name,directory,source,licence,contributor,status`); the Delta table
`datasets` is its copy in the lake, so SQL can join datasets with their provenance. Statuses:

- ``builtin``: shipped with iotlake (the demo);
- ``registered``: a folder named here, ingested with `iotlake ingest <name>`;
- ``promoted``: a contribution that passed the quality gate and is in the lake;
- ``quarantined``: a contribution that failed the gate (its report is under `<lake>/_quarantine/<name>/`).
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from dataclasses import astuple, dataclass, fields, replace
from pathlib import Path

from pyspark.sql import SparkSession

from iotlake.errors import ConfigError
from iotlake.lake import tables
from iotlake.lake.writer import overwrite_table
from iotlake.names import check_name

COLUMNS = ("name", "directory", "source", "licence", "contributor", "status")
REQUIRED = ("name", "directory")
STATUSES = ("builtin", "registered", "promoted", "quarantined")
DATASETS_SCHEMA = (
    "dataset STRING, directory STRING, source STRING, licence STRING, contributor STRING, status STRING"
)


@dataclass(frozen=True)
class Dataset:
    """One row of the registry."""

    name: str
    directory: str
    source: str = ""
    licence: str = ""
    contributor: str = ""
    status: str = "registered"


def read_registry(path: Path) -> list[Dataset]:
    """The registry's rows in file order; no file, no rows. Errors name the file and line."""
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ConfigError(f"{path}:1", f"missing column(s) {', '.join(missing)}")
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise ConfigError(
            f"{path}:1", f"unknown column(s) {', '.join(unknown)} (known: {', '.join(COLUMNS)})"
        )
    entries: list[Dataset] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
        name = cells.get("name", "")
        if not name or name.startswith("#"):
            continue
        where = f"{path}:{line}"
        check_name("dataset", name, where)
        if name in seen:
            raise ConfigError(where, f"duplicate dataset {name!r} (first on line {seen[name]})")
        if not cells.get("directory"):
            raise ConfigError(where, f"dataset {name!r}: empty directory")
        status = cells.get("status") or "registered"
        if status not in STATUSES:
            raise ConfigError(where, f"unknown status {status!r} for {name!r}: use {', '.join(STATUSES)}")
        seen[name] = line
        entries.append(
            Dataset(
                name=name,
                directory=cells["directory"],
                source=cells.get("source", ""),
                licence=cells.get("licence", ""),
                contributor=cells.get("contributor", ""),
                status=status,
            )
        )
    return entries


def write_registry(path: Path, entries: list[Dataset]) -> None:
    """Write the registry atomically (a temporary file renamed over the old one)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(astuple(e) for e in entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(out.getvalue())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def find(entries: list[Dataset], name: str) -> Dataset | None:
    """The registry row of `name`, if any."""
    return next((e for e in entries if e.name == name), None)


def upsert(path: Path, entry: Dataset) -> list[Dataset]:
    """Add `entry` to the registry or replace the row of the same name (keeping its place); the new rows."""
    entries = read_registry(path)
    if find(entries, entry.name):
        entries = [entry if e.name == entry.name else e for e in entries]
    else:
        entries.append(entry)
    write_registry(path, entries)
    return entries


def set_status(path: Path, name: str, status: str) -> list[Dataset]:
    """Change the status of a registered dataset; the new rows."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    entries = read_registry(path)
    entry = find(entries, name)
    if entry is None:
        raise ConfigError(path, f"unknown dataset {name!r}")
    return upsert(path, replace(entry, status=status))


def mirror(spark: SparkSession, lake_root: str, entries: list[Dataset], job: str = "registry") -> int:
    """Replace the lake's `datasets` table with the registry rows in one commit; returns the version."""
    rows = [astuple(e) for e in entries]
    frame = spark.createDataFrame(rows, DATASETS_SCHEMA)
    names = [f.name for f in fields(Dataset)]
    return overwrite_table(frame, tables.table("datasets"), lake_root, job, {"columns": names})


_DATASET_TERM = re.compile(r"dataset\s*(?:=\s*'([^']*)'|IN\s*\(([^)]*)\))", re.IGNORECASE)


def _predicate_datasets(predicate: str) -> set[str]:
    """Dataset names a `replaceWhere` predicate of lake/writer names (`dataset = 'a'`, `dataset IN (…)`)."""
    names: set[str] = set()
    for single, listed in _DATASET_TERM.findall(predicate):
        if single:
            names.add(single)
        names.update(re.findall(r"'([^']*)'", listed))
    return names


def table_versions(
    spark: SparkSession, lake_root: str, sql_dir: Path | None = None
) -> dict[str, dict[str, int]]:
    """Per dataset: for every lake table, the latest Delta version that wrote that dataset's rows.

    Read from each table's history (the `replaceWhere` predicates that lake/writer commits), so no data
    file is scanned. `sql_dir` declares the model tables first (the bronze ones always are).
    """
    from delta.tables import DeltaTable

    from iotlake.models.runner import declare, discover

    if sql_dir is not None:
        declare(discover(sql_dir))

    found: dict[str, dict[str, int]] = {}
    for entry in tables.all_tables():
        if entry.name == "datasets" or not tables.exists(spark, lake_root, entry):
            continue
        history = DeltaTable.forPath(spark, entry.path(lake_root)).history()
        for row in history.select("version", "operationParameters").collect():
            predicate = (row["operationParameters"] or {}).get("predicate") or ""
            for name in _predicate_datasets(predicate):
                versions = found.setdefault(name, {})
                versions[entry.name] = max(versions.get(entry.name, -1), int(row["version"]))
    return found
