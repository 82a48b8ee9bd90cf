"""The quality gate for contributed datasets: stage, validate with Great Expectations, promote or quarantine.

`contribute(spark, config, folder)`:

1. validates the folder's `dataset.yaml` (quality/manifest.py);
2. ingests its captures into a staging lake `<lake>/_staging/<dataset>` with the ordinary ingest job and a
   copy of the config whose lake root is the staging folder, so no table of the main lake is written;
3. validates the staging bronze tables, read by path, against the suites in `expectations/` (one per table)
   as one GX Checkpoint, with values only the gate knows passed as expectation parameters (capinfos packet
   counts) or as columns next to the data (each capture's window);
4. on success promotes: each staging table's rows of the dataset replace the dataset's rows in the main lake
   (one `replaceWhere` commit per table), the models are rebuilt for the dataset, and the registry status
   flips to `promoted` last;
5. on failure quarantines: the staging lake moves to `<lake>/_quarantine/<dataset>/staging` next to the GX
   Data Docs (`data_docs/index.html`) and `summary.txt`; the main lake is not touched.

A `kind: pms-files` contribution (the earlier Passive-Mode-Study tool's per-capture data files) takes the same
steps with its own staging and suites: its files are parsed by imports/pms.py (the code `iotlake import-pms`
uses) into the gold tables `interval_volumes`, `protocol_usage`, `endpoint_usage` and bronze `devices` of the
staging lake, every row keeping its file and line (`source_file`, `source_line`); those four tables are
validated (expectations/interval_volumes.json, protocol_usage.json, endpoint_usage.json, devices.json), with
identity columns the gate adds (Tx + Rx, LAN + WAN, the device's MAC), so a failure names the file and line
of each unexpected row; promotion writes the four tables without the provenance columns and builds no model
(there are no packets).

Delta has no multi-table transactions: a promotion interrupted half-way leaves some tables with the new rows
and the registry not yet `promoted`; running `contribute` again replaces the same partitions and finishes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from iotlake import pipeline
from iotlake.capture.extract import CaptureSpec
from iotlake.config import Config
from iotlake.errors import ConfigError, IotlakeError
from iotlake.imports import pms
from iotlake.lake import tables
from iotlake.lake.writer import write_table
from iotlake.quality import pseudonymise, registry
from iotlake.quality.manifest import (
    PMS_FILES,
    Manifest,
    capture_file,
    load_manifest,
    manifest_path,
    pms_folders,
    site_devices,
)

log = logging.getLogger(__name__)

SUITES = ("packets", "captures", "devices")
STAGED_TABLES = ("packets", "captures", "devices", "sites", "site_prefixes", "site_rules")
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
# kind captures: failures name the unexpected rows' contributed file (capture or MAC map) and frame number
CAPTURE_RESULT_FORMAT = {**RESULT_FORMAT, "unexpected_index_column_names": ["source_file", "frame_no"]}
DOCS_SITE = "quarantine"
# kind pms-files: the tables its import writes, one suite each; failures name the unexpected rows' file:line
PMS_TABLES = (*pms.GOLD_TABLES, "devices")
PMS_SUITES = PMS_TABLES
PMS_RESULT_FORMAT = {**RESULT_FORMAT, "unexpected_index_column_names": ["source_file", "source_line"]}
SCREEN_FORMAT = {"result_format": "BOOLEAN_ONLY"}
JOB = "contribute"
EXAMPLES = 3  # unexpected values listed per failed expectation in summary.txt


@dataclass(frozen=True)
class Failure:
    """One failed check: the table (or `ingest`), the suite file, the expectation, column(s) and what was seen."""

    table: str
    source: str
    expectation: str
    column: str
    detail: str


@dataclass
class GateReport:
    """What `contribute` did: promoted, or quarantined with the failed checks."""

    dataset: str
    manifest: Path
    promoted: bool = False
    captures: int = 0
    packets: int = 0
    expectations: int = 0
    failures: list[Failure] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    models: int = 0
    quarantine: Path | None = None
    pseudonymised: bool = False
    kind: str = "captures"
    files: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    flagged: int = 0

    @property
    def summary(self) -> Path | None:
        """The quarantine's summary.txt, when the contribution was quarantined."""
        return self.quarantine / "summary.txt" if self.quarantine else None

    def lines(self) -> list[str]:
        """A short human summary for the terminal."""
        if self.promoted:
            versions = ", ".join(f"{k} v{v}" for k, v in self.versions.items())
            if self.kind == PMS_FILES:
                rows = ", ".join(f"{k} {n}" for k, n in self.rows.items())
                return [
                    f"{self.dataset}: {self.expectations} expectations passed; promoted {self.files} data "
                    f"file(s): {rows} rows, {self.flagged} `*` row(s) flagged ({versions})"
                ]
            return [
                f"{self.dataset}: {self.expectations} expectations passed; promoted {self.captures} capture(s), "
                f"{self.packets} packets ({versions}); {self.models} model(s) rebuilt"
                + ("; MACs and local IPs pseudonymised" if self.pseudonymised else "")
            ]
        head = f"{self.dataset}: quarantined, {len(self.failures)} check(s) failed"
        if self.expectations:
            head += f" of {self.expectations} expectations"
        out = [head]
        out += [f"  {f.table}: {f.expectation} [{f.column}] {f.detail}" for f in self.failures[:10]]
        if len(self.failures) > 10:
            out.append(f"  … and {len(self.failures) - 10} more")
        out.append(f"report: {self.summary}  data docs: {self.quarantine / 'data_docs' / 'index.html'}")
        return out

    def error(self) -> IotlakeError:
        """The one-line error of a quarantined contribution, pointing at summary.txt."""
        return IotlakeError(
            self.summary or self.manifest,
            f"contribution {self.dataset!r} quarantined: {len(self.failures)} check(s) failed; "
            "the main lake is unchanged",
        )


