"""The batch jobs as functions: ingest captures into bronze, build the SQL models, run the demo.

The CLI and the spark-submit entry points call these; they hold the order of the steps, while capture/,
lake/ and models/ hold the work.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import get_args

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from iotlake import protocols
from iotlake.capture.extract import CaptureSpec, extract_captures
from iotlake.capture.probe import probe
from iotlake.config import (
    EVENT_DEVICES_FILE,
    Alignment,
    Config,
    Device,
    SiteConfig,
    find_captures,
    load_endpoint_rules,
    load_event_devices,
    load_macs,
    load_protocol_types,
    load_site,
)
from iotlake.enrich import overrides, owners
from iotlake.enrich.certificates import CERTIFICATE_SCHEMA, certificates_frame
from iotlake.errors import IotlakeError
from iotlake.export import pms, pms_endpoints, pms_protocols
from iotlake.export.pms import ExportReport
from iotlake.lake import bronze, tables
from iotlake.lake.writer import ensure_table, upsert_table, write_table_counted
from iotlake.models.runner import ModelRun, declare, discover, register_functions, run_models, with_upstream
from iotlake.names import check_name, safe_name
from iotlake.output import steps

log = logging.getLogger(__name__)


RULES_SCHEMA = "party STRING, vendor STRING, kind STRING, value STRING"
SITE_RULES_SCHEMA = f"dataset STRING, site STRING, {RULES_SCHEMA}"


@dataclass
class SitePlan:
    """What one site contributes to an ingest: its captures, MAC map and site config."""

    site: str
    devices: list[Device]
    config: SiteConfig
    captures: list[CaptureSpec] = field(default_factory=list)


@dataclass(frozen=True)
class IngestReport:
    """What an ingest wrote: captures and packets, truncated captures, and per table its version and rows."""

    dataset: str
    captures: int
    packets: int
    truncated: list[str]
    versions: dict[str, int]
    rows: dict[str, int] = field(default_factory=dict)


def capture_name(path: Path, root: Path | None = None) -> str:
    """A capture's name: its path below the site folder without the extension, made safe."""
    relative = path.relative_to(root) if root else Path(path.name)
    stem = str(relative)
    for suffix in (".gz", ".pcapng", ".pcap", ".cap"):
        stem = stem.removesuffix(suffix)
    return safe_name(stem.replace("/", "_"))


def plan_registered(config: Config, dataset: str) -> list[SitePlan]:
    """Plan the ingest of a registered dataset from its folder."""
    return plan_directory(config, dataset, config.dataset(dataset).directory)


def plan_directory(config: Config, dataset: str, directory: Path) -> list[SitePlan]:
    """Plan the ingest of a dataset folder: every site sub-folder and its captures (or, for a folder of
    event captures with a `devices.yaml`, see `plan_events`)."""
    check_name("dataset", dataset)
    if (directory / EVENT_DEVICES_FILE).is_file():
        return plan_events(dataset, directory)
    plans = []
    for site in config.sites_in(directory, dataset):
        check_name("site", site, str(directory / site))
        folder = directory / site
        plan = SitePlan(
            site,
            load_macs(config.macs_file(site, directory)),
            load_site(config.site_file(site, directory)),
        )
        for path in find_captures(folder):
            probe(path, plan.devices)  # a bad file (or a map that cannot attribute it) fails here, in a line
            plan.captures.append(CaptureSpec(dataset, site, capture_name(path, folder), path))
        plans.append(plan)
    return plans


EVENTS_SITE = "lab"


def plan_events(dataset: str, directory: Path) -> list[SitePlan]:
    """Plan the ingest of event captures laid out as `<Device>/<event>/*.pcap` beside `devices.yaml`.

    One site (`lab`); each capture is labelled with its device and event and named `<Device>_<event>_<file>`;
    the devices are those with folders, attributed by the IPv4 address `devices.yaml` gives them.
    """
    known = load_event_devices(directory / EVENT_DEVICES_FILE)
    plan = SitePlan(EVENTS_SITE, [], SiteConfig())
    for device_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        device = check_name("device", device_dir.name, str(device_dir))
        if device not in known:
            raise IotlakeError(device_dir, f"device {device!r} is not in {directory / EVENT_DEVICES_FILE}")
        plan.devices.append(known[device])
        for event_dir in sorted(p for p in device_dir.iterdir() if p.is_dir()):
            event = check_name("event", event_dir.name, str(event_dir))
            for path in find_captures(event_dir):
                probe(path, plan.devices)
                name = capture_name(path, directory)
                labels = (("device", device), ("event", event))
                plan.captures.append(CaptureSpec(dataset, EVENTS_SITE, name, path, labels))
    if not plan.captures:
        raise IotlakeError(directory, "no <device>/<event>/ folder with captures")
    return [plan]


