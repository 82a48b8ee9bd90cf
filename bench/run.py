"""`make bench`: build the inputs, measure limit / iotlake / baseline on each, write JSON, print a table.

    python -m bench.run [--sizes 10MB 100MB 1GB] [--runs 3] [--pipelines limit iotlake baseline] [--no-check]

Per size and run the pipelines run one after the other on the same file (limit, iotlake, baseline), so load
from other processes spreads over all three. Medians over the runs; peak RSS is the largest over the runs.
Results are merged into `bench/results/<date>.json` (one entry per size, the latest measurement wins).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.inputs import SIZES, BenchInput, build_inputs
from bench.pipelines import Result, Tree, conf_variant, iotlake_totals, run_baseline, run_iotlake, run_limit
from iotlake.capture.tshark import tshark_version

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "work"
RESULTS = BENCH / "results"
PIPELINES = ("limit", "iotlake", "baseline")
console = Console(stderr=True)


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES), help="input sizes")
    parser.add_argument("--runs", type=int, default=3, help="runs per size and pipeline (median reported)")
    parser.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="iotlake.yaml setting for the iotlake pipeline (e.g. chunk_packets=250000); repeatable",
    )
    parser.add_argument(
        "--spark",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="spark-defaults.conf setting for the iotlake pipeline; repeatable",
    )
    parser.add_argument(
        "--tree",
        metavar="REF",
        help="benchmark iotlake as of this commit (git archive into bench/work), not the working tree",
    )
    parser.add_argument("--report", type=Path, help="only print the table of a results JSON file")
    parser.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compare the baseline's per-device passive frame totals with iotlake's volume_stats",
    )
    return parser.parse_args(argv)


def _median(results: list[Result], key: str | None = None) -> float:
    values = [r.steps[key] if key else r.seconds for r in results]
    return round(statistics.median(values), 2)


def _peaks(results: list[Result]) -> dict[str, dict[str, float]]:
    peak: dict[str, float] = {}
    peak_sum: dict[str, float] = {}
    for r in results:
        for kind, mb in r.peak_mb.items():
            peak[kind] = max(peak.get(kind, 0.0), mb)
        for kind, mb in r.peak_sum_mb.items():
            peak_sum[kind] = max(peak_sum.get(kind, 0.0), mb)
    return {"process": peak, "concurrent": peak_sum}


def _summary(bench: BenchInput, runs: dict[str, list[Result]]) -> dict[str, Any]:
    """Medians, throughput, ratios and peaks of one size."""
    median = {name: _median(results) for name, results in runs.items()}
    cpu = {name: round(statistics.median(r.cpu_s for r in results), 2) for name, results in runs.items()}
    summary: dict[str, Any] = {
        "bytes": bench.bytes,
        "packets": bench.packets,
        "devices": len(bench.devices),
        "runs": max(len(r) for r in runs.values()),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "median_s": median,
        "median_cpu_s": cpu,
        "packets_per_s": {name: round(bench.packets / s) for name, s in median.items() if s > 0},
        "peak_rss_mb": {name: _peaks(results) for name, results in runs.items()},
        "raw": {name: [asdict(r) for r in results] for name, results in runs.items()},
    }
    if "iotlake" in runs:
        summary["iotlake_steps_s"] = {k: _median(runs["iotlake"], k) for k in ("ingest", "build")}
    if "baseline" in runs:
        summary["baseline_steps_s"] = {
            k: _median(runs["baseline"], k) for k in ("split", "filters", "io_stat")
        }
        summary["baseline_tshark_runs"] = runs["baseline"][0].tshark_runs
    ratios = {}
    if "iotlake" in median and "limit" in median:
        ratios["iotlake/limit"] = round(median["iotlake"] / median["limit"], 2)
    if "baseline" in median and "iotlake" in median:
        ratios["baseline/iotlake"] = round(median["baseline"] / median["iotlake"], 2)
    for a, b in (("iotlake", "limit"), ("baseline", "iotlake")):
        if a in cpu and b in cpu and cpu[b] > 0:
            ratios[f"{a}/{b} cpu"] = round(cpu[a] / cpu[b], 2)
    summary["ratios"] = ratios
    return summary


def _pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, not {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _load() -> tuple[float, float, float]:
    return os.getloadavg()


def _write(summaries: dict[str, dict[str, Any]], args: argparse.Namespace) -> Path:
    """Merge this run's sizes into bench/results/<date>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC).date().isoformat()}.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"sizes": {}}
    data["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tshark": tshark_version(),
    }
    for size, summary in summaries.items():
        summary["args"] = {
            "runs": args.runs,
            "pipelines": args.pipelines,
            "set": _pairs(args.set),
            "spark": _pairs(args.spark),
        }
        data["sizes"][size] = summary
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _mb(summary: dict[str, Any], pipeline: str, kind: str, concurrent: bool = False) -> str:
    peaks = summary["peak_rss_mb"].get(pipeline)
    if not peaks:
        return "–"
    value = peaks["concurrent" if concurrent else "process"].get(kind)
    return "–" if value is None else f"{value:.0f}"


