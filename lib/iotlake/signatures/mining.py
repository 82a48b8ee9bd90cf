"""Event signatures on the lake: learn them from labelled captures, detect them in any capture, evaluate them.

The work is SQL in `sql/signatures/` (one query per table, with views as inputs); this module picks the
inputs (which captures train, which are scanned), runs the queries and hands results to lake.writer.
Captures carry labels (`captures.labels`: device and event), from an event-capture folder or a manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from iotlake.config import Config
from iotlake.errors import IotlakeError
from iotlake.lake import tables
from iotlake.lake.writer import write_table
from iotlake.models import runner
from iotlake.models.runner import parse_model, register_functions, run_query
from iotlake.names import check_name

JOB = "signatures"
QUERIES = ("event_signatures", "event_detections", "signature_evaluation")


def _query_path(config: Config, name: str) -> Path:
    return config.project_dir / "sql" / "signatures" / f"{name}.sql"


def declare(config: Config) -> None:
    """Declare the signature tables (named, explained and partitioned by their query files' headers)."""
    for name in QUERIES:
        query = parse_model(_query_path(config, name), "gold")
        tables.register_model_table(query.name, "gold", query.partition_by, query.comment)


def _load(spark: SparkSession, config: Config, name: str) -> DataFrame:
    entry = tables.table(name)
    if not tables.exists(spark, config.lake_root, entry):
        raise IotlakeError(config.lake_root, f"no {name} table yet: run `iotlake signatures learn` first")
    return spark.read.format("delta").load(entry.path(config.lake_root))


def _prepare(spark: SparkSession, config: Config) -> None:
    """Declare the model and signature tables, create the SQL functions and register the lake's tables."""
    runner.declare(runner.discover(config.project_dir / "sql"))
    declare(config)
    register_functions(spark, config.project_dir / "sql")
    tables.register_all(spark, config.lake_root)


def _write(config: Config, frame: DataFrame, name: str, scope: dict, metadata: dict | None = None) -> int:
    """Replace `scope` of a signature table (its comments of sql/columns.yaml travel with the write)."""
    return write_table(frame, tables.table(name), config.lake_root, scope, JOB, metadata)


def labelled_captures(spark: SparkSession, config: Config, dataset: str) -> DataFrame:
    """The dataset's captures that carry a device and an event label: dataset, site, capture, device, event,
    first_ts. An error naming the dataset when there are none (or its flows are not built)."""
    check_name("dataset", dataset)
    _prepare(spark, config)
    for name in ("captures", "flow_fingerprints", "flow_patterns"):
        if not tables.exists(spark, config.lake_root, tables.table(name)):
            raise IotlakeError(
                config.lake_root, f"no {name} table: ingest and `iotlake build` the dataset first"
            )
    captures = spark.read.format("delta").load(tables.table("captures").path(config.lake_root))
    if "labels" not in captures.columns:
        captures = captures.withColumn("labels", F.lit(None).cast("map<string,string>"))
    labelled = (
        captures.where(F.col("dataset") == dataset)
        .select(
            "dataset",
            "site",
            "capture",
            F.col("labels")["device"].alias("device"),
            F.col("labels")["event"].alias("event"),
            "first_ts",
        )
        .where(F.col("device").isNotNull() & F.col("event").isNotNull())
    )
    if labelled.isEmpty():
        raise IotlakeError(
            dataset,
            "no capture of this dataset is labelled with a device and an event "
            "(ingest an event-capture folder <device>/<event>/*.pcap with devices.yaml, or label captures in "
            "the manifest)",
        )
    return labelled


def learn_frame(spark: SparkSession, config: Config, training: DataFrame) -> DataFrame:
    """Signatures learned from `training` (dataset, site, capture, device, event), not yet written."""
    _prepare(spark, config)
    return run_query(
        spark,
        _query_path(config, "event_signatures"),
        config.settings.signatures.parameters(),
        views={"signature_training": training},
    )


@dataclass(frozen=True)
class LearnReport:
    """What `learn` wrote."""

    dataset: str
    events: int
    elements: int
    version: int


def learn(spark: SparkSession, config: Config, dataset: str) -> LearnReport:
    """Learn one signature per labelled (device, event) of the dataset from all its captures; replaces the
    dataset's rows of `event_signatures`."""
    training = labelled_captures(spark, config, dataset)
    frame = learn_frame(spark, config, training)
    version = _write(
        config,
        frame,
        "event_signatures",
        {"dataset": dataset},
        {"settings": config.settings.signatures.model_dump()},
    )
    written = _load(spark, config, "event_signatures").where(F.col("dataset") == dataset)
    events = written.select("device", "event").distinct().count()
    return LearnReport(dataset, events, written.count(), version)


def detect_frame(
    spark: SparkSession, config: Config, dataset: str, learned: DataFrame, scope: DataFrame | None = None
) -> DataFrame:
    """Occurrences of the `learned` signature rows in the flows of `dataset` (all its captures, or those of `scope`)."""
    _prepare(spark, config)
    if scope is None:
        captures = spark.read.format("delta").load(tables.table("captures").path(config.lake_root))
        scope = captures.where(F.col("dataset") == dataset).select("dataset", "site", "capture")
    return run_query(
        spark,
        _query_path(config, "event_detections"),
        {"dataset": dataset},
        views={"signatures": learned, "detection_scope": scope},
    )


def detect(
    spark: SparkSession,
    config: Config,
    dataset: str,
    signatures_from: str | None = None,
    captures: list[str] | None = None,
) -> tuple[int, int]:
    """Scan a dataset (or some of its captures) for the signatures learned on `signatures_from` (default: the
    same dataset); replaces those rows of `event_detections`. Returns (detections, table version)."""
    source = check_name("dataset", signatures_from or dataset)
    check_name("dataset", dataset)
    _prepare(spark, config)
    learned = _load(spark, config, "event_signatures").where(F.col("dataset") == source)
    if learned.isEmpty():
        raise IotlakeError(
            source, "no signatures learned for this dataset: run `iotlake signatures learn` first"
        )
    scope = None
    if captures:
        rows = spark.read.format("delta").load(tables.table("captures").path(config.lake_root))
        rows = rows.where(F.col("dataset") == dataset).select("dataset", "site", "capture")
        scope = rows.where(F.col("capture").isin(captures))
        missing = set(captures) - {r["capture"] for r in scope.collect()}
        if missing:
            raise IotlakeError(dataset, f"unknown capture(s): {', '.join(sorted(missing))}")
    frame = detect_frame(spark, config, dataset, learned, scope)
    replace = {"dataset": dataset, "signature_dataset": source}
    if captures:
        replace["capture"] = captures
    version = _write(config, frame, "event_detections", replace)
    written = _load(spark, config, "event_detections").where(
        (F.col("dataset") == dataset) & (F.col("signature_dataset") == source)
    )
    if captures:
        written = written.where(F.col("capture").isin(captures))
    return written.count(), version


def split(labelled: DataFrame, train_fraction: float, train: int | None = None) -> DataFrame:
    """Mark each event's earliest captures as training: `train` of them, else ceil(fraction × count), always
    leaving at least one to test."""
    by_event = Window.partitionBy("dataset", "device", "event")
    ordered = by_event.orderBy("first_ts", "site", "capture")
    size = F.count(F.lit(1)).over(by_event)
    wanted = F.lit(train) if train else F.ceil(size * F.lit(train_fraction))
    limit = F.least(wanted, size - 1)
    return labelled.withColumn("training", F.row_number().over(ordered) <= limit).drop("first_ts")


@dataclass(frozen=True)
class Evaluation:
    """The evaluation table and where it was written."""

    rows: list[dict]
    version: int


def evaluate(spark: SparkSession, config: Config, dataset: str, train: int | None = None) -> Evaluation:
    """Learn each event's signature on its earliest captures, detect on every other labelled capture of the
    dataset, and write precision and recall per device and event to `signature_evaluation`."""
    labelled = labelled_captures(spark, config, dataset)
    fraction = config.settings.signatures.train_fraction
    # Materialised inputs: the evaluation query reads the signatures both directly and through the detections,
    # and Spark's plan deduplication fails on that shape when the lineage is kept (an INTERNAL_ERROR at write).
    parts = split(labelled, fraction, train).localCheckpoint()
    learned = learn_frame(spark, config, parts.where("training").drop("training")).localCheckpoint()
    found = detect_frame(spark, config, dataset, learned).localCheckpoint()
    frame = run_query(
        spark,
        _query_path(config, "signature_evaluation"),
        {},
        views={"signature_split": parts, "signatures": learned, "detections": found},
    )
    version = _write(
        config,
        frame,
        "signature_evaluation",
        {"dataset": dataset},
        {"train": train, "train_fraction": fraction, "settings": config.settings.signatures.model_dump()},
    )
    written = _load(spark, config, "signature_evaluation").where(F.col("dataset") == dataset)
    rows = [r.asDict() for r in written.orderBy("device", "event").collect()]
    return Evaluation(rows, version)


def signatures(spark: SparkSession, config: Config, dataset: str) -> DataFrame:
    """The signatures learned on a dataset, in element order."""
    _prepare(spark, config)
    frame = _load(spark, config, "event_signatures").where(F.col("dataset") == dataset)
    return frame.orderBy("device", "event", "element_no")


def detections(
    spark: SparkSession,
    config: Config,
    dataset: str,
    signatures_from: str | None = None,
    captures: list[str] | None = None,
) -> DataFrame:
    """The detections written for a scan of `dataset` with the signatures of `signatures_from`."""
    _prepare(spark, config)
    frame = _load(spark, config, "event_detections").where(
        (F.col("dataset") == dataset) & (F.col("signature_dataset") == (signatures_from or dataset))
    )
    if captures:
        frame = frame.where(F.col("capture").isin(captures))
    columns = ["capture", "device", "signature_device", "event", "detected_at", "span_s", "elements"]
    return frame.select(*columns).orderBy("capture", "detected_at", "signature_device", "event")


def _ratio(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


EVALUATION_COLUMNS = (
    ("device", "device"),
    ("event", "event"),
    ("elements", "elements"),
    ("train", "training_captures"),
    ("test", "test_captures"),
    ("TP", "true_positives"),
    ("FN", "false_negatives"),
    ("FP", "false_positives"),
    ("FP other devices", "false_positives_other_devices"),
    ("negatives", "negatives"),
    ("precision", "precision"),
    ("recall", "recall"),
)


def evaluation_markdown(rows: list[dict]) -> str:
    """The evaluation as a markdown table (for the terminal, test logs and notes)."""
    lines = [
        "| " + " | ".join(title for title, _ in EVALUATION_COLUMNS) + " |",
        "|" + "---|" * len(EVALUATION_COLUMNS),
    ]
    for row in rows:
        cells = [
            _ratio(row[key]) if key in ("precision", "recall") else str(row[key])
            for _, key in EVALUATION_COLUMNS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
