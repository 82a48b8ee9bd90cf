"""Protocol exports in the Passive-Mode-Study formats: per-device `*-protocols.csv` files and the three summaries.

File layouts and headers follow the earlier tool (reference passive-mode-study §4.2, §4.3, §6.3):
* per device and capture `<site>-<capture>-split-<device>[-ipv6]-protocols[-LAN|-WAN].csv` with
  `MAC,WAN/LAN,Protocol,IP,TotalPackets,…`, one row per protocol and remote IP; Tx is what the device sent;
* `<dataset>-proto-distributions.csv` (rows ALL, LAN, WAN per device), `<dataset>-unique-protos-per-mac.csv`
  (rows ALL, WAN, LAN) and `<dataset>-unique-app-protos-overall.csv`, over each device's captures ('*').

What differs from the earlier files, on purpose (reference §9): every packet counts once, under its network
protocol (`ip`/`ipv6` rows: all the device's IP packets with that remote address) and its one application label
(gold `protocol_usage`); there are no `tcp`/`udp`/`tls` rows, as the gold tables hold no per-transport
counts (the layers are listed in the unique-protocols file). The `WAN/LAN` cell is the file's scope, not always
`ALL`; no `*` rows (the device's own address is known, not guessed); a file with no rows is not written; lists
are sorted rather than in discovery order; Purpose and Type of the overall list come from
conf/protocol_types.csv instead of being filled in by hand; MACs are upper case as in the earlier files.
"""

from __future__ import annotations

import csv
import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from iotlake.export.pms import ExportReport
from iotlake.lake import tables

PROTOCOLS_HEADER = [
    "MAC",
    "WAN/LAN",
    "Protocol",
    "IP",
    "TotalPackets",
    "TotalBytes",
    "TxPackets",
    "TxBytes",
    "RxPackets",
    "RxBytes",
]
DISTRIBUTION_HEADER = ["MAC", "Type", "TotalCount"] + [
    f"{c}{k}"
    for c in ("Discovery", "Management", "Encrypted", "NonEncrypted", "Unknown")
    for k in ("Count", "Pct")
]
UNIQUE_HEADER = ["MAC", "Type", "Network", "Transport", "Session", "Application"]
OVERALL_HEADER = ["Proto", "Purpose", "Type"]
METRICS = ["packets", "bytes", "tx_packets", "tx_bytes", "rx_packets", "rx_bytes"]
SCOPE_SUFFIX = {"ALL": "", "LAN": "-LAN", "WAN": "-WAN"}
# gold protocol_distribution_pms columns behind DISTRIBUTION_HEADER[2:]
DISTRIBUTION_COLUMNS = ["total_count"] + [
    f"{c}_{k}"
    for c in ("discovery", "management", "encrypted", "nonencrypted", "unknown")
    for k in ("count", "pct")
]
# conf/protocol_types.csv categories as the curated earlier `All-unique-app-protos-overall.csv` names them
TYPE_NAMES = {
    "Discovery": "Discovery",
    "Management": "Management",
    "Encrypted": "Encrypted App",
    "Unencrypted": "Unencrypted App",
}


def protocols_file_name(site: str, capture: str, device: str, ip_version: int, scope: str) -> str:
    """`<site>-<capture>-split-<device>[-ipv6]-protocols[-LAN|-WAN].csv`, the earlier per-device name."""
    version = "-ipv6" if ip_version == 6 else ""
    return f"{site}-{capture}-split-{device}{version}-protocols{SCOPE_SUFFIX[scope]}.csv"


