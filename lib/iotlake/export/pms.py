"""Volume exports in the Passive-Mode-Study formats: per-device hourly `*-stats.csv` files and the overall files.

File layouts and headers follow the earlier tool (reference passive-mode-study §3.4, §4.1): per device and
capture `<site>-<capture>-split-<device>[-LAN|-WAN]-stats.csv` with `Device,StartTime,Frames,…`, where StartTime is
seconds from the device's first interval; `overall-stats.csv` and `overall-distribution.csv` over each
device's captures concatenated (capture '*' of volume_stats and traffic_distribution).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from iotlake.lake import tables

INTERVAL_HEADER = ["Device", "StartTime", "Frames", "Bytes", "TxFrames", "TxBytes", "RxFrames", "RxBytes"]
METRICS = ["frames", "bytes", "tx_frames", "tx_bytes", "rx_frames", "rx_bytes"]
# Earlier column stems of the six metrics, in the earlier order.
STEMS = dict(zip(METRICS, ["Packet", "Byte", "TxPacket", "TxByte", "RxPacket", "RxByte"], strict=True))
SCOPE_PREFIX = {"ALL": "", "LAN": "Lan", "WAN": "Wan"}
SCOPE_SUFFIX = {"ALL": "", "LAN": "-LAN", "WAN": "-WAN"}
DISTRIBUTION_SCOPES = {"": "", "Lan": "lan_", "Wan": "wan_"}


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote."""

    directory: Path
    files: int
    devices: int


def stats_header() -> list[str]:
    """The 37 columns of the earlier `overall-stats.csv`."""
    return ["Device"] + [
        f"{prefix}{STEMS[m]}{kind}"
        for prefix in SCOPE_PREFIX.values()
        for m in METRICS
        for kind in ("Avg", "CoV")
    ]


def distribution_header() -> list[str]:
    """The 35 columns of the earlier `overall-distribution.csv`."""
    header = ["Device", "PacketTotal", "ByteTotal"]
    for prefix in DISTRIBUTION_SCOPES:
        if prefix:
            header += [f"{prefix}PacketTotal", f"{prefix}PacketPct", f"{prefix}ByteTotal", f"{prefix}BytePct"]
        for side in ("Tx", "Rx"):
            header += [f"{prefix}{side}{u}{k}" for u in ("Packet", "Byte") for k in ("Total", "Pct")]
    return header


def _distribution_column(name: str) -> str:
    """`LanTxPacketPct` → `lan_tx_packet_pct`, the traffic_distribution column behind an earlier header."""
    out = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return out


def _value(value: object) -> object:
    return "" if value is None else value


def export_volumes(
    spark: SparkSession, lake_root: str, dataset: str, profile: str, out_dir: Path
) -> ExportReport:
    """Write the per-device interval files and the two overall files of one dataset and profile."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def read(name: str):
        frame = spark.read.format("delta").load(tables.table(name).path(lake_root))
        return frame.where((F.col("dataset") == dataset) & (F.col("profile") == profile))

    files = 0
    volumes = read("interval_volumes").orderBy("site", "capture", "device", "scope", "interval_start")
    captures = sorted(
        {(r["site"], r["capture"]) for r in volumes.select("site", "capture").distinct().collect()}
    )
    ordinal = {key: 1 + [c for c in captures if c[0] == key[0]].index(key) for key in captures}
    groups: dict[tuple[str, str, str, str], list] = {}
    for row in volumes.toLocalIterator():
        groups.setdefault((row["site"], row["capture"], row["device"], row["scope"]), []).append(row)
    for (site, capture, device, scope), rows in groups.items():
        label = f"{device} ({site}-{ordinal[(site, capture)]})"
        first = rows[0]["interval_start"]
        path = out_dir / f"{site}-{capture}-split-{device}{SCOPE_SUFFIX[scope]}-stats.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(INTERVAL_HEADER)
            for r in rows:
                start = int((r["interval_start"] - first).total_seconds())
                writer.writerow([label, start, *(r[m] for m in METRICS)])
        files += 1

    stats = {
        (r["site"], r["device"], r["scope"]): r
        for r in read("volume_stats").where(F.col("capture") == "*").collect()
    }
    devices = sorted({(site, device) for site, device, _ in stats})
    with (out_dir / "overall-stats.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(stats_header())
        for site, device in devices:
            cells: list[object] = [f"{device} ({site})"]
            for scope in SCOPE_PREFIX:
                row = stats.get((site, device, scope))
                for m in METRICS:
                    cells += [_value(row and row[f"{m}_mean"]), _value(row and row[f"{m}_cov"])]
            writer.writerow(cells)
    distribution = read("traffic_distribution").where(F.col("capture") == "*").orderBy("site", "device")
    header = distribution_header()
    with (out_dir / "overall-distribution.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for r in distribution.collect():
            writer.writerow(
                [f"{r['device']} ({r['site']})"] + [_value(r[_distribution_column(h)]) for h in header[1:]]
            )
    return ExportReport(out_dir, files + 2, len(devices))