class _RootedConfig(Config):
    """A copy of a config whose lake root is fixed (not even IOTLAKE_LAKE moves it): the staging lake."""

    def __init__(self, base: Config, lake_root: str) -> None:
        self.__dict__.update(base.__dict__)
        self.settings = base.settings.model_copy(update={"lake_root": lake_root})
        self._fixed_root = lake_root

    @property
    def lake_root(self) -> str:
        return self._fixed_root


@dataclass(frozen=True)
class _Checks:
    """What the checkpoint validates: the staged frames, expectation parameters, suites and result format."""

    frames: dict[str, DataFrame]
    parameters: dict[str, Any]
    suites: tuple[str, ...]
    result_format: dict[str, Any]
    screen: bool = False  # validate pass/fail first, details only for what failed (_screen_then_detail)


# --------------------------------------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------------------------------------


def contribute(
    spark: SparkSession,
    config: Config,
    path: Path,
    progress: bool = True,
    key_file: Path | None = None,
    pseudonymised: bool = False,
) -> GateReport:
    """Validate a contributed folder and promote it into the lake, or quarantine it with a report.

    Manifest problems raise a one-line `IotlakeError`; a failed gate returns a report with `promoted`
    False (see `GateReport.error`). With `pseudonymised` (or `pseudonymise: true` in the manifest) MACs and
    local IPs are replaced by keyed HMAC values (quality/pseudonymise.py) before validation.
    """
    manifest_file = manifest_path(Path(path))
    manifest = load_manifest(manifest_file)
    dataset = manifest.dataset
    prepared = pseudonymisation_key(config, manifest_file, manifest, key_file, pseudonymised)
    key = prepared[0] if prepared else None
    root = _local_root(config)
    _check_name_free(spark, config, manifest_file, dataset)
    staging, quarantine = root / "_staging" / dataset, root / "_quarantine" / dataset
    report = GateReport(dataset, manifest_file, pseudonymised=key is not None, kind=manifest.kind)
    shutil.rmtree(staging, ignore_errors=True)
    staged = _RootedConfig(config, str(staging))
    context = _gx_context(quarantine / "data_docs")
    imported = manifest.kind == PMS_FILES
    if imported:
        # the gold tables' entries, so the main lake's gold tables keep their names while staging writes
        from iotlake.models.runner import declare, discover

        declare(discover(config.project_dir / "sql"))
    with _main_catalog(spark, config.lake_root):
        if imported:
            checks = _stage_pms(spark, config, staged, manifest_file, manifest, report)
        else:
            checks = _stage_captures(spark, config, staged, manifest_file, manifest, report, progress, key)
        if checks is not None and checks.screen:
            report.expectations, report.failures = _screen_then_detail(context, config, checks)
        elif checks is not None:
            results = validate(
                context,
                config.project_dir / "expectations",
                checks.frames,
                checks.parameters,
                checks.suites,
                checks.result_format,
            )
            report.expectations = sum(len(r.results) for r in results.run_results.values())
            report.failures = failures(results, config.project_dir)
    if report.failures:
        _quarantine(report, context, staging, quarantine, manifest, config)
        return report
    if imported:
        report.versions = promote(
            spark, config, dataset, staged.lake_root, manifest_file, PMS_TABLES, imported=True
        )
    else:
        report.versions = promote(spark, config, dataset, staged.lake_root, manifest_file)
        report.models = len(pipeline.build(spark, config, [dataset]))
    entries = registry.upsert(config.registry_path, _entry(config, manifest, manifest_file, "promoted"))
    registry.mirror(spark, config.lake_root, entries, job="contribute")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(quarantine, ignore_errors=True)
    report.promoted = True
    return report


