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
from collections.abc import Iterator, Mapping
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
from iotlake.lake import tables
from iotlake.lake.writer import write_table
from iotlake.quality import pseudonymise, registry
from iotlake.quality.manifest import Manifest, capture_file, load_manifest, manifest_path, site_devices

log = logging.getLogger(__name__)

SUITES = ("packets", "captures", "devices")
STAGED_TABLES = ("packets", "captures", "devices", "sites", "site_prefixes", "site_rules")
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
DOCS_SITE = "quarantine"
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

    @property
    def summary(self) -> Path | None:
        """The quarantine's summary.txt, when the contribution was quarantined."""
        return self.quarantine / "summary.txt" if self.quarantine else None

    def lines(self) -> list[str]:
        """A short human summary for the terminal."""
        if self.promoted:
            versions = ", ".join(f"{k} v{v}" for k, v in self.versions.items())
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
    report = GateReport(dataset, manifest_file, pseudonymised=key is not None)
    shutil.rmtree(staging, ignore_errors=True)
    staged = _RootedConfig(config, str(staging))
    context = _gx_context(quarantine / "data_docs")
    with _main_catalog(spark, config.lake_root):
        try:
            plans = _plans(manifest_file, manifest)
            if key is None:
                ingested = pipeline.ingest(spark, staged, dataset, plans, progress)
            else:
                ingested = _ingest_pseudonymised(spark, config, staged, dataset, plans, progress, key)
            report.captures, report.packets = ingested.captures, ingested.packets
            counts = capinfos_counts(manifest_file, manifest)
        except (IotlakeError, PySparkException) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            report.failures = [
                Failure("ingest", "pipeline.ingest", "ingest into the staging lake", "-", first)
            ]
        if not report.failures:
            frames = _frames(spark, staged.lake_root, manifest, counts)
            parameters = _parameters(counts)
            results = validate(context, config.project_dir / "expectations", frames, parameters)
            report.expectations = sum(len(r.results) for r in results.run_results.values())
            report.failures = failures(results, config.project_dir)
    if report.failures:
        _quarantine(report, context, staging, quarantine, manifest, config)
        return report
    report.versions = promote(spark, config, dataset, staged.lake_root, manifest_file)
    report.models = len(pipeline.build(spark, config, [dataset]))
    entries = registry.upsert(config.registry_path, _entry(config, manifest, manifest_file, "promoted"))
    registry.mirror(spark, config.lake_root, entries, job="contribute")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(quarantine, ignore_errors=True)
    report.promoted = True
    return report


def pseudonymisation_key(
    config: Config, manifest_file: Path, manifest: Manifest, key_file: Path | None, requested: bool
) -> tuple[bytes, bool] | None:
    """(key, created) when the option or the manifest asks for pseudonymisation (a missing key file is created)."""
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
            (manifest.dataset, site.name, capture.name, _ts(capture.start), _ts(capture.end))
            for site in manifest.sites
            for capture in site.captures
        ],
        "dataset STRING, site STRING, capture STRING, start TIMESTAMP, end TIMESTAMP",
    )
    # The window of each capture: the manifest's start/end when given, else the capture's own first/last frame.
    windows = captures.select(*keys, "first_ts", "last_ts").join(declared, keys, "left")
    windows = windows.select(
        *keys,
        F.coalesce("start", "first_ts").alias("window_start"),
        F.coalesce("end", "last_ts").alias("window_end"),
    )
    packets = load("packets").join(F.broadcast(windows), keys, "left")
    captures = captures.withColumn(
        "capture_packets", F.format_string("%s/%s=%d", F.col("site"), F.col("capture"), F.col("packets"))
    )
    return {"packets": packets, "captures": captures, "devices": load("devices")}


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


def load_suite(path: Path) -> Any:
    """An ExpectationSuite from its JSON file in expectations/ ({name, meta, expectations: [{type, kwargs}]})."""
    import great_expectations as gx

    if not path.is_file():
        raise IotlakeError(path, "expectation suite not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return gx.ExpectationSuite(
            name=data["name"], expectations=data["expectations"], meta=data.get("meta") or {}
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise IotlakeError(path, f"invalid expectation suite ({exc})") from None


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
                result = definition.run(
                    checkpoint_id=self.id,
                    batch_parameters={"dataframe": self._frames[definition.data.data_asset.name]},
                    expectation_parameters=expectation_parameters,
                    result_format=result_format,
                    run_id=run_id,
                )
                key = self._build_result_key(
                    validation_definition=definition, run_id=run_id, batch_identifier=result.batch_id
                )
                results[key] = result
            return results

    return FramesCheckpoint(**kwargs)


def validate(
    context: Any, suites_dir: Path, frames: Mapping[str, DataFrame], parameters: Mapping[str, Any]
) -> Any:
    """Run every suite of `expectations/` against its frame as one checkpoint; the CheckpointResult."""
    import great_expectations as gx

    source = context.data_sources.add_spark("staging")
    definitions = []
    for name in SUITES:
        suite = context.suites.add(load_suite(suites_dir / f"{name}.json"))
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
        definition = gx.ValidationDefinition(name=name, data=batch, suite=suite)
        definitions.append(context.validation_definitions.add(definition))
    checkpoint = _frames_checkpoint(
        name="contribution", validation_definitions=definitions, actions=[], result_format=RESULT_FORMAT
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
        return (
            f"{result['unexpected_count']} of {result.get('element_count')} rows unexpected, e.g. {examples}"
        )
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
    spark: SparkSession, config: Config, dataset: str, staging_root: str, manifest_file: Path
) -> dict[str, int]:
    """Replace the dataset's rows of every bronze table in the main lake with the staging rows.

    One commit per table; returns the new version of each.
    """
    versions = {}
    for name in STAGED_TABLES:
        entry = tables.table(name)
        frame = spark.read.format("delta").load(entry.path(staging_root)).where(F.col("dataset") == dataset)
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
