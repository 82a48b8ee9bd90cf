"""Extraction as Spark tasks: probe every capture, split large ones, run one tshark pass per chunk.

Each chunk is one Spark job of one task (`sc.parallelize([job], 1).map(_run_chunk)`), submitted from a
driver-side thread pool as wide as `defaultParallelism`, so a cluster spreads the tshark runs over its
executors and a local session uses every core. The landing zone (and the split chunks, kept next to it)
must therefore be on storage the executors share with the driver. The result per capture is a manifest
(`CaptureExtract`) that the bronze `captures` table records.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iotlake.capture.probe import CaptureProbe, probe
from iotlake.capture.tshark import Chunk, export_chunk, sha256_file, split_capture, tshark_version
from iotlake.errors import BadCaptureError, IotlakeError

if TYPE_CHECKING:  # executors import this module for _run_chunk: keep it free of pyspark.sql and rich
    from pyspark.sql import SparkSession

LANDING_PART = "part-{index:05d}.tsv.gz"


@dataclass(frozen=True)
class CaptureSpec:
    """One capture to extract: its lake keys (already validated names), its file and its labels
    (e.g. device and event of an event capture), as sorted (key, value) pairs."""

    dataset: str
    site: str
    capture: str
    path: Path
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class CaptureExtract:
    """The manifest of one extracted capture: where it came from, how it was read, and its landing files."""

    dataset: str
    site: str
    capture: str
    path: str
    sha256: str
    bytes: int
    format: str
    link_types: list[int]
    tshark_version: str
    truncated: bool
    warnings: list[str] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    extracted_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the manifest."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptureExtract:
        """The manifest back from `to_dict()` output."""
        return cls(**data)


def landing_dir(landing_root: Path, spec: CaptureSpec) -> Path:
    """The landing folder of a capture: `<root>/dataset=<d>/site=<s>/capture=<c>`."""
    return Path(landing_root) / f"dataset={spec.dataset}" / f"site={spec.site}" / f"capture={spec.capture}"


def _run_chunk(job: dict[str, Any]) -> dict[str, Any]:
    """Executor side: export one chunk with tshark; errors come back as data so the driver raises one line."""
    try:
        result = export_chunk(job["chunk"], Path(job["out"]), source=job["source"])
    except BadCaptureError as exc:
        return {"error": "capture", "where": exc.where, "problem": exc.problem}
    except IotlakeError as exc:
        return {"error": "other", "where": exc.where, "problem": exc.problem}
    return {
        "warnings": list(result.warnings),
        "truncated": result.truncated,
        "returncode": result.returncode,
        "tshark_version": tshark_version(),
    }


def _spark_runner(spark: SparkSession, group: str) -> tuple[Callable[[dict[str, Any]], dict[str, Any]], int]:
    """A function running one chunk job as a one-task Spark job, and how many to run at once."""
    sc = spark.sparkContext

    def run(job: dict[str, Any]) -> dict[str, Any]:
        # Local properties are per thread (pinned thread mode), so each job carries its own description.
        sc.setJobGroup(group, f"iotlake tshark {job['label']}", interruptOnCancel=False)
        return sc.parallelize([job], 1).map(_run_chunk).collect()[0]

    return run, max(1, sc.defaultParallelism)


def _check_unique(specs: Sequence[CaptureSpec]) -> None:
    seen: dict[tuple[str, str, str], Path] = {}
    for spec in specs:
        key = (spec.dataset, spec.site, spec.capture)
        if key in seen:
            raise IotlakeError(spec.path, f"capture name {spec.capture!r} is also the name of {seen[key]}")
        seen[key] = spec.path


def _prepare(
    spec: CaptureSpec, target: Path, workdir: Path, chunk_bytes: int, chunk_packets: int, lead_in: int
) -> list[Chunk]:
    """Driver side: a fresh landing folder and the chunks of one capture."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    return split_capture(spec.path, workdir, chunk_packets, chunk_bytes, lead_in)


# Landing TSV.gz of the catalog's fields is well under half the capture's size (0.29 on the shared event
# captures) plus a small manifest per capture; a split capture also needs a copy of itself for its chunks.
LANDING_RATIO = 0.5
LANDING_OVERHEAD = 64 * 1024


def check_disk_space(landing_root: Path, captures: Sequence[Path], chunk_bytes: int) -> None:
    """Fail in one line, before anything is written, when the landing zone's disk cannot hold the extraction."""
    sizes = [path.stat().st_size for path in captures]
    needed = sum(
        int(size * LANDING_RATIO) + LANDING_OVERHEAD + (size if size > chunk_bytes else 0) for size in sizes
    )
    free = shutil.disk_usage(landing_root).free
    if needed > free:
        raise IotlakeError(
            landing_root,
            f"not enough disk space to extract {len(sizes)} capture(s): about {needed / 1e9:.1f} GB needed "
            f"for landing files and chunks, {free / 1e9:.1f} GB free",
        )