def plan_files(
    config: Config, dataset: str, site: str, files: list[Path], macs: Path | None, site_file: Path | None
) -> list[SitePlan]:
    """Plan the ingest of capture files given on the command line into one dataset and site."""
    check_name("dataset", dataset)
    check_name("site", site)
    plan = SitePlan(
        site,
        load_macs(macs or config.macs_file(site)),
        load_site(site_file or config.site_file(site)),
    )
    names: dict[str, Path] = {}
    for path in files:
        probe(path, plan.devices)  # a bad file (or a map that cannot attribute it) fails here, in a line
        name = capture_name(path)
        if name in names:
            raise IotlakeError(path, f"capture name {name!r} is also the name of {names[name]}")
        names[name] = path
        plan.captures.append(CaptureSpec(dataset, site, name, path))
    return [plan]


def ingest(
    spark: SparkSession, config: Config, dataset: str, plans: list[SitePlan], progress: bool = True
) -> IngestReport:
    """Extract every planned capture with tshark and replace its partitions in the bronze tables."""
    lake_root = config.lake_root
    specs = [spec for plan in plans for spec in plan.captures]
    if not specs:
        raise IotlakeError(dataset, "no capture files to ingest")
    landing = Path(lake_root) / "_landing"
    extracts = extract_captures(
        spark,
        specs,
        landing,
        chunk_bytes=config.settings.chunk_bytes,
        chunk_packets=config.settings.chunk_packets,
        progress=progress,
        lead_in=config.settings.chunk_lead_in,
    )
    by_site: dict[str, list[str]] = defaultdict(list)
    for spec in specs:
        by_site[spec.site].append(spec.capture)
    capture_scopes = [{"dataset": dataset, "site": s, "capture": c} for s, c in by_site.items()]
    site_scope = {"dataset": dataset, "site": sorted(by_site)}
    sources = {e.capture: e.sha256 for e in extracts}
    versions: dict[str, int] = {}
    rows: dict[str, int] = {}  # rows written, from each commit's metrics

    packets = bronze.read_landing(spark, extracts)
    versions["packets"], rows["packets"] = write_table_counted(
        packets, tables.table("packets"), lake_root, capture_scopes, "ingest_captures", {"sources": sources}
    )
    written = spark.read.format("delta").load(tables.table("packets").path(lake_root))
    written = written.where(F.col("dataset") == dataset).where(F.col("site").isin(list(by_site)))
    captures = bronze.with_labels(spark, bronze.captures_frame(spark, extracts, written), specs)
    devices = None
    sites = None
    prefixes = None
    for plan in plans:
        d = bronze.devices_frame(spark, dataset, plan.site, plan.devices)
        s, p = bronze.sites_frames(spark, dataset, plan.site, plan.config, config.settings.local_prefixes)
        devices = d if devices is None else devices.unionByName(d)
        sites = s if sites is None else sites.unionByName(s)
        prefixes = p if prefixes is None else prefixes.unionByName(p)
    rules = spark.createDataFrame(
        [(dataset, plan.site, *rule) for plan in plans for rule in plan.config.endpoint_rules.rows()],
        SITE_RULES_SCHEMA,
    )
    writes = {
        "captures": (captures, capture_scopes, {"sources": sources}),
        "devices": (devices, site_scope, None),
        "sites": (sites, site_scope, None),
        "site_prefixes": (prefixes, site_scope, None),
        "site_rules": (rules, site_scope, None),
    }
    # Five small tables, one commit each: side by side, so their Delta commits overlap instead of queueing
    # (a 12-packet ingest takes about 9 s instead of 13 s in a warm session).
    with ThreadPoolExecutor(max_workers=len(writes), thread_name_prefix="ingest") as pool:
        futures = {
            name: pool.submit(
                write_table_counted, frame, tables.table(name), lake_root, scope, "ingest_captures", metadata
            )
            for name, (frame, scope, metadata) in writes.items()
        }
        for name, future in futures.items():
            versions[name], rows[name] = future.result()
    counts = (
        spark.read.format("delta")
        .load(tables.table("captures").path(lake_root))
        .where(F.col("dataset") == dataset)
        .where(F.struct("site", "capture").isin([F.struct(F.lit(s.site), F.lit(s.capture)) for s in specs]))
        .select("capture", "packets", "truncated")
        .collect()
    )
    return IngestReport(
        dataset=dataset,
        captures=len(counts),
        packets=sum(r["packets"] for r in counts),
        truncated=sorted(r["capture"] for r in counts if r["truncated"]),
        versions=versions,
        rows=rows,
    )


