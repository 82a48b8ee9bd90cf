"""Re-derive the Passive-Mode-Study summary files from an imported dataset and compare them with the published ones.

The SQL in `sql/reproduce/pms/` (one file per published table) reads the imported gold tables through three
session views made here: `pms_devices` (site, device → the summaries' display name; a second unit takes its
first unit's name), `pms_captures` (the captures behind the summaries: not the auxiliary US1-Home capture) and
`pms_groups` (which sites each `*-unique-protos-per-mac.csv` covers). Cells are compared per key within 1e-6
relative; every deviation gets the cause reference passive-mode-study §7 gives for it, or "unexplained".
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from iotlake.config import Config
from iotlake.errors import IotlakeError
from iotlake.export import pms as volumes_format
from iotlake.export import pms_endpoints, pms_protocols
from iotlake.imports.pms import SOURCE, ImportReport, data_folder, import_pms, read_rows
from iotlake.lake import tables
from iotlake.models.runner import Model, declare, discover, parse_model, register_functions

RELATIVE_TOLERANCE = 1e-6
REPRODUCE_DIR = Path("reproduce") / "pms"

# Reference §6.1: the device names of the files and the display names of the summaries.
DISPLAY_NAMES: dict[tuple[str, str], str] = {
    ("FR", "DLink"): "D-Link Camera (FR)",
    ("FR", "EchoDot3"): "Echo Dot 3 (FR)",
    ("FR", "EchoShow5"): "Echo Show 5 (FR)",
    ("FR", "GoogleHome"): "Google Speaker (FR)",
    ("FR", "PhilipsBridge"): "Hue Bridge (FR)",
    ("FR", "MaxcioSmartStrip"): "Maxcio Power Strip (FR)",
    ("FR", "Maxcio2ndSmartStrip"): "Maxcio Power Strip (FR)",
    ("FR", "NestCamera"): "Nest Camera (FR)",
    ("FR", "NestMini"): "Nest Mini (FR)",
    ("FR", "NestThermostat"): "Nest Thermostat (FR)",
    ("FR", "SonyTV"): "Sony TV (FR)",
    ("FR", "TPLink"): "TP-Link Plug (FR)",
    ("FR", "TP2ndLink"): "TP-Link Plug (FR)",
    ("FR", "TPLinkLight"): "TP-Link Light (FR)",
    ("US1", "AmazonLight"): "Amazon Light (US1)",
    ("US1", "DreamGlassAir"): "DreamGlass Air (US1)",
    ("US1", "EchoDot5"): "Echo Dot 5 (US1)",
    ("US1", "Govee"): "Govee Kettle (US1)",
    ("US1", "PhillipsBridge"): "Hue Bridge (US1)",
    ("US1", "Litokam"): "Litokam Camera (US1)",
    ("US1", "MetaquestPro"): "Metaquest Pro (US1)",
    ("US1", "GoogleNestMini"): "Nest Mini (US1)",
    ("US1", "Netvue"): "Netvue Camera (US1)",
    ("US1", "TPLink"): "TP-Link Plug (US1)",
    ("US2", "HoloLens2"): "HoloLens 2 (US2)",
    ("US2", "MagicLeap"): "MagicLeap (US2)",
    ("US2", "MetaQuest1"): "Metaquest 1 (US2)",
    ("US2", "MetaQuest2"): "Metaquest 2 (US2)",
    ("US2", "Roborock"): "Roborock S7 (US2)",
}
# The captures the published summaries were made from (§7.1–7.3); the auxiliary US1-Home capture is not one.
SUMMARY_CAPTURES = (
    ("FR", "Capture1"),
    ("FR", "Capture2"),
    ("US1", "Capture1"),
    ("US1", "Capture2"),
    ("US2", "Headsets"),
    ("US2", "RoboRock-Alone"),
)
# Which sites each published unique-protocols file covers.
UNIQUE_GROUPS = {
    "All": ("FR", "US1", "US2"),
    "FR-Combined": ("FR",),
    "US1-Combined": ("US1",),
    "US2": ("US2",),
}
# §7.2: MACs whose per-capture protocol files were edited after the summaries were made (commit 2470ccb).
EDITED_AFTER_SUMMARY = {
    "C0:84:7D:2E:9C:86": "DreamGlassAir",
    "D4:F5:47:82:0E:C6": "GoogleNestMini",
    "90:31:4B:71:B2:7B": "Litokam",
    "AC:84:C6:20:FE:4B": "TP-Link (US1)",
}
CAUSE_EDITED = "per-capture protocol files edited after the summary was made (commit 2470ccb, reference §7.2)"
CAUSE_EXCEL = "published value Excel-rounded to 3 significant digits (reference §6.2, §6.4)"
CAUSE_UNEXPLAINED = "unexplained"


@dataclass(frozen=True)
class Published:
    """One published summary table: where it is, the SQL model behind it, its key columns and header."""

    file: str
    model: str
    keys: tuple[str, ...]
    header: tuple[str, ...]
    notes: str = ""
    sets: bool = False
    printed: bool = False  # Excel-saved: 9 decimals or 6 significant digits, so compare at that precision too


def published_tables() -> list[Published]:
    """The published tables `iotlake reproduce pms` re-derives, with the export module's headers."""
    unique = tuple(pms_protocols.UNIQUE_HEADER)
    per_capture = "per-capture classes summed over the device's captures (§7.3)"
    return [
        Published(
            "1hour-stats/overall-combined-stats.csv",
            "overall_combined_stats",
            ("Device",),
            tuple(volumes_format.stats_header()),
        ),
        Published(
            "1hour-stats/overall-combined-distribution.csv",
            "overall_combined_distribution",
            ("Device",),
            tuple(volumes_format.distribution_header()),
        ),
        Published(
            "protocols/All-proto-distributions.csv",
            "all_proto_distributions",
            ("MAC", "Type"),
            tuple(pms_protocols.DISTRIBUTION_HEADER),
            "`*` rows counted as the earlier script did",
        ),
        *(
            Published(
                f"protocols/{group}-unique-protos-per-mac.csv",
                "unique_protos_per_mac",
                ("MAC", "Type"),
                unique,
                "lists compared as sets",
                sets=True,
            )
            for group in UNIQUE_GROUPS
        ),
        Published(
            "endpoints/endpoint_type_distribution.csv",
            "endpoint_type_distribution",
            ("Device",),
            tuple(pms_endpoints.class_distribution_header()),
            per_capture,
            printed=True,
        ),
        Published(
            "endpoints/local_endpoint_distribution.csv",
            "local_endpoint_distribution",
            ("SourceDevice", "TargetDevice"),
            tuple(pms_endpoints.local_distribution_header()),
            f"{per_capture}; 'Local (Google Home)' merged into 'Local (Google Speaker)' (§4.6, §7.3)",
            printed=True,
        ),
        Published(
            "endpoints/endpoint_protocol_distribution.csv",
            "endpoint_protocol_distribution",
            ("Device", "ProtocolType"),
            tuple(pms_endpoints.protocol_distribution_header()),
            f"{per_capture}; protocols from each capture's ALL-scope files (§7.3)",
            printed=True,
        ),
    ]