def _stage_captures(
    spark: SparkSession,
    config: Config,
    staged: Config,
    manifest_file: Path,
    manifest: Manifest,
    report: GateReport,
    progress: bool,
    key: bytes | None,
) -> _Checks | None:
    """Ingest the captures into the staging lake; the checks of their bronze tables, or None after a failure."""
    dataset = manifest.dataset
    try:
        plans = _plans(manifest_file, manifest)
        if key is None:
            ingested = pipeline.ingest(spark, staged, dataset, plans, progress)
        else:
            ingested = _ingest_pseudonymised(spark, config, staged, dataset, plans, progress, key)
        report.captures, report.packets = ingested.captures, ingested.packets
        counts = capinfos_counts(manifest_file, manifest)
    except (IotlakeError, PySparkException) as exc:
        report.failures = [
            Failure("ingest", "pipeline.ingest", "ingest into the staging lake", "-", _first_line(exc))
        ]
        return None
    frames = _frames(spark, staged.lake_root, manifest, counts)
    return _Checks(frames, _parameters(counts), SUITES, CAPTURE_RESULT_FORMAT, screen=True)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _stage_pms(
    spark: SparkSession,
    config: Config,
    staged: Config,
    manifest_file: Path,
    manifest: Manifest,
    report: GateReport,
) -> _Checks | None:
    """Import the data files into the staging lake (rows keep their file and line); the checks, or None."""
    folder, macs = pms_folders(manifest_file, manifest)
    try:
        plan = pms.plan_import(folder, macs)
        imported = pms.import_rows(config, manifest.dataset, plan, manifest_file.parent, checked=False)
        metadata = {"contribution": str(manifest_file.resolve())}
        pms.write_import(spark, staged.lake_root, config.project_dir / "sql", imported, JOB, True, metadata)
    except (IotlakeError, PySparkException) as exc:
        report.failures = [
            Failure(
                "import", "imports.pms", "import the data files into the staging lake", "-", _first_line(exc)
            )
        ]
        return None
    report.files = len(plan.files)
    report.rows = {name: len(rows) for name, rows in imported.rows.items()}
    report.flagged = imported.flagged
    return _Checks(_pms_frames(spark, staged.lake_root), {}, PMS_SUITES, PMS_RESULT_FORMAT, screen=True)


def pseudonymisation_key(
    config: Config, manifest_file: Path, manifest: Manifest, key_file: Path | None, requested: bool
) -> tuple[bytes, bool] | None:
    """(key, created) when the option or the manifest asks for pseudonymisation (a missing key file is created)."""
    if requested and manifest.kind == PMS_FILES:
        raise ConfigError(manifest_file, f"--pseudonymise is not supported for kind {PMS_FILES}")
    if not (requested or manifest.pseudonymise):
        if key_file is not None:
            raise ConfigError(
                key_file,
                "a key file is only used with --pseudonymise (or `pseudonymise: true` in dataset.yaml)",
            )
        return None
    if key_file is None:
        raise ConfigError(
            manifest_file, "pseudonymise: a key file is needed (--key-file FILE, created when missing)"
        )
    return pseudonymise.prepare_key(key_file, config.lake_root)


def _ingest_pseudonymised(
    spark: SparkSession,
    config: Config,
    staged: Config,
    dataset: str,
    plans: list[pipeline.SitePlan],
    progress: bool,
    key: bytes,
) -> pipeline.IngestReport:
    """Ingest into `<staging>/_raw`, copy the tables pseudonymised into the staging lake, drop the raw copy.

    The staging lake (and a quarantine made of it) then never holds an original MAC or local IP.
    """
    raw = _RootedConfig(config, str(Path(staged.lake_root) / "_raw"))
    before = _registered(spark)
    try:
        ingested = pipeline.ingest(spark, raw, dataset, plans, progress)
        pseudonymise.pseudonymise_staging(
            spark, raw.lake_root, staged.lake_root, dataset, key, config.project_dir / "sql", STAGED_TABLES
        )
    finally:
        # names the ingest registered point into the raw copy: drop them before its files go
        for name in sorted(_registered(spark) - before):
            spark.sql(f"DROP TABLE IF EXISTS {tables.DATABASE}.{name}")
        shutil.rmtree(raw.lake_root, ignore_errors=True)
    return ingested


