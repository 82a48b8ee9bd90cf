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

Two paths share the parsing and row code: `import_pms` (`iotlake import-pms`, `iotlake reproduce pms`)
writes the rows straight into a lake and rejects negative counts and a protocol row whose MAC is not the device's; the
quality gate (`iotlake contribute` of a `kind: pms-files` dataset, quality/gate.py) calls `import_rows` with
`checked=False`, writes them into its staging lake with each row's file and line (`source_file`,
`source_line`, and the protocol file's own `source_mac`) and leaves those checks to the suites in
`expectations/`, which then name the file and line of every failing row.
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
GOLD_TABLES = ("interval_volumes", "protocol_usage", "endpoint_usage")
# Columns the gate's staging tables carry next to the gold columns (never written into the main lake).
PROVENANCE = ("source_file", "source_line", "source_mac")

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
_PROVENANCE_SCHEMA = ", source_file string, source_line int"


def column_names(schema: str) -> list[str]:
    """The column names of a DDL schema string such as INTERVAL_SCHEMA."""
    return [part.split()[0] for part in schema.split(", ")]


SCHEMAS = {
    "interval_volumes": INTERVAL_SCHEMA + _PROVENANCE_SCHEMA,
    "protocol_usage": PROTOCOL_SCHEMA + _PROVENANCE_SCHEMA + ", source_mac string",
    "endpoint_usage": ENDPOINT_SCHEMA + _PROVENANCE_SCHEMA,
}


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


def _int(cell: str, where: str, column: str, checked: bool = True) -> int:
    try:
        value = int(cell.strip())
    except ValueError:
        raise IotlakeError(where, f"column {column}: expected an integer, got {cell.strip()!r}") from None
    if checked and value < 0:
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
    line: int = 0


def parse_stats(text: str, where: str, checked: bool = True) -> list[IntervalRow]:
    """The interval rows of a `*-stats.csv` file (`Device,StartTime,…`); unchecked, counts may be negative."""
    header, rows = _header(read_rows(text), where)
    index = _columns(header, STATS_COLUMNS, where)
    out = []
    for number, row in rows:
        at = f"{where}:{number}"
        if any(index[c] >= len(row) for c in STATS_COLUMNS[1:]):
            raise IotlakeError(at, f"expected {len(header)} columns, got {len(row)}")
        cells = [_int(row[index[c]], at, c, checked) for c in STATS_COLUMNS[1:]]
        out.append(IntervalRow(*cells, line=number))
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
    line: int = 0


def parse_protocols(text: str, where: str, checked: bool = True) -> list[ProtocolRow]:
    """The rows of a protocols file; a `*` after the address is removed and sets `flagged`.

    Unchecked, counts may be negative (the gate's suites report them).
    """
    header, rows = _header(read_rows(text), where)
    index = _columns(header, PROTOCOL_COLUMNS, where)
    out = []
    for number, row in rows:
        at = f"{where}:{number}"
        if len(row) < len(PROTOCOL_COLUMNS):
            raise IotlakeError(at, f"expected {len(PROTOCOL_COLUMNS)} columns, got {len(row)}")
        ip = row[index["IP"]].strip()
        flagged = ip.endswith("*")
        counts = [_int(row[index[c]], at, c, checked) for c in PROTOCOL_COLUMNS[4:]]
        out.append(
            ProtocolRow(
                row[index["MAC"]].strip().lower(),
                row[index["Protocol"]].strip(),
                ip.rstrip("*").strip(),
                flagged,
                *counts,
                line=number,
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
    line: int = 0


def _none(value: str) -> str | None:
    value = value.strip()
    return None if value in ("", "None", "N/A") else value


def parse_endpoints(text: str, where: str, checked: bool = True) -> list[EndpointRow]:
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
        p, b, e_tx, e_txb, e_rx, e_rxb = (_int(row[index[c]], at, c, checked) for c in ENDPOINT_COLUMNS[12:])
        current = found.get(ip)
        if current is None:
            found[ip] = EndpointRow(ip, kind, local, attributes, p, b, e_rx, e_rxb, e_tx, e_txb, number)
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
    mac_files: dict[str, Path] = field(default_factory=dict)


def data_folder(folder: Path) -> Path:
    """The folder holding 1hour-stats/, protocols/ and endpoints/: `<folder>/data` or the folder itself."""
    return folder / "data" if (folder / "data").is_dir() else folder


def is_pms_folder(folder: Path) -> bool:
    """True when `folder` (or its `data/`) holds a 1hour-stats/, protocols/ or endpoints/ folder."""
    data = data_folder(folder)
    return any((data / family).is_dir() for family in FAMILIES)


def find_files(folder: Path) -> tuple[list[DataFile], list[Path]]:
    """The per-capture files under `folder` and the files left out (summaries, `*-Combined` folders)."""
    data = data_folder(folder)
    if not is_pms_folder(folder):
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
    return files, skipped


def default_macs_dir(folder: Path) -> Path:
    """The default MAC folder of a PMS folder: `<folder>/macs`, else `macs/` next to its data folder."""
    return folder / "macs" if (folder / "macs").is_dir() else data_folder(folder).parent / "macs"


def mac_map_files(macs_dir: Path, sites: Iterable[str]) -> dict[str, Path]:
    """The `<site>-MACs.txt` file of every site, each checked to exist."""
    found = {}
    for site in sorted(set(sites)):
        path = macs_dir / f"{site}-MACs.txt"
        if not path.is_file():
            raise IotlakeError(path, f"MAC map of site {site} not found")
        found[site] = path
    return found


def plan_import(folder: Path, macs_dir: Path | None = None) -> ImportPlan:
    """Find the per-capture files under `folder` and read the sites' MAC maps; no Spark needed."""
    files, skipped = find_files(folder)
    mac_files = mac_map_files(macs_dir or default_macs_dir(folder), (f.site for f in files))
    devices = {site: load_macs(path) for site, path in mac_files.items()}
    plan = ImportPlan(folder, files, devices, skipped, mac_files=mac_files)
    resolve_devices(plan)
    return plan


def second_unit(name: str, candidates: Iterable[str]) -> str | None:
    """The device among `candidates` named like `name` with `2nd` inserted (TPLink → TP2ndLink), if one."""
    found = [c for c in candidates if SECOND_UNIT in c and c.replace(SECOND_UNIT, "") == name]
    return found[0] if len(found) == 1 else None


def resolve_devices(plan: ImportPlan) -> None:
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


def interval_rows(dataset: str, f: DataFile, text: str, name: str = "", checked: bool = True) -> list[tuple]:
    """`interval_volumes` rows of one stats file, each ending with its file `name` and line."""
    rows = parse_stats(text, str(f.path), checked)
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
            name,
            r.line,
        )
        for index, r in enumerate(rows)
    ]