def datasets_in_lake(spark: SparkSession, config: Config) -> list[str]:
    """Datasets that have packets in the lake."""
    entry = tables.table("packets")
    if not tables.exists(spark, config.lake_root, entry):
        return []
    rows = (
        spark.read.format("delta").load(entry.path(config.lake_root)).select("dataset").distinct().collect()
    )
    return sorted(r["dataset"] for r in rows)


def check_datasets(spark: SparkSession, config: Config, names: list[str]) -> list[str]:
    """The datasets in the lake; a one-line error when one of `names` is not a valid name or not among them."""
    present = datasets_in_lake(spark, config)
    for name in names:
        check_name("dataset", name)
        if name not in present:
            known = ", ".join(present) or "none"
            raise IotlakeError(
                config.lake_root, f"unknown dataset {name!r}: not in the lake (present: {known})"
            )
    return present


def build(
    spark: SparkSession,
    config: Config,
    datasets: list[str] | None = None,
    interval_s: int | None = None,
    only: list[str] | None = None,
    alignment: str | None = None,
    progress: bool = False,
) -> list[ModelRun]:
    """Rebuild the SQL models for the given datasets (default: every dataset in the lake); with `progress`,
    a bar on stderr advances per model table written."""
    present = check_datasets(spark, config, datasets or [])
    alignment = alignment or config.settings.alignment
    if alignment not in get_args(Alignment):
        raise IotlakeError(
            "--alignment", f"unknown interval alignment {alignment!r}: use {', '.join(get_args(Alignment))}"
        )
    parameters = {
        "interval_s": interval_s or config.settings.interval_s,
        "alignment": alignment,
        **config.settings.flows.parameters(),
    }
    views = {
        "filter_profiles": filter_profiles(spark, config),
        "party_rules": spark.createDataFrame(
            load_endpoint_rules(config.conf_dir / "endpoint_rules.yaml").rows(), RULES_SCHEMA
        ),
        **protocols.protocol_views(spark, config),
    }
    # Tables the models read that older lakes or offline runs may lack: created empty.
    ensure_table(spark, tables.table("ip_owners"), config.lake_root, owners.OWNER_SCHEMA)
    ensure_table(spark, tables.table("site_rules"), config.lake_root, SITE_RULES_SCHEMA)
    ensure_table(spark, tables.table("endpoint_overrides"), config.lake_root, overrides.OVERRIDE_SCHEMA)
    ensure_table(spark, tables.table("certificates"), config.lake_root, CERTIFICATE_SCHEMA)
    sql_dir = config.project_dir / "sql"
    names = datasets or present
    models = [m for m in discover(sql_dir) if not only or m.name in only]
    runs: list[ModelRun] = []
    with steps(progress, f"build {', '.join(names)}", len(models) * len(names), "tables") as advance:
        for name in names:
            runs += run_models(
                spark,
                config.lake_root,
                sql_dir,
                name,
                parameters,
                only=only,
                views=views,
                on_run=lambda _: advance(),
            )
    protocols.log_unknown_labels(spark, config.lake_root, datasets or present)
    return runs


def models_for(config: Config, *tables_wanted: str) -> list[str]:
    """The models to build for these tables: them and all models upstream of them, in dependency order."""
    return with_upstream(discover(config.project_dir / "sql"), tables_wanted)


def filter_profiles(spark: SparkSession, config: Config) -> DataFrame:
    """The filter profiles of conf/iotlake.yaml as rows (profile, ip_only, exclude) for the gold models."""
    rows = [(name, p.ip_only, list(p.exclude)) for name, p in config.settings.profiles.items()]
    return spark.createDataFrame(rows, "profile STRING, ip_only BOOLEAN, exclude ARRAY<STRING>")