def _local_root(config: Config) -> Path:
    root = config.lake_root
    if root.startswith("file:"):
        root = root.removeprefix("file:").removeprefix("//")
    elif "://" in root:
        raise IotlakeError(
            root, "contribute stages and quarantines on a local file system: use a local --lake for the gate"
        )
    return Path(root)


def _check_name_free(spark: SparkSession, config: Config, manifest_file: Path, dataset: str) -> None:
    """A contribution may replace an earlier contribution, never a built-in or registered dataset."""
    entry = registry.find(registry.read_registry(config.registry_path), dataset)
    if entry is not None and entry.status not in ("promoted", "quarantined"):
        raise ConfigError(
            manifest_file,
            f"dataset: {dataset!r} is already a {entry.status} dataset of {config.registry_path}; "
            "choose another name",
        )
    if entry is None and dataset in pipeline.datasets_in_lake(spark, config):
        raise ConfigError(
            manifest_file,
            f"dataset: {dataset!r} is already in the lake (ingested outside the gate); choose another name",
        )
    if entry is None and is_imported(spark, config, dataset):
        raise ConfigError(
            manifest_file,
            f"dataset: {dataset!r} is already in the lake (imported outside the gate, `iotlake import-pms`); "
            "choose another name",
        )


def is_imported(spark: SparkSession, config: Config, dataset: str) -> bool:
    """True when a gold table of the main lake holds imported rows (source = imported) of `dataset`."""
    from iotlake.models.runner import declare, discover

    declare(discover(config.project_dir / "sql"))
    for name in pms.GOLD_TABLES:
        entry = tables.table(name)
        if not tables.exists(spark, config.lake_root, entry):
            continue
        frame = spark.read.format("delta").load(entry.path(config.lake_root))
        if "source" in frame.columns:
            # the tables are partitioned by dataset: only that partition's files are read
            rows = frame.where((F.col("dataset") == dataset) & (F.col("source") == pms.SOURCE))
            if not rows.isEmpty():
                return True
    return False


def _plans(manifest_file: Path, manifest: Manifest) -> list[pipeline.SitePlan]:
    plans = []
    for site in manifest.sites:
        devices, site_config = site_devices(manifest_file, site)
        plan = pipeline.SitePlan(site.name, devices, site_config)
        for capture in site.captures:
            path = capture_file(manifest_file, capture)
            plan.captures.append(
                CaptureSpec(
                    manifest.dataset, site.name, capture.name, path, tuple(sorted(capture.labels.items()))
                )
            )
        plans.append(plan)
    return plans


def capinfos_counts(manifest_file: Path, manifest: Manifest) -> dict[tuple[str, str], int]:
    """Packets per (site, capture) as capinfos counts them in the files (independent of tshark's export)."""
    counts = {}
    for site in manifest.sites:
        for capture in site.captures:
            path = capture_file(manifest_file, capture)
            done = subprocess.run(
                ["capinfos", "-M", "-c", "-T", "-r", str(path)], capture_output=True, text=True, check=False
            )
            # A truncated file exits 1 but still reports the packets read before the cut.
            lines = done.stdout.strip().splitlines()
            try:
                counts[(site.name, capture.name)] = int(lines[-1].rsplit("\t", 1)[1])
            except (IndexError, ValueError):
                problem = (done.stderr.strip().splitlines() or ["no packet count"])[0]
                raise IotlakeError(path, f"capinfos: {problem}") from None
    return counts


def _ts(seconds: float | None) -> dt.datetime | None:
    # Time-zone aware, so PySpark converts it as UTC rather than as the machine's local time.
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