COLUMNS = (
    "size", "MB", "packets", "runs",
    "limit s", "iotlake s (ingest+build)", "baseline s",
    "limit pkt/s", "iotlake pkt/s", "baseline pkt/s",
    "iotlake/limit", "baseline/iotlake",
    "CPU s limit / iotlake / baseline", "iotlake/limit cpu", "baseline/iotlake cpu",
    "tshark MB limit", "tshark MB iotlake (1 / all)", "tshark MB baseline",
    "JVM MB", "driver py MB",
)  # fmt: skip


def _row(size: str, s: dict[str, Any]) -> list[str]:
    med, pps, ratios = s["median_s"], s["packets_per_s"], s["ratios"]
    secs = {n: f"{med[n]:.1f}" if n in med else "–" for n in PIPELINES}
    steps = s.get("iotlake_steps_s")
    if steps:
        secs["iotlake"] += f" ({steps['ingest']:.1f}+{steps['build']:.1f})"
    return [
        size,
        f"{s['bytes'] / 1e6:.0f}",
        f"{s['packets']:,}",
        str(s["runs"]),
        *(secs[n] for n in PIPELINES),
        *(f"{pps[n]:,}" if n in pps else "–" for n in PIPELINES),
        str(ratios.get("iotlake/limit", "–")),
        str(ratios.get("baseline/iotlake", "–")),
        " / ".join(
            f"{s.get('median_cpu_s', {})[n]:.0f}" if n in s.get("median_cpu_s", {}) else "–"
            for n in PIPELINES
        ),
        str(ratios.get("iotlake/limit cpu", "–")),
        str(ratios.get("baseline/iotlake cpu", "–")),
        _mb(s, "limit", "tshark"),
        f"{_mb(s, 'iotlake', 'tshark')} / {_mb(s, 'iotlake', 'tshark', True)}",
        _mb(s, "baseline", "tshark"),
        _mb(s, "iotlake", "jvm"),
        _mb(s, "iotlake", "python"),
    ]


def markdown(summaries: dict[str, dict[str, Any]]) -> str:
    """The results as a markdown table, one row per size (medians; peak RSS in MiB, largest over the runs)."""
    rows = [list(COLUMNS), *(_row(size, s) for size, s in summaries.items())]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    args = _args(argv)
    if args.report:
        print(markdown(json.loads(args.report.read_text())["sizes"]))
        return 0
    sizes = sorted(args.sizes, key=list(SIZES).index)
    console.print(f"building inputs {', '.join(sizes)} under {WORK}")
    inputs = build_inputs(WORK, sizes)
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    settings, spark = _pairs(args.set), _pairs(args.spark)
    tree = Tree.at(args.tree, WORK)
    console.print(f"iotlake under test: {tree.ref}")
    conf = conf_variant(tree, WORK, settings, spark)
    summaries: dict[str, dict[str, Any]] = {}
    for size in sizes:
        bench = inputs[size]
        console.print(
            f"[bold]{size}[/]: {bench.pcap.name}, {bench.bytes / 1e6:.1f} MB, {bench.packets:,} packets"
        )
        runs: dict[str, list[Result]] = {name: [] for name in PIPELINES if name in args.pipelines}
        load_before = _load()
        for i in range(args.runs):
            for name in runs:
                if name == "limit":
                    result = run_limit(bench, tree)
                elif name == "iotlake":
                    result = run_iotlake(bench, tree, WORK, logs, f"{size}-run{i + 1}", conf)
                else:
                    result = run_baseline(bench, WORK)
                runs[name].append(result)
                steps = ", ".join(f"{k} {v:.1f}s" for k, v in result.steps.items())
                console.print(
                    f"  run {i + 1} {name}: {result.seconds:.1f}s, cpu {result.cpu_s:.1f}s"
                    + (f" ({steps})" if steps else "")
                )
        summary = _summary(bench, runs)
        summary["tree"] = tree.ref
        summary["load_avg"] = {"before": load_before, "after": _load()}
        if args.check and "iotlake" in runs and "baseline" in runs:
            summary["check"] = _check_totals(bench, tree, runs["baseline"][-1].totals)
        overrides = " ".join(f"{k}={v}" for k, v in {**settings, **spark}.items())
        summaries[f"{size} ({overrides})" if overrides else size] = summary
    path = _write(summaries, args)
    console.print(f"results: {path}")
    print(markdown(summaries))
    return 0


def _check_totals(bench: BenchInput, tree: Tree, baseline: dict[str, int]) -> dict[str, Any]:
    """Per device: passive frames of the baseline's io,stat vs iotlake's volume_stats (same work, two ways)."""
    lake = iotlake_totals(bench, tree, WORK, WORK / "logs")
    devices = sorted(set(baseline) | set(lake))
    differ = {
        d: {"baseline": baseline.get(d), "iotlake": lake.get(d)}
        for d in devices
        if baseline.get(d) != lake.get(d)
    }
    if differ:
        console.print(f"[yellow]check: passive frame totals differ for {len(differ)} device(s): {differ}[/]")
    else:
        console.print(f"check: passive frame totals of all {len(devices)} devices agree")
    return {"devices": len(devices), "agree": not differ, "differ": differ}


if __name__ == "__main__":
    sys.exit(main())