def extract_captures(
    spark: SparkSession,
    specs: list[CaptureSpec],
    landing_root: Path,
    chunk_bytes: int,
    chunk_packets: int,
    progress: bool = True,
    lead_in: int = 0,
) -> list[CaptureExtract]:
    """Extract every capture into gzipped TSV landing files with one tshark pass per chunk, as Spark tasks.

    All captures are probed first, so a bad file fails the run before anything is written. Files larger than
    `chunk_bytes` are split into `chunk_packets`-frame chunks, each read after a lead-in of the previous
    chunk's last `lead_in` frames. Returns the manifests in the order of `specs`.
    """
    from iotlake.output import bars  # here, not at the top: executors import this module (no rich there)

    specs = list(specs)
    _check_unique(specs)
    probes: list[CaptureProbe] = [probe(spec.path) for spec in specs]
    tshark_version()  # fail early, and clearly, when tshark is missing on the driver
    if not specs:
        return []
    landing_root = Path(landing_root).absolute()
    landing_root.mkdir(parents=True, exist_ok=True)
    check_disk_space(landing_root, [spec.path for spec in specs], chunk_bytes)
    group = f"iotlake-extract-{uuid.uuid4().hex[:12]}"
    run, workers = _spark_runner(spark, group)
    split_root = Path(tempfile.mkdtemp(prefix="_split-", dir=landing_root))
    prep_pool = ThreadPoolExecutor(min(4, len(specs)), thread_name_prefix="iotlake-prepare")
    task_pool = ThreadPoolExecutor(workers, thread_name_prefix="iotlake-tshark")
    failed = True
    try:
        with bars(progress, "chunks") as bar:
            tasks = [bar.add_task(f"{spec.site}/{spec.capture}", total=None, start=False) for spec in specs]
            targets = [landing_dir(landing_root, spec) for spec in specs]
            prepared: dict[Future[list[Chunk]], int] = {}
            for i, spec in enumerate(specs):
                workdir = split_root / f"{i:05d}"
                prepared[
                    prep_pool.submit(_prepare, spec, targets[i], workdir, chunk_bytes, chunk_packets, lead_in)
                ] = i
            hashes = [prep_pool.submit(sha256_file, spec.path) for spec in specs]  # after the splits
            submitted: dict[int, list[tuple[Chunk, dict[str, Any], Future[dict[str, Any]]]]] = {}
            for done in as_completed(prepared):
                i = prepared[done]
                chunks = done.result()
                bar.update(tasks[i], total=len(chunks))
                bar.start_task(tasks[i])  # the clock of a file runs from its split, not from the start
                submitted[i] = []
                for chunk in chunks:
                    job = _job(specs[i], chunk, targets[i])
                    future = task_pool.submit(run, job)
                    future.add_done_callback(lambda _, task=tasks[i]: bar.advance(task))
                    submitted[i].append((chunk, job, future))
            extracts = [
                _manifest(specs[i], probes[i], hashes[i].result(), submitted[i]) for i in range(len(specs))
            ]
        failed = False
        return extracts
    finally:
        if failed:
            with contextlib.suppress(Exception):
                spark.sparkContext.cancelJobGroup(group)
        task_pool.shutdown(wait=True, cancel_futures=failed)
        prep_pool.shutdown(wait=True, cancel_futures=failed)
        shutil.rmtree(split_root, ignore_errors=True)


def _job(spec: CaptureSpec, chunk: Chunk, target: Path) -> dict[str, Any]:
    """The picklable description of one chunk's tshark run (it travels to an executor)."""
    source = str(Path(spec.path).absolute())
    split = Path(chunk.path) != Path(spec.path)
    return {
        "chunk": replace(chunk, path=Path(chunk.path).absolute()),
        "out": str(target / LANDING_PART.format(index=chunk.index)),
        "source": source,
        "label": f"{spec.dataset}/{spec.site}/{spec.capture} chunk {chunk.index}",
        "prefix": f"chunk {chunk.index} (from frame {chunk.frame_offset + 1}): " if split else "",
    }


def _manifest(
    spec: CaptureSpec,
    probed: CaptureProbe,
    sha256: str,
    submitted: list[tuple[Chunk, dict[str, Any], Future[dict[str, Any]]]],
) -> CaptureExtract:
    """Wait for a capture's chunk jobs and merge their results into its manifest."""
    warnings: list[str] = []
    truncated = False
    versions: list[str] = []
    chunks: list[dict[str, Any]] = []
    for chunk, job, future in submitted:
        outcome = future.result()
        if "error" in outcome:
            error = BadCaptureError if outcome["error"] == "capture" else IotlakeError
            raise error(outcome["where"], job["prefix"] + outcome["problem"])
        warnings += chunk.warnings
        warnings += [job["prefix"] + message for message in outcome["warnings"]]
        truncated = truncated or chunk.truncated or bool(outcome["truncated"])
        versions.append(outcome["tshark_version"])
        # what bronze adds to the TSV's frame numbers, which count the chunk's lead-in too
        chunks.append({"file": job["out"], "frame_offset": chunk.frame_offset - len(chunk.lead)})
    return CaptureExtract(
        dataset=spec.dataset,
        site=spec.site,
        capture=spec.capture,
        path=str(Path(spec.path).absolute()),
        sha256=sha256,
        bytes=probed.size_bytes,
        format=probed.format,
        link_types=list(probed.link_types),
        tshark_version=",".join(dict.fromkeys(versions)) or tshark_version(),
        truncated=truncated,
        warnings=list(dict.fromkeys(warnings)),
        chunks=chunks,
        extracted_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