def _frames(
    spark: SparkSession, staging_root: str, manifest: Manifest, counts: Mapping[tuple[str, str], int]
) -> dict[str, DataFrame]:
    """The staging tables, read by path, with the columns the suites compare against."""

    def load(name: str) -> DataFrame:
        return spark.read.format("delta").load(tables.table(name).path(staging_root))

    keys = ["dataset", "site", "capture"]
    captures = load("captures")
    declared = spark.createDataFrame(
        [
            (manifest.dataset, site.name, capture.name, _ts(capture.start), _ts(capture.end), capture.file)
            for site in manifest.sites
            for capture in site.captures
        ],
        "dataset STRING, site STRING, capture STRING, start TIMESTAMP, end TIMESTAMP, source_file STRING",
    )
    # The window of each capture: the manifest's start/end when given, else the capture's own first/last frame.
    windows = captures.select(*keys, "first_ts", "last_ts").join(declared, keys, "left")
    windows = windows.select(
        *keys,
        F.coalesce("start", "first_ts").alias("window_start"),
        F.coalesce("end", "last_ts").alias("window_end"),
        "source_file",
    )
    packets = load("packets").join(F.broadcast(windows), keys, "left")
    captures = captures.join(F.broadcast(declared.select(*keys, "source_file")), keys, "left").withColumn(
        "capture_packets", F.format_string("%s/%s=%d", F.col("site"), F.col("capture"), F.col("packets"))
    )
    maps = spark.createDataFrame(
        [(site.name, site.macs) for site in manifest.sites], "site STRING, source_file STRING"
    )
    return {"packets": packets, "captures": captures, "devices": load("devices").join(maps, "site", "left")}


def _with_lan_wan(
    frame: DataFrame, group: Sequence[str], row: Sequence[str], sums: Mapping[str, str]
) -> DataFrame:
    """ALL rows get the sums of the LAN and WAN rows with the same keys (0 when none) in new columns.

    Only where the format implies the identity: the group (a device, or a device and IP version) has LAN or
    WAN rows at all; other rows get NULL. `sums` maps a count column to the new column's name.
    """
    split = frame.where(F.col("scope").isin("LAN", "WAN"))
    totals = split.groupBy(*group, *row).agg(*(F.sum(c).alias(alias) for c, alias in sums.items()))
    has_split = split.select(*group).distinct().withColumn("_has_split", F.lit(True))
    joined = frame.join(totals, [*group, *row], "left").join(has_split, list(group), "left")
    applies = (F.col("scope") == "ALL") & F.col("_has_split").isNotNull()
    return joined.withColumns(
        {alias: F.when(applies, F.coalesce(F.col(alias), F.lit(0))) for alias in sums.values()}
    ).drop("_has_split")


def _pms_frames(spark: SparkSession, staging_root: str) -> dict[str, DataFrame]:
    """The staged tables of a pms-files contribution with the identity columns the suites compare.

    `tx_rx_*` = Tx + Rx per row; `lan_wan_*` on ALL rows = the LAN and WAN rows' sums (interval_volumes per
    device and interval, protocol_usage per device, IP version, protocol and address); `device_mac` = the
    device's MAC in its site's map (NULL when the device is not there).
    """

    def load(name: str) -> DataFrame:
        return spark.read.format("delta").load(tables.table(name).path(staging_root))

    devices = load("devices")
    macs = devices.select("dataset", "site", "device", F.col("mac").alias("device_mac"))
    owner = ["dataset", "site", "device"]
    device = [*tables.CAPTURE_KEYS, "device", "profile"]

    def tx_rx(frame: DataFrame, unit: str) -> DataFrame:
        return frame.withColumns(
            {
                f"tx_rx_{unit}": F.col(f"tx_{unit}") + F.col(f"rx_{unit}"),
                "tx_rx_bytes": F.col("tx_bytes") + F.col("rx_bytes"),
            }
        ).join(macs, owner, "left")

    intervals = _with_lan_wan(
        tx_rx(load("interval_volumes"), "frames"),
        device,
        ["interval_start"],
        {"frames": "lan_wan_frames", "bytes": "lan_wan_bytes"},
    )
    protocols = _with_lan_wan(
        tx_rx(load("protocol_usage"), "packets"),
        [*device, "ip_version"],
        ["protocol", "remote_ip"],
        {"packets": "lan_wan_packets", "bytes": "lan_wan_bytes"},
    )
    endpoints = tx_rx(load("endpoint_usage"), "packets")
    return {
        "interval_volumes": intervals,
        "protocol_usage": protocols,
        "endpoint_usage": endpoints,
        "devices": devices,
    }


def _parameters(counts: Mapping[tuple[str, str], int]) -> dict[str, Any]:
    """Expectation parameters: the capinfos counts per capture (as `site/capture=n`) and in total."""
    return {
        "capinfos_capture_packets": sorted(f"{s}/{c}={n}" for (s, c), n in counts.items()),
        "capinfos_packets": sum(counts.values()),
    }


# --------------------------------------------------------------------------------------------------------
# Great Expectations
# --------------------------------------------------------------------------------------------------------