@dataclass(frozen=True)
class Deviation:
    """One cell (or row) that differs from the published file, and why."""

    file: str
    key: str
    column: str
    published: str
    reproduced: str
    cause: str


@dataclass
class TableComparison:
    """The comparison of one published table."""

    file: str
    cells: int = 0
    matches: int = 0
    printed: int = 0
    deviations: list[Deviation] = field(default_factory=list)
    notes: str = ""

    @property
    def exact(self) -> bool:
        """True when every cell matches."""
        return not self.deviations


def summary_views(spark: SparkSession) -> None:
    """Create the session views the reproduce SQL joins: pms_devices, pms_captures, pms_groups."""
    spark.createDataFrame(
        [(site, device, display) for (site, device), display in DISPLAY_NAMES.items()],
        "site string, device string, display string",
    ).createOrReplaceTempView("pms_devices")
    spark.createDataFrame(list(SUMMARY_CAPTURES), "site string, capture string").createOrReplaceTempView(
        "pms_captures"
    )
    spark.createDataFrame(
        [(name, site) for name, sites in UNIQUE_GROUPS.items() for site in sites],
        "file_name string, site string",
    ).createOrReplaceTempView("pms_groups")


def reproduce_models(sql_dir: Path) -> dict[str, Model]:
    """The reproduce SQL files by name (headers checked by the models runner's parser)."""
    folder = sql_dir / REPRODUCE_DIR
    return {path.stem: parse_model(path, "reproduce") for path in sorted(folder.glob("*.sql"))}


def reproduce(spark: SparkSession, lake_root: str, sql_dir: Path, dataset: str) -> dict[str, list[dict]]:
    """Run every reproduce SQL file for `dataset`; rows per model as dicts keyed by the published header."""
    declare(discover(sql_dir))
    register_functions(spark, sql_dir)
    for name in ("interval_volumes", "protocol_usage", "endpoint_usage", "devices"):
        entry = tables.table(name)
        if not tables.exists(spark, lake_root, entry):
            raise IotlakeError(
                entry.path(lake_root), f"table {name} does not exist: run `iotlake import-pms`"
            )
        tables.register(spark, lake_root, entry)
    if not has_imported(spark, lake_root, dataset):
        raise IotlakeError(lake_root, f"dataset {dataset!r} has no imported rows: run `iotlake import-pms`")
    summary_views(spark)
    results: dict[str, list[dict]] = {}
    for name, model in reproduce_models(sql_dir).items():
        args = {"dataset": dataset} if "dataset" in model.parameters else {}
        results[name] = [row.asDict() for row in spark.sql(model.sql, args=args).collect()]
    return results


