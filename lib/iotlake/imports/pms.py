"""Import of the Passive-Mode-Study per-capture data files into the gold tables, marked `source = 'imported'`.

A dataset of this kind has no packets: its rows of `interval_volumes` (hourly `*-stats.csv`), `protocol_usage`
(`*-protocols*.csv`) and `endpoint_usage` (`*-endpoints.csv`) come from the earlier tool's files (reference
passive-mode-study §3.4, §4.2, §4.4, §6), and its `devices` rows from the `macs/<site>-MACs.txt` maps. Folder
layout: `<folder>/data/{1hour-stats,protocols,endpoints}/<capture folder>/…` and `<folder>/macs/`.

Quirks handled (reference §6, §9.11): CRLF and LF files, a UTF-8 BOM, blank lines; endpoint header variants
(`IP,Type,…`, `IP,,…` with an empty Type title, and the raw form without Type); folder names with spaces
("Auxillary Captures"); `*-Combined` folders (concatenations of the per-capture files) and the summary files
are not imported, the summaries are what `iotlake reproduce pms` re-derives; `*` rows of protocol files (the
tool's ambiguous guess of the device's own address) are kept with the address cleaned and `flagged` true;
the `WAN/LAN` cell (always `ALL`) is ignored for the file name's scope; endpoint Tx/Rx (the endpoint's side)
are turned to the device's side; rows of one endpoint file with the same address are summed, the first Type
kept; a second physical unit named `<X>2nd<Y>` in the stats and protocol files but `<X><Y>` in the endpoint
files of the same capture (FR-Capture2's TP2ndLink) is resolved to the second unit, whose MAC differs.

Sites and captures come from the file-name prefix: `FR-Capture1` → site FR, capture Capture1;
`US2-RoboRock-Alone` → US2, RoboRock-Alone; `US1-Home-Full` → US1, Home-Full. Hourly rows have no absolute
time: `interval_start` is the file's StartTime offset from 1970-01-01 (alignment `device_first`), `partial`
is unknown (NULL). Volume and protocol rows are profile `passive` (no-DNS pcaps), endpoint rows
`passive_with_dns`. Imported protocol rows overlap as the earlier files do (a packet counts under ip, tcp,
tls and https); layer rows (ip, ipv6, tcp, udp, tls) are `Non-application` and shares are NULL.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from iotlake.config import Config, Device, load_macs, load_protocol_types
from iotlake.errors import IotlakeError
from iotlake.export.pms import INTERVAL_HEADER
from iotlake.export.pms_endpoints import ENDPOINT_HEADER
from iotlake.export.pms_protocols import PROTOCOLS_HEADER
from iotlake.lake import bronze, tables
from iotlake.lake.writer import write_table
from iotlake.names import check_name

log = logging.getLogger(__name__)

SOURCE = "imported"
JOB = "import_pms"
FAMILIES = ("1hour-stats", "protocols", "endpoints")
LAYER_PROTOCOLS = frozenset({"ip", "ipv6", "tcp", "udp", "tls"})
SECOND_UNIT = "2nd"
DEFAULT_INTERVAL_S = 3600
METRICS = ("packets", "bytes", "tx_packets", "tx_bytes", "rx_packets", "rx_bytes")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_NAME_PATTERNS = {
    "1hour-stats": re.compile(
        r"^(?P<prefix>.+?)-trimmed-filtered-split-(?P<device>.+?)(?:-(?P<scope>LAN|WAN))?-stats\.csv$"
    ),
    "protocols": re.compile(
        r"^(?P<prefix>.+?)-trimmed-filtered(?:-with-DNS)?-split-(?P<device>.+?)(?P<v6>-ipv6)?"
        r"-protocols(?:-(?P<scope>LAN|WAN))?\.csv$"
    ),
    "endpoints": re.compile(
        r"^(?P<prefix>.+?)-trimmed-filtered-with-DNS-split-(?P<device>.+?)-endpoints\.csv$"
    ),
}

# The earlier tool's headers, as the exporters write them (the endpoint files pad names with a space).
STATS_COLUMNS = tuple(INTERVAL_HEADER)
PROTOCOL_COLUMNS = tuple(PROTOCOLS_HEADER)
ENDPOINT_COLUMNS = tuple(c.strip() for c in ENDPOINT_HEADER)

INTERVAL_SCHEMA = (
    "dataset string, site string, capture string, device string, profile string, scope string, "
    "interval_start timestamp, interval_index bigint, interval_s int, alignment string, partial boolean, "
    "frames bigint, bytes bigint, tx_frames bigint, tx_bytes bigint, rx_frames bigint, rx_bytes bigint, "
    "source string"
)
PROTOCOL_SCHEMA = (
    "dataset string, site string, capture string, device string, profile string, scope string, "
    "ip_version int, protocol string, is_application boolean, category string, remote_ip string, "
    "packets bigint, bytes bigint, tx_packets bigint, tx_bytes bigint, rx_packets bigint, rx_bytes bigint, "
    "packet_share double, byte_share double, source string, flagged boolean"
)
ENDPOINT_SCHEMA = (
    "dataset string, site string, capture string, device string, profile string, remote_ip string, "
    "name string, name_source string, names array<string>, asn bigint, as_name string, as_country string, "
    "network_cidr string, organisation string, owner_source string, cert_visible boolean, cert_cn string, "
    "cert_org string, cert_country string, cert_issuer string, cert_san array<string>, "
    "cert_not_after timestamp, cert_hidden_reason string, class string, class_rule string, scope string, "
    "peer_device string, protocols array<string>, remote_ports array<int>, first_seen timestamp, "
    "last_seen timestamp, packets bigint, bytes bigint, tx_packets bigint, tx_bytes bigint, "
    "rx_packets bigint, rx_bytes bigint, source string"
)


# ---------------------------------------------------------------------------------------------- parsing


def read_rows(text: str) -> list[tuple[int, list[str]]]:
    """CSV rows with their line numbers; a BOM, CRLF or LF endings and blank lines are all accepted."""
    text = text.removeprefix("\ufeff")
    rows = []
    for number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if any(cell.strip() for cell in row):
            rows.append((number, row))
    return rows


def _header(rows: list[tuple[int, list[str]]], where: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    if not rows:
        raise IotlakeError(where, "empty file: no header")
    return [c.strip() for c in rows[0][1]], rows[1:]


def _int(cell: str, where: str, column: str) -> int:
    try:
        value = int(cell.strip())
    except ValueError:
        raise IotlakeError(where, f"column {column}: expected an integer, got {cell.strip()!r}") from None
    if value < 0:
        raise IotlakeError(where, f"column {column}: negative count {value}")
    return value


def _columns(header: list[str], wanted: Sequence[str], where: str) -> dict[str, int]:
    missing = [c for c in wanted if c not in header]
    if missing:
        raise IotlakeError(where, f"missing column(s) {', '.join(missing)} in header {','.join(header)!r}")
    return {c: header.index(c) for c in wanted}


@dataclass(frozen=True)
class IntervalRow:
    """One hourly row of a `*-stats.csv` file."""

    start: int
    frames: int
    bytes: int
    tx_frames: int
    tx_bytes: int
    rx_frames: int
    rx_bytes: int


def parse_stats(text: str, where: str) -> list[IntervalRow]:
    """The interval rows of a `*-stats.csv` file (`Device,StartTime,Frames,…`)."""
    header, rows = _header(read_rows(text), where)
    index = _columns(header, STATS_COLUMNS, where)
    out = []
    for number, row in rows:
        at = f"{where}:{number}"
        cells = [_int(row[index[c]], at, c) if index[c] < len(row) else -1 for c in STATS_COLUMNS[1:]]
        if -1 in cells:
            raise IotlakeError(at, f"expected {len(header)} columns, got {len(row)}")
        out.append(IntervalRow(*cells))
    return out


@dataclass(frozen=True)
class ProtocolRow:
    """One row of a `*-protocols*.csv` file; Tx is what the device sent (the file's own convention)."""

    mac: str
    protocol: str
    remote_ip: str
    flagged: bool
    packets: int
    bytes: int
    tx_packets: int
    tx_bytes: int
    rx_packets: int
    rx_bytes: int


def parse_protocols(text: str, where: str) -> list[ProtocolRow]:
    """The rows of a protocols file; a `*` after the address is removed and sets `flagged`."""
    header, rows = _header(read_rows(text), where)
    index = _columns(header, PROTOCOL_COLUMNS, where)
    out = []
    for number, row in rows:
        at = f"{where}:{number}"
        if len(row) < len(PROTOCOL_COLUMNS):
            raise IotlakeError(at, f"expected {len(PROTOCOL_COLUMNS)} columns, got {len(row)}")
        ip = row[index["IP"]].strip()
        flagged = ip.endswith("*")
        counts = [_int(row[index[c]], at, c) for c in PROTOCOL_COLUMNS[4:]]
        out.append(
            ProtocolRow(
                row[index["MAC"]].strip().lower(),
                row[index["Protocol"]].strip(),
                ip.rstrip("*").strip(),
                flagged,
                *counts,
            )
        )
    return out


@dataclass
class EndpointRow:
    """One address of an `*-endpoints.csv` file, counts already from the device's side (tx: it sent)."""

    remote_ip: str
    type: str | None
    local: bool
    attributes: dict[str, str | None]
    packets: int
    bytes: int
    tx_packets: int
    tx_bytes: int
    rx_packets: int
    rx_bytes: int


def _none(value: str) -> str | None:
    value = value.strip()
    return None if value in ("", "None", "N/A") else value


def parse_endpoints(text: str, where: str) -> list[EndpointRow]:
    """The addresses of an endpoints file (any header variant); rows of one address are summed, first Type kept.

    The file's TxPackets/TxBytes are what the endpoint sent, i.e. the device's Rx (reference §2.7).
    """
    header, rows = _header(read_rows(text), where)
    if len(header) > 1 and header[1] == "":
        header[1] = "Type"  # the `IP,, Cert Owner,…` variant: the Type column with an empty title
    wanted = [c for c in ENDPOINT_COLUMNS if c != "Type" or "Type" in header]
    index = _columns(header, wanted, where)
    found: dict[str, EndpointRow] = {}
    for number, row in rows:
        at = f"{where}:{number}"
        if len(row) < len(header):
            raise IotlakeError(at, f"expected {len(header)} columns, got {len(row)}")
        ip = row[index["IP"]].strip()
        kind = row[index["Type"]].strip() or None if "Type" in index else None
        attributes = {c: _none(row[index[c]]) for c in ENDPOINT_COLUMNS[2:12]}
        local = (kind or "").startswith("Local") or attributes["ASN Owner"] == "Local"
        p, b, e_tx, e_txb, e_rx, e_rxb = (_int(row[index[c]], at, c) for c in ENDPOINT_COLUMNS[12:])
        current = found.get(ip)
        if current is None:
            found[ip] = EndpointRow(ip, kind, local, attributes, p, b, e_rx, e_rxb, e_tx, e_txb)
        else:
            current.packets += p
            current.bytes += b
            current.tx_packets += e_rx
            current.tx_bytes += e_rxb
            current.rx_packets += e_tx
            current.rx_bytes += e_txb
    return list(found.values())


# ---------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class DataFile:
    """One per-capture data file and what its name says."""

    family: str
    path: Path
    site: str
    capture: str
    device: str
    scope: str
    ip_version: int | None


def classify(family: str, path: Path) -> DataFile | None:
    """What a per-capture file name says (site, capture, device, scope, IP version), None for other files."""
    match = _NAME_PATTERNS[family].match(path.name)
    if match is None or match.group("device").startswith("combined-"):
        return None
    prefix = match.group("prefix")
    site, _, capture = prefix.partition("-")
    where = str(path)
    check_name("site", site, where)
    check_name("capture", capture or prefix, where)
    check_name("device", match.group("device"), where)
    version = None
    if family == "protocols":
        version = 6 if match.group("v6") else 4
    scope = match.groupdict().get("scope") or "ALL"
    return DataFile(family, path, site, capture or prefix, match.group("device"), scope, version)


@dataclass
class ImportPlan:
    """The files of a PMS folder to import, the MAC maps of their sites and what was left out."""

    folder: Path
    files: list[DataFile]
    devices: dict[str, list[Device]]
    skipped: list[Path] = field(default_factory=list)
    aliases: dict[tuple[str, str, str], str] = field(default_factory=dict)


def data_folder(folder: Path) -> Path:
    """The folder holding 1hour-stats/, protocols/ and endpoints/: `<folder>/data` or the folder itself."""
    return folder / "data" if (folder / "data").is_dir() else folder


def plan_import(folder: Path, macs_dir: Path | None = None) -> ImportPlan:
    """Find the per-capture files under `folder` and read the sites' MAC maps; no Spark needed."""
    data = data_folder(folder)
    if not any((data / family).is_dir() for family in FAMILIES):
        raise IotlakeError(folder, f"no {', '.join(FAMILIES)} folder: not a Passive-Mode-Study data folder")
    files: list[DataFile] = []
    skipped: list[Path] = []
    for family in FAMILIES:
        root = data / family
        for path in sorted(root.rglob("*.csv")) if root.is_dir() else []:
            relative = path.relative_to(root)
            combined = any(part.endswith("-Combined") for part in relative.parts[:-1])
            found = None if combined or len(relative.parts) == 1 else classify(family, path)
            if found is None:
                skipped.append(path)
            else:
                files.append(found)
    if not files:
        raise IotlakeError(folder, "no per-capture data files found")
    seen: dict[tuple, Path] = {}
    for f in files:
        key = (f.family, f.site, f.capture, f.device, f.scope, f.ip_version)
        if key in seen:
            raise IotlakeError(f.path, f"same capture, device and scope as {seen[key]}")
        seen[key] = f.path
    macs_dir = macs_dir or (folder / "macs" if (folder / "macs").is_dir() else data.parent / "macs")
    devices: dict[str, list[Device]] = {}
    for site in sorted({f.site for f in files}):
        path = macs_dir / f"{site}-MACs.txt"
        if not path.is_file():
            raise IotlakeError(path, f"MAC map of site {site} not found")
        devices[site] = load_macs(path)
    plan = ImportPlan(folder, files, devices, skipped)
    _resolve_devices(plan)
    return plan


def second_unit(name: str, candidates: Iterable[str]) -> str | None:
    """The device among `candidates` named like `name` with `2nd` inserted (TPLink → TP2ndLink), if one."""
    found = [c for c in candidates if SECOND_UNIT in c and c.replace(SECOND_UNIT, "") == name]
    return found[0] if len(found) == 1 else None


def _resolve_devices(plan: ImportPlan) -> None:
    """Check every device is in its site's MAC map; endpoint names of a second unit become that unit's name."""
    measured: dict[tuple[str, str], set[str]] = {}
    for f in plan.files:
        if f.family != "endpoints":
            measured.setdefault((f.site, f.capture), set()).add(f.device)
    resolved = []
    for f in plan.files:
        known = {d.device for d in plan.devices[f.site]}
        device = f.device
        if f.family == "endpoints":
            in_capture = measured.get((f.site, f.capture), set())
            if device not in in_capture:
                alias = second_unit(device, in_capture)
                if alias is not None:
                    plan.aliases[(f.site, f.capture, device)] = alias
                    device = alias
        if device not in known:
            raise IotlakeError(f.path, f"device {device!r} is not in the MAC map of site {f.site}")
        resolved.append(f if device == f.device else DataFile(**{**f.__dict__, "device": device}))
    plan.files = resolved


# ---------------------------------------------------------------------------------------------- rows


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig")


def interval_rows(dataset: str, f: DataFile, text: str) -> list[tuple]:
    """`interval_volumes` rows of one stats file."""
    rows = parse_stats(text, str(f.path))
    step = rows[1].start - rows[0].start if len(rows) > 1 and rows[1].start > rows[0].start else None
    interval_s = step or DEFAULT_INTERVAL_S
    return [
        (
            dataset,
            f.site,
            f.capture,
            f.device,
            "passive",
            f.scope,
            _EPOCH + dt.timedelta(seconds=r.start),
            index,
            interval_s,
            "device_first",
            None,
            r.frames,
            r.bytes,
            r.tx_frames,
            r.tx_bytes,
            r.rx_frames,
            r.rx_bytes,
            SOURCE,
        )
        for index, r in enumerate(rows)
    ]


def protocol_rows(dataset: str, f: DataFile, text: str, categories: dict[str, str], mac: str) -> list[tuple]:
    """`protocol_usage` rows of one protocols file; the file's MAC must be the device's.

    A protocol and address listed twice in one file (an edited file) become one row with the counts summed.
    """
    summed: dict[tuple[str, str, bool], ProtocolRow] = {}
    for r in parse_protocols(text, str(f.path)):
        key = (r.protocol, r.remote_ip, r.flagged)
        if key in summed:
            s = summed[key]
            r = ProtocolRow(
                r.mac,
                r.protocol,
                r.remote_ip,
                r.flagged,
                *(getattr(s, c) + getattr(r, c) for c in METRICS),
            )
        summed[key] = r
    out = []
    for r in summed.values():
        if r.mac != mac:
            raise IotlakeError(f.path, f"MAC {r.mac} is not {mac}, the MAC of {f.device} in the site's map")
        application = r.protocol not in LAYER_PROTOCOLS
        category = categories.get(r.protocol, "Unknown") if application else "Non-application"
        out.append(
            (
                dataset,
                f.site,
                f.capture,
                f.device,
                "passive",
                f.scope,
                f.ip_version,
                r.protocol,
                application,
                category,
                r.remote_ip,
                r.packets,
                r.bytes,
                r.tx_packets,
                r.tx_bytes,
                r.rx_packets,
                r.rx_bytes,
                None,
                None,
                SOURCE,
                r.flagged,
            )
        )
    return out


def _as_name(owner: str | None, country: str | None) -> str | None:
    """`AMAZON-AES, US` → `AMAZON-AES` (the earlier ASN Owner joins the AS name and its country)."""
    if owner and country and owner.endswith(f", {country}"):
        return owner.removesuffix(f", {country}")
    return owner


def endpoint_rows(dataset: str, f: DataFile, text: str) -> list[tuple]:
    """`endpoint_usage` rows of one endpoints file."""
    out = []
    for r in parse_endpoints(text, str(f.path)):
        a = {} if r.local else r.attributes
        name = a.get("Modified Hostname") or a.get("Original Hostname")
        names = sorted({n for n in (a.get("Original Hostname"), a.get("Modified Hostname")) if n})
        as_name = _as_name(a.get("ASN Owner"), a.get("ASN Location"))
        peer = r.type[len("Local (") : -1] if r.type and r.type.startswith("Local (") else None
        out.append(
            (
                dataset,
                f.site,
                f.capture,
                f.device,
                "passive_with_dns",
                r.remote_ip,
                name,
                SOURCE if name else None,
                names,
                None,
                as_name,
                a.get("ASN Location"),
                None,
                a.get("WHOIS Owner"),
                SOURCE if as_name else None,
                None,
                None,
                a.get("Cert Owner"),
                a.get("Cert Location"),
                None,
                None,
                None,
                None,
                r.type,
                "Type column of the imported file" if r.type else None,
                "LAN" if r.local else "WAN",
                peer,
                None,
                None,
                None,
                None,
                r.packets,
                r.bytes,
                r.tx_packets,
                r.tx_bytes,
                r.rx_packets,
                r.rx_bytes,
                SOURCE,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote."""

    dataset: str
    files: dict[str, int]
    rows: dict[str, int]
    flagged: int
    skipped: int
    aliases: dict[tuple[str, str, str], str]
    versions: dict[str, int]


def conform(frame: DataFrame, entry: tables.Table, lake_root: str) -> DataFrame:
    """`frame` in the column order and types of the existing table (missing columns NULL, new ones appended)."""
    spark = frame.sparkSession
    if not tables.exists(spark, lake_root, entry):
        return frame
    target = spark.read.format("delta").load(entry.path(lake_root)).schema
    present = set(frame.columns)
    names = {f.name for f in target.fields}
    columns = [
        (F.col(f.name) if f.name in present else F.lit(None)).cast(f.dataType).alias(f.name)
        for f in target.fields
    ]
    return frame.select(*columns, *(F.col(c) for c in frame.columns if c not in names))


def import_pms(
    spark: SparkSession, config: Config, dataset: str, folder: Path, macs_dir: Path | None = None
) -> ImportReport:
    """Import a Passive-Mode-Study folder as dataset `dataset`: replace its rows of the three gold tables and
    of `devices` in one commit each."""
    from iotlake import protocols
    from iotlake.models.runner import declare, discover

    check_name("dataset", dataset)
    plan = plan_import(folder, macs_dir)
    declare(discover(config.project_dir / "sql"))
    types = load_protocol_types(config.conf_dir / protocols.PROTOCOL_TYPES_FILE)
    categories = {t.protocol: t.category for t in types.types}
    macs = {(site, d.device): d.mac for site, devices in plan.devices.items() for d in devices}
    rows: dict[str, list[tuple]] = {"interval_volumes": [], "protocol_usage": [], "endpoint_usage": []}
    digest = hashlib.sha256()
    for f in plan.files:
        raw = f.path.read_bytes()
        digest.update(str(f.path.relative_to(plan.folder)).encode() + b"\0" + hashlib.sha256(raw).digest())
        text = raw.decode("utf-8-sig", errors="strict")
        if f.family == "1hour-stats":
            rows["interval_volumes"] += interval_rows(dataset, f, text)
        elif f.family == "protocols":
            rows["protocol_usage"] += protocol_rows(dataset, f, text, categories, macs[(f.site, f.device)])
        else:
            rows["endpoint_usage"] += endpoint_rows(dataset, f, text)
    schemas = {
        "interval_volumes": INTERVAL_SCHEMA,
        "protocol_usage": PROTOCOL_SCHEMA,
        "endpoint_usage": ENDPOINT_SCHEMA,
    }
    metadata = {"folder": str(plan.folder), "files": len(plan.files), "sha256": digest.hexdigest()}
    versions: dict[str, int] = {}
    for name, found in rows.items():
        entry = tables.table(name)
        frame = conform(spark.createDataFrame(found, schemas[name]), entry, config.lake_root)
        versions[name] = write_table(frame, entry, config.lake_root, {"dataset": dataset}, JOB, metadata)
    devices = None
    for site, listed in plan.devices.items():
        frame = bronze.devices_frame(spark, dataset, site, listed)
        devices = frame if devices is None else devices.unionByName(frame)
    if devices is not None:
        entry = tables.table("devices")
        versions["devices"] = write_table(
            conform(devices, entry, config.lake_root),
            entry,
            config.lake_root,
            {"dataset": dataset},
            JOB,
            metadata,
        )
    counts: dict[str, int] = {}
    for f in plan.files:
        counts[f.family] = counts.get(f.family, 0) + 1
    flagged = sum(1 for r in rows["protocol_usage"] if r[-1])
    log.info("imported %s from %s: %s", dataset, folder, counts)
    return ImportReport(
        dataset,
        counts,
        {name: len(found) for name, found in rows.items()},
        flagged,
        len(plan.skipped),
        dict(plan.aliases),
        versions,
    )