def _gx_context(docs_dir: Path) -> Any:
    """An in-memory GX context (no gx/ folder, no analytics, no progress bars) with one Data Docs site."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    project = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={DOCS_SITE: site},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=project)


def load_suite(path: Path, only: Sequence[tuple[str, Mapping[str, Any]]] | None = None) -> Any:
    """An ExpectationSuite from its JSON file in expectations/ ({name, meta, expectations: [{type, kwargs}]}).

    With `only`, just the expectations matching one of its (type, kwargs) pairs (all when one is not found).
    """
    import great_expectations as gx

    if not path.is_file():
        raise IotlakeError(path, "expectation suite not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        expectations = data["expectations"]
        if only is not None:
            kept = [e for e in expectations if any(_same_expectation(e, t, k) for t, k in only)]
            expectations = kept if len(kept) >= len(only) else expectations
        return gx.ExpectationSuite(name=data["name"], expectations=expectations, meta=data.get("meta") or {})
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise IotlakeError(path, f"invalid expectation suite ({exc})") from None


def _same_expectation(entry: Mapping[str, Any], kind: str, kwargs: Mapping[str, Any]) -> bool:
    """True when a suite file's entry is the expectation GX ran as `kind` with `kwargs` (GX adds defaults)."""
    return entry.get("type") == kind and all(kwargs.get(k) == v for k, v in entry.get("kwargs", {}).items())


def _screen_then_detail(context: Any, config: Config, checks: _Checks) -> tuple[int, list[Failure]]:
    """(expectations run, failures): every suite pass/fail only, then the failed expectations with details.

    The details (unexpected values with their file and line) cost Spark jobs per expectation; a contribution
    that passes never needs them, one that fails needs them for its failed expectations only. The second run
    goes into `context`, whose Data Docs a quarantine builds.
    """
    suites_dir = config.project_dir / "expectations"
    with tempfile.TemporaryDirectory(prefix="iotlake-gx-") as scratch:  # a context whose docs are never built
        screened = validate(
            _gx_context(Path(scratch)),
            suites_dir,
            checks.frames,
            checks.parameters,
            checks.suites,
            SCREEN_FORMAT,
        )
    expectations = sum(len(r.results) for r in screened.run_results.values())
    failed: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for result in screened.run_results.values():
        for item in result.results:
            if not item.success:
                ran = item.expectation_config
                failed.setdefault(result.suite_name, []).append((ran.type, dict(ran.kwargs)))
    if not failed:
        return expectations, []
    suites = tuple(name for name in checks.suites if name in failed)
    results = validate(
        context, suites_dir, checks.frames, checks.parameters, suites, checks.result_format, failed
    )
    return expectations, failures(results, config.project_dir)


def _frames_checkpoint(**kwargs: Any) -> Any:
    """A GX Checkpoint that gives each validation definition its own DataFrame.

    GX 1.x passes one `batch_parameters` dict to every validation definition of a checkpoint, and a Spark
    dataframe asset takes its frame from that dict, so a checkpoint over several tables needs each
    definition's frame chosen by its asset name (pinned GX: 1.24).
    """
    from great_expectations.checkpoint import Checkpoint
    from great_expectations.compatibility.pydantic import PrivateAttr

    class FramesCheckpoint(Checkpoint):
        _frames: dict[str, DataFrame] = PrivateAttr(default_factory=dict)

        def _run_validation_definitions(  # type: ignore[override]
            self, batch_parameters: Any, expectation_parameters: Any, result_format: Any, run_id: Any
        ) -> dict[Any, Any]:
            results = {}
            for definition in self.validation_definitions:
                frame = self._frames[definition.data.data_asset.name]
                result = definition.run(
                    checkpoint_id=self.id,
                    batch_parameters={"dataframe": frame},
                    expectation_parameters=expectation_parameters,
                    result_format=_index_columns_in(result_format, frame),
                    run_id=run_id,
                )
                key = self._build_result_key(
                    validation_definition=definition, run_id=run_id, batch_identifier=result.batch_id
                )
                results[key] = result
            return results

    return FramesCheckpoint(**kwargs)


def _index_columns_in(result_format: Any, frame: DataFrame) -> Any:
    """`result_format` with only the provenance columns `frame` has (bronze captures have no frame number)."""
    if not isinstance(result_format, Mapping) or "unexpected_index_column_names" not in result_format:
        return result_format
    names = [c for c in result_format["unexpected_index_column_names"] if c in frame.columns]
    kept = {k: v for k, v in result_format.items() if k != "unexpected_index_column_names"}
    return {**kept, "unexpected_index_column_names": names} if names else kept