def device_summary(spark: SparkSession, config: Config, dataset: str, profile: str = "all") -> DataFrame:
    """Per device, over all its captures: frames and bytes, Tx/Rx and LAN/WAN, from `volume_stats`."""
    stats = spark.read.format("delta").load(tables.table("volume_stats").path(config.lake_root))
    stats = stats.where(
        (F.col("dataset") == dataset) & (F.col("capture") == "*") & (F.col("profile") == profile)
    )

    def pick(scope: str, column: str, alias: str) -> F.Column:
        return F.sum(F.when(F.col("scope") == scope, F.col(column))).alias(alias)

    return (
        stats.groupBy("site", "device")
        .agg(
            pick("ALL", "frames_total", "frames"),
            pick("ALL", "bytes_total", "bytes"),
            pick("ALL", "tx_frames_total", "tx"),
            pick("ALL", "rx_frames_total", "rx"),
            pick("LAN", "frames_total", "lan"),
            pick("WAN", "frames_total", "wan"),
            F.round(pick("ALL", "frames_mean", "x"), 1).alias("frames/interval"),
            F.round(pick("ALL", "frames_cov", "x"), 3).alias("cov"),
        )
        .orderBy("site", "device")
    )


# The models that read ip_owners and certificates: rebuilt after `iotlake enrich` fills them.
ENDPOINT_MODELS = (
    "endpoint_usage",
    "endpoint_class_distribution",
    "local_endpoint_distribution",
    "endpoint_protocol_distribution",
)


def endpoint_summary(spark: SparkSession, config: Config, dataset: str, profile: str = "all") -> DataFrame:
    """Per device and peer address over its captures: name, owner, party class(es) and packets."""
    usage = spark.read.format("delta").load(tables.table("endpoint_usage").path(config.lake_root))
    return (
        usage.where((F.col("dataset") == dataset) & (F.col("profile") == profile))
        .groupBy("site", "device", "remote_ip")
        .agg(
            F.max("name").alias("name"),
            F.max("as_name").alias("owner"),
            F.array_join(F.array_sort(F.collect_set("class")), " / ").alias("class"),
            F.sum("packets").alias("packets"),
        )
        .orderBy("site", "device", F.desc("packets"))
    )


def export_volumes(
    spark: SparkSession, config: Config, dataset: str, profile: str, out_dir: Path, output: str = "pms"
) -> ExportReport:
    """Export one dataset's volume tables in an earlier tool's file format (only `pms` so far)."""
    _export_ready(spark, config, dataset, profile, output, "volume_stats")
    return pms.export_volumes(spark, config.lake_root, dataset, profile, out_dir)


def export_protocols(
    spark: SparkSession, config: Config, dataset: str, profile: str, out_dir: Path, output: str = "pms"
) -> ExportReport:
    """Export one dataset's protocol tables in an earlier tool's file format (only `pms` so far)."""
    _export_ready(
        spark,
        config,
        dataset,
        profile,
        output,
        "protocol_usage",
        "protocol_distribution_pms",
        "unique_protocols",
    )
    types = load_protocol_types(config.conf_dir / protocols.PROTOCOL_TYPES_FILE)
    purposes = {t.protocol: t.purpose for t in types.types}
    return pms_protocols.export_protocols(spark, config.lake_root, dataset, profile, out_dir, purposes)


def export_endpoints(
    spark: SparkSession, config: Config, dataset: str, profile: str, out_dir: Path, output: str = "pms"
) -> ExportReport:
    """Export one dataset's endpoint tables in an earlier tool's file format (only `pms` so far)."""
    _export_ready(
        spark,
        config,
        dataset,
        profile,
        output,
        "endpoint_usage",
        "endpoint_class_distribution",
        "local_endpoint_distribution",
        "endpoint_protocol_distribution",
    )
    return pms_endpoints.export_endpoints(spark, config.lake_root, dataset, profile, out_dir)


def _export_ready(
    spark: SparkSession, config: Config, dataset: str, profile: str, output: str, *needed: str
) -> None:
    """Check an export's format, profile and source tables, with one-line errors naming what is wrong."""
    if output != "pms":
        raise IotlakeError("--format", f"unknown export format {output!r}: use pms")
    if profile not in config.settings.profiles:
        known = ", ".join(config.settings.profiles)
        raise IotlakeError(
            config.conf_dir / "iotlake.yaml", f"unknown filter profile {profile!r} (known: {known})"
        )
    check_datasets(spark, config, [dataset])
    declare(discover(config.project_dir / "sql"))
    for table in needed:
        check_built(spark, config, dataset, table)


def check_built(spark: SparkSession, config: Config, dataset: str, table: str) -> None:
    """Raise a one-line error unless `table` exists and holds rows of `dataset`."""
    entry = tables.table(table)
    path = entry.path(config.lake_root)
    if not tables.exists(spark, config.lake_root, entry):
        raise IotlakeError(path, f"table {table} does not exist yet: run `iotlake build`")
    if spark.read.format("delta").load(path).where(F.col("dataset") == dataset).isEmpty():
        raise IotlakeError(path, f"unknown dataset {dataset!r}: no rows in {table}")