def protocol_rows(
    dataset: str,
    f: DataFile,
    text: str,
    categories: dict[str, str],
    mac: str,
    name: str = "",
    checked: bool = True,
) -> list[tuple]:
    """`protocol_usage` rows of one protocols file, each ending with its file `name`, line and the file's MAC.

    Checked, the file's MAC must be the device's `mac`. A protocol and address listed twice in one file (an
    edited file) become one row with the counts summed (and the first row's line).
    """
    summed: dict[tuple[str, str, str, bool], ProtocolRow] = {}
    for r in parse_protocols(text, str(f.path), checked):
        key = (r.mac, r.protocol, r.remote_ip, r.flagged)
        if key in summed:
            s = summed[key]
            r = ProtocolRow(
                r.mac,
                r.protocol,
                r.remote_ip,
                r.flagged,
                *(getattr(s, c) + getattr(r, c) for c in METRICS),
                line=s.line,
            )
        summed[key] = r
    out = []
    for r in summed.values():
        if checked and r.mac != mac:
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
                name,
                r.line,
                r.mac,
            )
        )
    return out


def _as_name(owner: str | None, country: str | None) -> str | None:
    """`AMAZON-AES, US` → `AMAZON-AES` (the earlier ASN Owner joins the AS name and its country)."""
    if owner and country and owner.endswith(f", {country}"):
        return owner.removesuffix(f", {country}")
    return owner


def endpoint_rows(dataset: str, f: DataFile, text: str, name: str = "", checked: bool = True) -> list[tuple]:
    """`endpoint_usage` rows of one endpoints file, each ending with its file `name` and (first) line."""
    out = []
    for r in parse_endpoints(text, str(f.path), checked):
        a = {} if r.local else r.attributes
        host = a.get("Modified Hostname") or a.get("Original Hostname")
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
                host,
                SOURCE if host else None,
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
                name,
                r.line,
            )
        )
    return out


@dataclass(frozen=True)
class ImportedRows:
    """The gold rows of one plan (each ending with its provenance columns) and the files' combined hash."""

    dataset: str
    plan: ImportPlan
    rows: dict[str, list[tuple]]
    names: dict[str, str]
    sha256: str

    @property
    def flagged(self) -> int:
        """Protocol rows with a `*` address."""
        flagged = column_names(SCHEMAS["protocol_usage"]).index("flagged")
        return sum(1 for r in self.rows["protocol_usage"] if r[flagged])

    @property
    def files(self) -> dict[str, int]:
        """Files read per family (1hour-stats, protocols, endpoints)."""
        counts: dict[str, int] = {}
        for f in self.plan.files:
            counts[f.family] = counts.get(f.family, 0) + 1
        return counts