def validate(
    context: Any,
    suites_dir: Path,
    frames: Mapping[str, DataFrame],
    parameters: Mapping[str, Any],
    suites: Sequence[str] = SUITES,
    result_format: Mapping[str, Any] = RESULT_FORMAT,
    only: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]] | None = None,
) -> Any:
    """Run each of `suites` (files of `expectations/`) against its frame as one checkpoint; the CheckpointResult.

    `only` keeps, per suite, just the expectations it lists as (type, kwargs).
    """
    import great_expectations as gx

    source = context.data_sources.add_spark("staging")
    definitions = []
    for name in suites:
        keep = only.get(name) if only is not None else None
        suite = context.suites.add(load_suite(suites_dir / f"{name}.json", keep))
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
        definition = gx.ValidationDefinition(name=name, data=batch, suite=suite)
        definitions.append(context.validation_definitions.add(definition))
    checkpoint = _frames_checkpoint(
        name="contribution", validation_definitions=definitions, actions=[], result_format=dict(result_format)
    )
    checkpoint._frames = dict(frames)
    return checkpoint.run(expectation_parameters=dict(parameters))


def _value(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_value(v) for v in value) + ")"
    return repr(value) if isinstance(value, str) else str(value)


def _detail(result: Mapping[str, Any], kwargs: Mapping[str, Any], exception: Mapping[str, Any]) -> str:
    """What a failed expectation saw: counts and a few unexpected values, or the observed value."""
    if exception and exception.get("raised_exception"):
        message = str(exception.get("exception_message") or "").strip().splitlines()
        return f"error: {message[0] if message else 'exception'}"
    if "unexpected_count" in result and result.get("partial_unexpected_list") is not None:
        examples = ", ".join(_value(v) for v in result["partial_unexpected_list"][:EXAMPLES])
        found = (
            f"{result['unexpected_count']} of {result.get('element_count')} rows unexpected, e.g. {examples}"
        )
        return found + _where(result.get("partial_unexpected_index_list"))
    observed = result.get("observed_value")
    details = result.get("details") or {}
    mismatched = details.get("mismatched") if isinstance(details, Mapping) else None
    if isinstance(mismatched, Mapping):  # table columns: unexpected/missing names
        parts = [f"{k}: {', '.join(map(str, v))}" for k, v in mismatched.items() if v]
        return "; ".join(parts) or f"observed {observed}"
    expected = kwargs.get("value_set")
    if isinstance(observed, list) and isinstance(expected, list | set | tuple):
        extra = sorted(set(map(str, observed)) - set(map(str, expected)))[:EXAMPLES]
        missing = sorted(set(map(str, expected)) - set(map(str, observed)))[:EXAMPLES]
        return f"observed but not expected: {', '.join(extra) or '-'}; expected but missing: {', '.join(missing) or '-'}"
    bounds = [f"{k} {kwargs[k]}" for k in ("min_value", "max_value") if kwargs.get(k) is not None]
    return f"observed {_value(observed)}" + (f" (expected {', '.join(bounds)})" if bounds else "")


def _where(rows: Any) -> str:
    """` in file:line, …` (data files) or ` in file frame N, …` (captures) for unexpected rows that carry their
    provenance, else nothing."""
    if not isinstance(rows, list):
        return ""
    places = []
    for row in rows:
        if isinstance(row, Mapping) and row.get("source_file"):
            line, frame = row.get("source_line"), row.get("frame_no")
            place = str(row["source_file"])
            place += f":{line}" if line else f" frame {frame}" if frame else ""
            if place not in places:
                places.append(place)
    return f" in {', '.join(places[:EXAMPLES])}" if places else ""


def _columns(kwargs: Mapping[str, Any]) -> str:
    if kwargs.get("column"):
        return str(kwargs["column"])
    if kwargs.get("column_list"):
        return ", ".join(kwargs["column_list"])
    pair = [kwargs[k] for k in ("column_A", "column_B") if kwargs.get(k)]
    return ", ".join(pair) if pair else "(table)"


def failures(results: Any, project_dir: Path) -> list[Failure]:
    """The failed expectations of a CheckpointResult, in suite order."""
    found = []
    for result in results.run_results.values():
        suite_file = f"expectations/{result.suite_name}.json"
        for item in result.results:
            if item.success:
                continue
            config = item.expectation_config
            kwargs = dict(config.kwargs)
            exception = item.exception_info or {}
            if "raised_exception" not in exception:  # one entry per metric when several raised
                exception = next(iter(exception.values()), {}) if exception else {}
            found.append(
                Failure(
                    result.suite_name,
                    suite_file,
                    config.type,
                    _columns(kwargs),
                    _detail(item.result, kwargs, exception),
                )
            )
    return found