def enrich(
    spark: SparkSession, config: Config, datasets: list[str] | None = None, refresh: bool = False
) -> owners.LookupReport:
    """Fill the ip_owners cache for the remote public addresses of the datasets' device packets, and
    rebuild their `certificates` table from the TLS handshakes in bronze."""
    declare(discover(config.project_dir / "sql"))
    present = datasets_in_lake(spark, config)
    for name in datasets or []:
        if name not in present:
            raise IotlakeError(config.lake_root, f"unknown dataset {name!r}: not in the lake")
    source = tables.table("device_packets")
    if not tables.exists(spark, config.lake_root, source):
        raise IotlakeError(
            source.path(config.lake_root), "table device_packets does not exist yet: run `iotlake build`"
        )
    packets = spark.read.format("delta").load(source.path(config.lake_root))
    if datasets:
        packets = packets.where(F.col("dataset").isin(datasets))
    ips = [r["remote_ip"] for r in packets.where("scope = 'WAN'").select("remote_ip").distinct().collect()]
    entry = tables.table("ip_owners")
    cached: set[str] = set()
    if not refresh and tables.exists(spark, config.lake_root, entry):
        found = spark.read.format("delta").load(entry.path(config.lake_root)).where("status = 'found'")
        cached = {r["ip"] for r in found.select("ip").collect()}
    settings = config.settings.enrich
    online = settings.rdap and owners.rdap_reachable(settings.probe_host, settings.timeout_s)
    found_owners, report = owners.lookup_owners(
        [ip for ip in ips if ip],
        cached,
        online,
        settings.parallelism,
        settings.rate_per_s,
        settings.timeout_s,
        settings.retries,
    )
    register_functions(spark, config.project_dir / "sql")
    bronze_packets = spark.read.format("delta").load(tables.table("packets").path(config.lake_root))
    certificates = 0
    for name in datasets or present:
        frame = certificates_frame(spark, bronze_packets.where(F.col("dataset") == name))
        certificates += write_table_counted(
            frame, tables.table("certificates"), config.lake_root, {"dataset": name}, job="enrich"
        )[1]
    if found_owners:
        frame = spark.createDataFrame(owners.as_rows(found_owners), owners.OWNER_SCHEMA)
        upsert_table(
            frame, entry, config.lake_root, ["ip"], job="enrich", metadata={"report": asdict(report)}
        )
    return replace(report, written={"ip_owners": len(found_owners), "certificates": certificates})


def add_overrides(spark: SparkSession, config: Config, rows: list[overrides.Override]) -> int:
    """Upsert manual party classes into `endpoint_overrides` in one commit; returns the table version.

    They take effect at the next `iotlake build` (endpoint_usage reads the table)."""
    frame = spark.createDataFrame(overrides.as_rows(rows), overrides.OVERRIDE_SCHEMA)
    return upsert_table(
        frame, tables.table("endpoint_overrides"), config.lake_root, overrides.KEYS, job="label"
    )


def remove_overrides(spark: SparkSession, config: Config, rows: list[overrides.Override]) -> int:
    """Delete the overrides with the same keys (kind, value, dataset, device); returns how many matched."""
    from delta.tables import DeltaTable

    entry = tables.table("endpoint_overrides")
    if not tables.exists(spark, config.lake_root, entry) or not rows:
        return 0
    keys = spark.createDataFrame(
        [(o.kind, o.value, o.dataset, o.device) for o in rows],
        ", ".join(f"{k} STRING" for k in overrides.KEYS),
    )
    table = DeltaTable.forPath(spark, entry.path(config.lake_root))
    matched = table.toDF().join(keys, list(overrides.KEYS), "left_semi").count()
    if matched:
        condition = " AND ".join(f"t.{k} = s.{k}" for k in overrides.KEYS)
        table.alias("t").merge(keys.alias("s"), condition).whenMatchedDelete().execute()
    return matched


def list_overrides(spark: SparkSession, config: Config) -> list[overrides.Override]:
    """Every override in the lake, ordered by kind and value."""
    entry = tables.table("endpoint_overrides")
    if not tables.exists(spark, config.lake_root, entry):
        return []
    frame = spark.read.format("delta").load(entry.path(config.lake_root)).orderBy(*overrides.KEYS)
    return [overrides.Override(*row) for row in frame.collect()]