def read_published(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a published CSV (CRLF, BOM and Excel formatting tolerated)."""
    if not path.is_file():
        raise IotlakeError(path, "published file not found")
    rows = read_rows(path.read_bytes().decode("utf-8-sig"))
    if not rows:
        raise IotlakeError(path, "empty file")
    header = [c.strip() for c in rows[0][1]]
    return header, [[c.strip() for c in row] for _, row in rows[1:]]


def _number(text: object) -> float | None:
    try:
        return float(str(text))
    except ValueError:
        return None


def close(published: float, reproduced: float, tolerance: float = RELATIVE_TOLERANCE) -> bool:
    """Equal within `tolerance` relative to the larger magnitude (exactly equal when both are 0)."""
    if math.isnan(published) or math.isnan(reproduced):
        return math.isnan(published) and math.isnan(reproduced)
    return abs(published - reproduced) <= tolerance * max(abs(published), abs(reproduced))


_NUMBER = re.compile(r"[-+]?(?P<int>\d*)(?:\.(?P<frac>\d*))?(?:[eE](?P<exp>[-+]?\d+))?")


def excel_rounded(published: str) -> bool:
    """True for Excel's 3-significant-digit display (`6.68E-05`): information the file no longer holds."""
    match = _NUMBER.fullmatch(published.strip())
    if not match or match.group("exp") is None:
        return False
    digits = (match.group("int") + (match.group("frac") or "")).lstrip("0")
    return len(digits) <= 3


def at_printed_precision(published: str, reproduced: float) -> bool:
    """True when `reproduced`, rounded as the published text is printed, gives the published value.

    The endpoint summaries print 9 decimals (`0.000130196`) or 6 significant digits (`1.76618E-05`), coarser
    than 1e-6 relative for small shares; this is the file's number format, not a different result.
    """
    match = _NUMBER.fullmatch(published.strip())
    value = _number(published)
    if not match or value is None or excel_rounded(published):
        return False
    if match.group("exp") is not None:
        digits = len((match.group("int") + (match.group("frac") or "")).lstrip("0")) or 1
        rounded = float(f"{reproduced:.{digits - 1}e}")
    else:
        rounded = round(reproduced, len(match.group("frac") or ""))
    return close(value, rounded, 1e-12)


def cause_of(table: Published, key: Mapping[str, str], published: str, reproduced: object) -> str:
    """The reference's explanation for one deviating cell, or "unexplained"."""
    mac = key.get("MAC", "")
    if table.model in ("all_proto_distributions", "unique_protos_per_mac") and mac in EDITED_AFTER_SUMMARY:
        return CAUSE_EDITED
    number = _number(reproduced)
    if (
        number is not None
        and excel_rounded(published)
        and close(_number(published) or 0.0, float(f"{number:.3g}"))
    ):
        return CAUSE_EXCEL
    return CAUSE_UNEXPLAINED


def _same(published: str, reproduced: object, sets: bool) -> tuple[bool, bool]:
    """(exact, at printed precision): exact is within 1e-6 relative, integers equal, sets equal."""
    if sets:
        return _as_set(published) == frozenset(reproduced or []), False
    number, theirs = _number(reproduced), _number(published)
    if number is None or theirs is None:
        return published == _cell(reproduced), False
    if isinstance(reproduced, int) and re.fullmatch(r"-?\d+", published):
        return int(published) == reproduced, False
    if close(theirs, number):
        return True, False
    return False, at_printed_precision(published, number)


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ",".join(value)
    return "" if value is None else str(value)


def _as_set(text: str) -> frozenset[str]:
    return frozenset(p.strip() for p in text.split(",") if p.strip())


def compare_table(
    table: Published, header: Sequence[str], rows: list[list[str]], ours: list[dict]
) -> TableComparison:
    """Compare one published table with its reproduced rows, key by key and cell by cell."""
    result = TableComparison(table.file, notes=table.notes)
    if tuple(header) != table.header:
        result.deviations.append(
            Deviation(table.file, "header", "", ",".join(header), ",".join(table.header), CAUSE_UNEXPLAINED)
        )
    columns = [c for c in table.header if c not in table.keys]
    mine = {tuple(str(r[k]) for k in table.keys): r for r in ours}
    seen = set()
    for row in rows:
        record = dict(zip(header, row, strict=False))
        key = tuple(record.get(k, "") for k in table.keys)
        label = " / ".join(key)
        seen.add(key)
        reproduced = mine.get(key)
        if reproduced is None:
            result.cells += len(columns)
            result.deviations.append(
                Deviation(
                    table.file,
                    label,
                    "*",
                    "row",
                    "missing",
                    cause_of(table, dict(zip(table.keys, key, strict=True)), "", None),
                )
            )
            continue
        for column in columns:
            result.cells += 1
            text = record.get(column, "")
            value = reproduced.get(column)
            exact, printed = _same(text, value, table.sets)
            printed = printed and table.printed
            if exact:
                result.matches += 1
            elif printed:
                result.printed += 1
            else:
                cause = cause_of(table, dict(zip(table.keys, key, strict=True)), text, value)
                result.deviations.append(Deviation(table.file, label, column, text, _cell(value), cause))
    for key in mine:
        if key not in seen:
            result.deviations.append(
                Deviation(table.file, " / ".join(key), "*", "missing", "row", CAUSE_UNEXPLAINED)
            )
    return result


def compare(folder: Path, results: Mapping[str, list[dict]]) -> list[TableComparison]:
    """Compare every published table under `folder` (the study folder or its data/) with the reproduced rows."""
    data = data_folder(folder)
    out = []
    for table in published_tables():
        header, rows = read_published(data / table.file)
        ours = results.get(table.model, [])
        if table.model == "unique_protos_per_mac":
            group = Path(table.file).name.removesuffix("-unique-protos-per-mac.csv")
            ours = [r for r in ours if r["File"] == group]
        out.append(compare_table(table, header, rows, ours))
    return out


def write_reproduced(out_dir: Path, results: Mapping[str, list[dict]]) -> int:
    """Write the reproduced tables as CSV files in the published formats; returns the number of files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = 0
    for table in published_tables():
        ours = results.get(table.model, [])
        if table.model == "unique_protos_per_mac":
            group = Path(table.file).name.removesuffix("-unique-protos-per-mac.csv")
            ours = [r for r in ours if r["File"] == group]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(table.header)
        for row in sorted(ours, key=lambda r: tuple(str(r[k]) for k in table.keys)):
            writer.writerow([_cell(row.get(c)) for c in table.header])
        (out_dir / Path(table.file).name).write_text(buffer.getvalue())
        files += 1
    return files


def has_imported(spark: SparkSession, lake_root: str, dataset: str) -> bool:
    """True when `interval_volumes` holds imported rows of `dataset`."""
    entry = tables.table("interval_volumes")
    if not tables.exists(spark, lake_root, entry):
        return False
    frame = spark.read.format("delta").load(entry.path(lake_root))
    if "source" not in frame.columns:
        return False
    return not frame.where((F.col("source") == SOURCE) & (F.col("dataset") == dataset)).isEmpty()


def default_folder(project_dir: Path) -> Path:
    """The shared Passive-Mode-Study folder: `$IOTLAKE_SHARED_DATA/passive-mode-study` or ../shared/data/…."""
    shared = os.environ.get("IOTLAKE_SHARED_DATA")
    base = Path(shared) if shared else project_dir.resolve().parent / "shared" / "data"
    return base / "passive-mode-study"


@dataclass(frozen=True)
class Reproduction:
    """What `iotlake reproduce pms` did: the import (if it ran), the comparisons and the files written."""

    imported: ImportReport | None
    tables: list[TableComparison]
    written: int


def reproduce_pms(
    spark: SparkSession,
    config: Config,
    dataset: str,
    folder: Path,
    out_dir: Path | None = None,
    reimport: bool = False,
) -> Reproduction:
    """Import `folder` as `dataset` unless already imported, re-derive the summaries and compare them."""
    from iotlake.names import check_name

    check_name("dataset", dataset)
    declare(discover(config.project_dir / "sql"))
    imported = None
    if reimport or not has_imported(spark, config.lake_root, dataset):
        imported = import_pms(spark, config, dataset, folder)
    results = reproduce(spark, config.lake_root, config.project_dir / "sql", dataset)
    written = write_reproduced(out_dir, results) if out_dir else 0
    return Reproduction(imported, compare(folder, results), written)


def summary_rows(comparisons: Sequence[TableComparison]) -> list[tuple[str, int, int, int, int, str]]:
    """Per table: file, cells compared, exact, at printed precision, deviations, notes."""
    return [(c.file, c.cells, c.matches, c.printed, len(c.deviations), c.notes) for c in comparisons]