def _display(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def import_rows(
    config: Config, dataset: str, plan: ImportPlan, base: Path | None = None, checked: bool = True
) -> ImportedRows:
    """Parse every planned file into rows of the three gold tables; no Spark needed.

    Rows carry the file (relative to `base`, default the plan's folder) and line they came from. Unchecked,
    negative counts and a protocol row with another MAC than its device's are kept for the gate's suites.
    """
    from iotlake import protocols

    check_name("dataset", dataset)
    base = base or plan.folder
    types = load_protocol_types(config.conf_dir / protocols.PROTOCOL_TYPES_FILE)
    categories = {t.protocol: t.category for t in types.types}
    macs = {(site, d.device): d.mac for site, devices in plan.devices.items() for d in devices}
    rows: dict[str, list[tuple]] = {name: [] for name in GOLD_TABLES}
    digest = hashlib.sha256()
    for f in plan.files:
        raw = f.path.read_bytes()
        digest.update(str(f.path.relative_to(plan.folder)).encode() + b"\0" + hashlib.sha256(raw).digest())
        try:
            text = raw.decode("utf-8-sig", errors="strict")
        except UnicodeDecodeError as exc:
            raise IotlakeError(f.path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        name = _display(f.path, base)
        if f.family == "1hour-stats":
            rows["interval_volumes"] += interval_rows(dataset, f, text, name, checked)
        elif f.family == "protocols":
            mac = macs[(f.site, f.device)] or ""
            rows["protocol_usage"] += protocol_rows(dataset, f, text, categories, mac, name, checked)
        else:
            rows["endpoint_usage"] += endpoint_rows(dataset, f, text, name, checked)
    names = {site: _display(path, base) for site, path in plan.mac_files.items()}
    return ImportedRows(dataset, plan, rows, names, digest.hexdigest())


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


def without_provenance(frame: DataFrame) -> DataFrame:
    """`frame` without the staging-only provenance columns."""
    return frame.drop(*(c for c in PROVENANCE if c in frame.columns))


def write_import(
    spark: SparkSession,
    lake_root: str,
    sql_dir: Path,
    imported: ImportedRows,
    job: str,
    provenance: bool = False,
    metadata: dict[str, object] | None = None,
) -> dict[str, int]:
    """Replace the dataset's rows of the three gold tables and of `devices` under `lake_root`, one commit each.

    With `provenance` the rows keep their file and line columns (the gate's staging lake); else the frames
    take the existing tables' column order and types. Returns the new version of each table.
    """
    from iotlake.models.runner import declare, discover

    declare(discover(sql_dir))  # the gold tables' entries (layer, partitioning) come from their SQL headers
    dataset = imported.dataset
    metadata = {
        "folder": str(imported.plan.folder),
        "files": len(imported.plan.files),
        "sha256": imported.sha256,
        **(metadata or {}),
    }

    def shaped(frame: DataFrame, entry: tables.Table) -> DataFrame:
        return frame if provenance else conform(without_provenance(frame), entry, lake_root)

    versions: dict[str, int] = {}
    for name in GOLD_TABLES:
        entry = tables.table(name)
        frame = spark.createDataFrame(imported.rows[name], SCHEMAS[name])
        versions[name] = write_table(
            shaped(frame, entry), entry, lake_root, {"dataset": dataset}, job, metadata
        )
    devices = None
    for site, listed in imported.plan.devices.items():
        frame = bronze.devices_frame(spark, dataset, site, listed)
        frame = frame.withColumns(
            {"source_file": F.lit(imported.names.get(site)), "source_line": F.lit(None).cast("int")}
        )
        devices = frame if devices is None else devices.unionByName(frame)
    if devices is not None:
        entry = tables.table("devices")
        versions["devices"] = write_table(
            shaped(devices, entry), entry, lake_root, {"dataset": dataset}, job, metadata
        )
    return versions


def import_pms(
    spark: SparkSession, config: Config, dataset: str, folder: Path, macs_dir: Path | None = None
) -> ImportReport:
    """Import a Passive-Mode-Study folder as dataset `dataset`: replace its rows of the three gold tables and
    of `devices` in one commit each."""
    imported = import_rows(config, dataset, plan_import(folder, macs_dir))
    versions = write_import(spark, config.lake_root, config.project_dir / "sql", imported, JOB)
    log.info("imported %s from %s: %s", dataset, folder, imported.files)
    return ImportReport(
        dataset,
        imported.files,
        {name: len(found) for name, found in imported.rows.items()},
        imported.flagged,
        len(imported.plan.skipped),
        dict(imported.plan.aliases),
        versions,
    )
