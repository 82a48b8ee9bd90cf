"""Endpoint exports in the Passive-Mode-Study formats: per device and capture `*-endpoints.csv` with the Type
column filled, and the three summary files of `calculate_endpoint_stats.py` (reference §4.4, §4.6, §4.7).

`<site>-<capture>-split-<device>-endpoints.csv` keeps the earlier header (with its leading spaces), counts from
the endpoint's point of view (the endpoint's Tx is the device's Rx), WAN rows before LAN rows, each sorted by
address (IPv4 before IPv6), `None` for unset values and `Local` / `N/A` in the attributes of local rows.
Device labels are `<device> (<site>)` as in the volume exports.
"""

from __future__ import annotations

import csv
import ipaddress
from pathlib import Path

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from iotlake.export.pms import ExportReport
from iotlake.lake import tables

ENDPOINT_HEADER = [
    "IP", "Type", " Cert Owner", " Cert Location", " WHOIS Owner", " WHOIS Location", " ASN Owner",
    " ASN Location", " Original Hostname", " Modified Hostname", " IP Geolocation", " Cert Geolocations",
    " Packets", " Bytes", " TxPackets", " TxBytes", " RxPackets", " RxBytes",
]  # fmt: skip
# The six metrics in the earlier order, as (earlier stem, column stem of the gold tables).
METRICS = [
    ("Packets", "packets"), ("Bytes", "bytes"), ("TxPackets", "tx_packets"),
    ("TxBytes", "tx_bytes"), ("RxPackets", "rx_packets"), ("RxBytes", "rx_bytes"),
]  # fmt: skip
PARTIES = ("First", "Support", "Third", "Local")
# The earlier files quote the six owner/location fields; csv.writer quotes only when needed, so quote by hand.
QUOTED = range(2, 8)


def class_distribution_header(first: str = "Device") -> list[str]:
    """`endpoint_type_distribution.csv`: 6 overall columns, then per class the 6 shares (31 with Device)."""
    return (
        [first]
        + [f"{stem}Overall" for stem, _ in METRICS]
        + [f"{stem}Pct{party}" for party in PARTIES for stem, _ in METRICS]
    )


def local_distribution_header() -> list[str]:
    """`local_endpoint_distribution.csv`: the device's local totals, the target and the shares to it."""
    return (
        ["SourceDevice"]
        + [f"{stem}Overall" for stem, _ in METRICS]
        + ["TargetDevice"]
        + [f"{stem}ToTargetPct" for stem, _ in METRICS]
    )


def protocol_distribution_header() -> list[str]:
    """`endpoint_protocol_distribution.csv`: Device, ProtocolType, then the type distribution's 30 columns."""
    return ["Device", "ProtocolType", *class_distribution_header()[1:]]


def _address_key(ip: str) -> tuple[int, int]:
    address = ipaddress.ip_address(ip)
    return address.version, int(address)


def _text(value: object) -> str:
    return "None" if value is None or value == "" else str(value)


def endpoint_row(row: Row | dict) -> list[str]:
    """One `*-endpoints.csv` row from an endpoint_usage row (counts turned to the endpoint's side)."""
    counts = [
        row["packets"],
        row["bytes"],
        row["rx_packets"],
        row["rx_bytes"],
        row["tx_packets"],
        row["tx_bytes"],
    ]
    if row["scope"] == "LAN":
        return [
            row["remote_ip"],
            row["class"],
            *["Local"] * 6,
            "N/A",
            "N/A",
            "Local",
            "Local",
            *map(str, counts),
        ]
    asn_owner = (
        f"{row['as_name']}, {row['as_country']}" if row["as_name"] and row["as_country"] else row["as_name"]
    )
    name = _text(row["name"])
    return [
        row["remote_ip"],
        row["class"],
        _text(row["cert_org"]),
        _text(row["cert_country"]),
        _text(row["organisation"]),
        _text(row["as_country"] if row["organisation"] else None),
        _text(asn_owner),
        _text(row["as_country"]),
        name,
        name,
        "None",  # IP geolocation: not derived (the earlier tool never filled it either)
        "None",
        *map(str, counts),
    ]


def _write_endpoint_file(path: Path, rows: list[dict]) -> None:
    ordered = sorted(rows, key=lambda r: (r["scope"] == "LAN", _address_key(r["remote_ip"])))
    with path.open("w", newline="", encoding="utf-8") as handle:
        handle.write(",".join(ENDPOINT_HEADER) + "\n")
        for row in ordered:
            cells = endpoint_row(row)
            quoted = [f'"{c}"' if i in QUOTED and row["scope"] != "LAN" else c for i, c in enumerate(cells)]
            handle.write(",".join(quoted) + "\n")


def _shares(row: Row, suffixes: list[str]) -> list[object]:
    return [row[f"{column}_{suffix}"] for suffix in suffixes for _, column in METRICS]


def export_endpoints(
    spark: SparkSession, lake_root: str, dataset: str, profile: str, out_dir: Path
) -> ExportReport:
    """Write the per-device endpoint files and the three distribution files of one dataset and profile."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def read(name: str) -> DataFrame:
        frame = spark.read.format("delta").load(tables.table(name).path(lake_root))
        return frame.where((F.col("dataset") == dataset) & (F.col("profile") == profile))

    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in read("endpoint_usage").toLocalIterator():
        groups.setdefault((row["site"], row["capture"], row["device"]), []).append(row.asDict())
    for (site, capture, device), rows in groups.items():
        _write_endpoint_file(out_dir / f"{site}-{capture}-split-{device}-endpoints.csv", rows)

    def write(name: str, header: list[str], rows: list[list[object]]) -> None:
        with (out_dir / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)

    overall = [f"{column}_overall" for _, column in METRICS]
    by_class = read("endpoint_class_distribution").where(F.col("capture") == "*").orderBy("site", "device")
    write(
        "endpoint_type_distribution.csv",
        class_distribution_header(),
        [
            [
                f"{r['device']} ({r['site']})",
                *(r[c] for c in overall),
                *_shares(r, ["pct_" + p.lower() for p in PARTIES]),
            ]
            for r in by_class.collect()
        ],
    )
    local = (
        read("local_endpoint_distribution").where(F.col("capture") == "*").orderBy("site", "device", "target")
    )
    write(
        "local_endpoint_distribution.csv",
        local_distribution_header(),
        [
            [
                f"{r['device']} ({r['site']})",
                *(r[f"{c}_local"] for _, c in METRICS),
                r["target"],
                *_shares(r, ["to_target_pct"]),
            ]
            for r in local.collect()
        ],
    )
    by_protocol = (
        read("endpoint_protocol_distribution")
        .where((F.col("capture") == "*") & (F.col("semantics") == "pms"))
        .orderBy("site", "device", "category")
    )
    write(
        "endpoint_protocol_distribution.csv",
        protocol_distribution_header(),
        [
            [
                f"{r['device']} ({r['site']})",
                r["category"],
                *(r[c] for c in overall),
                *_shares(r, ["pct_" + p.lower() for p in PARTIES]),
            ]
            for r in by_protocol.collect()
        ],
    )
    devices = {(site, device) for site, _, device in groups}
    return ExportReport(out_dir, len(groups) + 3, len(devices))