def _ip_key(ip: str | None) -> tuple[int, int, int | str]:
    """Addresses numerically (IPv4 before IPv6), anything else after them, as the earlier files sort."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return (1, 0, ip or "")
    return (0, address.version, int(address))


def _writer(path: Path, header: list[str]):
    handle = path.open("w", newline="")
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(header)
    return handle, writer


def _quoted_list(items: Iterable[str] | None) -> str:
    """A comma list always in double quotes, as the earlier unique-protocols cells (`"tcp,udp"`, `""`)."""
    return '"' + ",".join(items or []).replace('"', '""') + '"'


def export_protocols(
    spark: SparkSession,
    lake_root: str,
    dataset: str,
    profile: str,
    out_dir: Path,
    purposes: Mapping[str, str] | None = None,
) -> ExportReport:
    """Write the per-device protocol files and the three protocol summaries of one dataset and profile.

    `purposes` maps an application label to its purpose (conf/protocol_types.csv) for the overall list.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    purposes = purposes or {}

    def read(name: str) -> DataFrame:
        frame = spark.read.format("delta").load(tables.table(name).path(lake_root))
        return frame.where((F.col("dataset") == dataset) & (F.col("profile") == profile))

    devices = spark.read.format("delta").load(tables.table("devices").path(lake_root))
    macs = {
        (r["site"], r["device"]): (r["mac"] or "").upper()
        for r in devices.where(F.col("dataset") == dataset).select("site", "device", "mac").collect()
    }

    usage = read("protocol_usage").where(F.col("ip_version").isin(4, 6))
    keys = ["site", "capture", "device", "scope", "ip_version", "remote_ip"]
    network = (
        usage.groupBy(*keys)
        .agg(*(F.sum(m).alias(m) for m in METRICS))
        .withColumn("protocol", F.when(F.col("ip_version") == 6, "ipv6").otherwise("ip"))
        .withColumn("layer", F.lit(0))
    )
    application = usage.where("is_application").select(*keys, *METRICS, "protocol", F.lit(1).alias("layer"))
    rows = network.unionByName(application)
    groups: dict[tuple[str, str, str, int, str], list] = {}
    for row in rows.toLocalIterator():
        key = (row["site"], row["capture"], row["device"], row["ip_version"], row["scope"])
        groups.setdefault(key, []).append(row)
    files = 0
    for (site, capture, device, ip_version, scope), group in sorted(groups.items()):
        group.sort(key=lambda r: (r["layer"], r["protocol"], _ip_key(r["remote_ip"])))
        path = out_dir / protocols_file_name(site, capture, device, ip_version, scope)
        handle, writer = _writer(path, PROTOCOLS_HEADER)
        with handle:
            mac = macs.get((site, device), "")
            for r in group:
                writer.writerow([mac, scope, r["protocol"], r["remote_ip"] or "", *(r[m] for m in METRICS)])
        files += 1

    distribution = {
        (r["site"], r["device"], r["scope"]): r
        for r in read("protocol_distribution_pms").where(F.col("capture") == "*").collect()
    }
    listed = sorted({(site, device) for site, device, _ in distribution})
    handle, writer = _writer(out_dir / f"{dataset}-proto-distributions.csv", DISTRIBUTION_HEADER)
    with handle:
        for site, device in listed:
            for scope in ("ALL", "LAN", "WAN"):
                r = distribution.get((site, device, scope))
                if r is None or not r["total_count"]:  # the earlier zero row: integer zeros throughout
                    cells = [0] * len(DISTRIBUTION_COLUMNS)
                else:
                    cells = [r[c] for c in DISTRIBUTION_COLUMNS]
                writer.writerow([macs.get((site, device), ""), scope, *cells])

    unique = {
        (r["site"], r["device"], r["scope"]): r
        for r in read("unique_protocols").where(F.col("capture") == "*").collect()
    }
    path = out_dir / f"{dataset}-unique-protos-per-mac.csv"
    with path.open("w", newline="") as handle:
        handle.write(",".join(UNIQUE_HEADER) + "\n")
        for site, device in sorted({(site, device) for site, device, _ in unique}):
            for scope in ("ALL", "WAN", "LAN"):  # the earlier order of this file
                r = unique.get((site, device, scope))
                layers = [r and r[c] for c in ("network", "transport", "session", "application")]
                handle.write(
                    ",".join([macs.get((site, device), ""), scope, *(_quoted_list(x) for x in layers)]) + "\n"
                )

    categories = {
        r["protocol"]: r["category"]
        for r in usage.where("is_application").select("protocol", "category").distinct().collect()
    }
    handle, writer = _writer(out_dir / f"{dataset}-unique-app-protos-overall.csv", OVERALL_HEADER)
    with handle:
        for protocol in sorted(categories):
            writer.writerow([protocol, purposes.get(protocol, ""), TYPE_NAMES.get(categories[protocol], "")])
    return ExportReport(out_dir, files + 3, len(listed))