# --------------------------------------------------------------------------------------------------------
# Promotion and quarantine
# --------------------------------------------------------------------------------------------------------


def promote(
    spark: SparkSession,
    config: Config,
    dataset: str,
    staging_root: str,
    manifest_file: Path,
    names: Sequence[str] = STAGED_TABLES,
    imported: bool = False,
) -> dict[str, int]:
    """Replace the dataset's rows of every staged table (`names`) in the main lake with the staging rows.

    One commit per table; returns the new version of each. `imported` rows (kind pms-files) lose their
    provenance columns and take the main table's column order and types.
    """
    versions = {}
    for name in names:
        entry = tables.table(name)
        frame = spark.read.format("delta").load(entry.path(staging_root)).where(F.col("dataset") == dataset)
        if imported:
            frame = pms.conform(pms.without_provenance(frame), entry, config.lake_root)
        versions[name] = write_table(
            frame,
            entry,
            config.lake_root,
            {"dataset": dataset},
            "contribute",
            {"contribution": str(manifest_file.resolve())},
        )
    return versions


def _entry(config: Config, manifest: Manifest, manifest_file: Path, status: str) -> registry.Dataset:
    folder = manifest_file.resolve().parent
    try:
        directory = str(folder.relative_to(config.project_dir))
    except ValueError:
        directory = str(folder)
    return registry.Dataset(
        name=manifest.dataset,
        directory=directory,
        source=manifest.source,
        licence=manifest.licence,
        contributor=manifest.contributor,
        status=status,
    )


def _quarantine(
    report: GateReport, context: Any, staging: Path, quarantine: Path, manifest: Manifest, config: Config
) -> None:
    """Keep the staging lake, the manifest, Data Docs and summary.txt under `<lake>/_quarantine/<dataset>`."""
    shutil.rmtree(quarantine, ignore_errors=True)
    quarantine.mkdir(parents=True)
    if staging.exists():
        shutil.move(str(staging), str(quarantine / "staging"))
    shutil.copy2(report.manifest, quarantine / "dataset.yaml")
    context.build_data_docs(site_names=[DOCS_SITE])
    report.quarantine = quarantine
    (quarantine / "summary.txt").write_text(summary_text(report), encoding="utf-8")
    # The registry remembers a new contribution as quarantined; an earlier promoted one keeps its status (its
    # rows in the lake are unchanged). The `datasets` table is a lake table: it is not written here.
    entries = registry.read_registry(config.registry_path)
    if registry.find(entries, manifest.dataset) is None:
        registry.upsert(config.registry_path, _entry(config, manifest, report.manifest, "quarantined"))
    log.warning("contribution %s quarantined in %s", report.dataset, quarantine)


def summary_text(report: GateReport) -> str:
    """summary.txt: the failed checks, one block each, with the table, suite file, column(s) and values."""
    assert report.quarantine is not None
    checked = f" of {report.expectations} expectations" if report.expectations else ""
    lines = [
        f"contribution: {report.dataset} (manifest {report.manifest})",
        f"result: quarantined, {len(report.failures)} check(s) failed{checked}; the main lake is unchanged",
        f"staging lake: {report.quarantine / 'staging'}",
        f"data docs: {report.quarantine / 'data_docs' / 'index.html'}",
        "",
    ]
    for failure in report.failures:
        lines += [
            f"FAILED {failure.table} ({failure.source}): {failure.expectation}",
            f"  column: {failure.column}",
            f"  {failure.detail}",
            "",
        ]
    return "\n".join(lines)


@contextlib.contextmanager
def _main_catalog(spark: SparkSession, main_root: str) -> Iterator[None]:
    """Keep `iotlake.<table>` names on the main lake while a job writes the staging lake.

    Writers register each table they write under its name when the name is free; the main lake's existing
    tables take their names first, and names the staging job registered (tables the main lake lacks) are
    dropped afterwards (external tables: only the catalog entry goes, not the files).
    """
    tables.register_all(spark, main_root)
    before = _registered(spark)
    try:
        yield
    finally:
        for name in sorted(_registered(spark) - before):
            spark.sql(f"DROP TABLE IF EXISTS {tables.DATABASE}.{name}")


def _registered(spark: SparkSession) -> set[str]:
    if not spark.catalog.databaseExists(tables.DATABASE):
        return set()
    return {t.name for t in spark.catalog.listTables(tables.DATABASE) if not t.isTemporary}
