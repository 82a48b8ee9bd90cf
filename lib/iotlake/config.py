"""Typed configuration, loaded in one place: settings, dataset registry, site configs and MAC maps.

Every error names the file (and line, for CSV files) and the problem, as an `IotlakeError`.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iotlake.errors import ConfigError
from iotlake.names import check_name

MAC_RE = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")


# Flag columns of silver.device_packets a filter profile may exclude (see sql/silver/device_packets.sql).
PacketFlag = Literal[
    "retransmission",
    "duplicate_ack",
    "ack_lost_segment",
    "dhcp",
    "dhcpv6",
    "icmp",
    "icmpv6",
    "igmp",
    "dns",
    "gateway",
    "excluded",
]
PACKET_FLAGS: tuple[PacketFlag, ...] = get_args(PacketFlag)
Alignment = Literal["wall_clock", "capture_start", "device_first"]


class FilterProfile(BaseModel):
    """A named packet filter: keep IP packets only or all, and drop packets carrying any excluded flag."""

    model_config = ConfigDict(extra="forbid")

    ip_only: bool = False
    exclude: list[PacketFlag] = Field(default_factory=list)


def _default_profiles() -> dict[str, FilterProfile]:
    return {
        "passive": FilterProfile(ip_only=True, exclude=list(PACKET_FLAGS)),
        "passive_with_dns": FilterProfile(ip_only=True, exclude=[f for f in PACKET_FLAGS if f != "dns"]),
        "all": FilterProfile(),
    }


class EnrichSettings(BaseModel):
    """`enrich:` in iotlake.yaml: how IP owners are looked up (RDAP online, offline ASN data otherwise)."""

    model_config = ConfigDict(extra="forbid")

    rdap: bool = True
    probe_host: str = "rdap.arin.net"
    timeout_s: float = Field(default=5.0, gt=0)
    retries: int = Field(default=2, ge=0)
    rate_per_s: float = Field(default=2.0, gt=0)
    parallelism: int = Field(default=4, ge=1)


class FlowSettings(BaseModel):
    """`flows:` in conf/iotlake.yaml: how packets become flows and when a flow pattern is periodic."""

    model_config = ConfigDict(extra="forbid")

    tcp_idle_s: float = Field(
        default=300.0, gt=0, description="a TCP flow ends after this long without a packet"
    )
    udp_idle_s: float = Field(
        default=60.0, gt=0, description="a UDP flow ends after this long without a packet"
    )
    periodic_min_flows: int = Field(
        default=4, ge=3, description="flows a pattern needs to be called periodic"
    )
    periodic_max_cov: float = Field(
        default=0.2, gt=0, description="largest CoV of inter-arrivals of a periodic pattern"
    )

    def parameters(self) -> dict[str, float | int]:
        """The named SQL parameters of the flow models."""
        return {
            "flow_tcp_idle_s": self.tcp_idle_s,
            "flow_udp_idle_s": self.udp_idle_s,
            "periodic_min_flows": self.periodic_min_flows,
            "periodic_max_cov": self.periodic_max_cov,
        }


class SignatureSettings(BaseModel):
    """`signatures` in iotlake.yaml: how event signatures are learned, detected and evaluated."""

    model_config = ConfigDict(extra="forbid")

    min_support: float = Field(
        default=1.0, gt=0, le=1, description="share of an event's training captures a flow must occur in"
    )
    repeat_gap_s: float = Field(
        default=5.0, ge=0, description="a flow repeating in a capture with this median gap is background"
    )
    window_slack_s: float = Field(
        default=5.0, ge=0, description="added to the longest training span to form the detection window"
    )
    train_fraction: float = Field(
        default=0.5, gt=0, lt=1, description="share of each event's captures `evaluate` learns on"
    )

    def parameters(self) -> dict[str, float]:
        """The named SQL parameters of the signature queries."""
        return {
            "min_support": self.min_support,
            "repeat_gap_s": self.repeat_gap_s,
            "window_slack_s": self.window_slack_s,
        }


class Settings(BaseModel):
    """`conf/iotlake.yaml`: where the lake lives and how jobs run."""

    model_config = ConfigDict(extra="forbid")

    lake_root: str = "./lake"
    spark_master: str = "local[*]"
    parallelism: int | None = Field(default=None, ge=1, description="extraction tasks; default: all cores")
    chunk_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    chunk_packets: int = Field(default=250_000, ge=1000)
    chunk_lead_in: int = Field(
        default=10_000, ge=0, description="frames of the previous chunk tshark reads first, for TCP analysis"
    )
    interval_s: int = Field(default=3600, ge=1)
    alignment: Alignment = "wall_clock"
    enrich: EnrichSettings = Field(default_factory=EnrichSettings)
    flows: FlowSettings = Field(default_factory=FlowSettings)
    signatures: SignatureSettings = Field(default_factory=SignatureSettings)
    profiles: dict[str, FilterProfile] = Field(default_factory=_default_profiles, min_length=1)

    @field_validator("profiles")
    @classmethod
    def _profile_names(cls, values: dict[str, FilterProfile]) -> dict[str, FilterProfile]:
        for name in values:
            check_name("profile", name)
        return values

    delta_jars: Literal["auto", "packages", "local"] = "auto"
    local_prefixes: list[str] = Field(
        default_factory=lambda: [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "224.0.0.0/4",
            "255.255.255.255/32",
            "fe80::/10",
            "fc00::/7",
            "ff00::/8",
        ],
        description="ranges that are local at every site (RFC 1918, link-local, ULA, multicast)",
    )
    jar_cache: str = "~/.cache/iotlake/jars"


class PartyRule(BaseModel):
    """Domains (matched on label boundaries) and AS/organisation names of one party."""

    model_config = ConfigDict(extra="forbid")

    domains: list[str] = Field(default_factory=list)
    orgs: list[str] = Field(default_factory=list)

    @field_validator("domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            domain = str(value).strip().lower().strip(".")
            if not re.fullmatch(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*", domain):
                raise ValueError(f"invalid domain {value!r}")
            out.append(domain)
        return out


class EndpointRules(BaseModel):
    """`conf/endpoint_rules.yaml`: first-party domains and orgs per device vendor, and the support parties."""

    model_config = ConfigDict(extra="forbid")

    first_party: dict[str, PartyRule] = Field(default_factory=dict)
    support: PartyRule = Field(default_factory=PartyRule)

    def rows(self) -> list[tuple[str, str | None, str, str]]:
        """The rules as (party, vendor, kind, value) rows for the `party_rules` view of the endpoint models."""
        rows: list[tuple[str, str | None, str, str]] = []
        for vendor, rule in self.first_party.items():
            rows += [("First", vendor.lower(), "domain", d) for d in rule.domains]
            rows += [("First", vendor.lower(), "org", o.upper()) for o in rule.orgs]
        rows += [("Support", None, "domain", d) for d in self.support.domains]
        rows += [("Support", None, "org", o.upper()) for o in self.support.orgs]
        return rows


def load_endpoint_rules(path: Path) -> EndpointRules:
    """The endpoint party rules; none (everything remote is Third) when the file is absent."""
    return _validated(EndpointRules, _load_yaml(path), path) if path.is_file() else EndpointRules()


class SiteConfig(BaseModel):
    """`sites/<site>.yaml`: addresses that are local beyond the built-in ranges, and the gateways."""

    model_config = ConfigDict(extra="forbid")

    local_prefixes: list[str] = Field(default_factory=list)
    gateway_ips: list[str] = Field(default_factory=list)
    excluded_ips: list[str] = Field(default_factory=list)
    # Party rules that only this site needs (e.g. a lab's own servers), added to conf/endpoint_rules.yaml.
    endpoint_rules: EndpointRules = Field(default_factory=EndpointRules)

    @field_validator("local_prefixes")
    @classmethod
    def _prefixes(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            try:
                out.append(str(ipaddress.ip_network(str(value), strict=True)))
            except ValueError as exc:
                raise ValueError(f"invalid prefix {value!r}: {exc}") from None
        return out

    @field_validator("gateway_ips", "excluded_ips")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            try:
                out.append(str(ipaddress.ip_address(str(value))))
            except ValueError:
                raise ValueError(f"invalid IP address {value!r}") from None
        return out


Attribution = Literal["mac", "ip"]


@dataclass(frozen=True)
class Device:
    """One row of a MAC map: a device of a site, known by its MAC, its IP, or both."""

    device: str
    mac: str | None
    ip: str | None = None
    vendor: str | None = None
    kind: str | None = None

    @property
    def attribution(self) -> Attribution:
        """How the device's frames are found: by `mac` when the map gives one, else by `ip` (raw-IP captures)."""
        return "mac" if self.mac else "ip"


@dataclass(frozen=True)
class DatasetEntry:
    """One row of the dataset registry `conf/datasets.csv`."""

    name: str
    directory: Path
    source: str = ""
    status: str = "registered"


def normalise_mac(value: str) -> str | None:
    """Lower-case colon form of a MAC, or None when `value` is not a MAC."""
    value = value.strip().lower()
    return value.replace("-", ":") if MAC_RE.fullmatch(value) else None


def _read_text(path: Path) -> str:
    """Read a config file as text, tolerating a UTF-8 BOM and CRLF line ends."""
    if not path.is_file():
        raise ConfigError(path, "file not found")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a read or syntax error is one line naming the file (and line)."""
    try:
        return yaml.safe_load(_read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(where, f"invalid YAML ({getattr(exc, 'problem', exc)})") from None


def _load_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(path, "expected a mapping of keys to values")
    return data


def _validated(model: type[BaseModel], data: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(path, f"{field}: {message}") from None


def load_settings(path: Path) -> Settings:
    """Settings from `iotlake.yaml`; defaults when the file does not exist."""
    return _validated(Settings, _load_yaml(path), path) if path.exists() else Settings()


def load_site(path: Path | None) -> SiteConfig:
    """A site's config; an empty one (built-in local ranges only) when there is no file."""
    return _validated(SiteConfig, _load_yaml(path), path) if path else SiteConfig()


def load_macs(path: Path) -> list[Device]:
    """Parse a MAC map: `device,mac[,ip][,vendor][,kind]` with a header, or the earlier `Name,MAC` lines.

    With a header, a row may leave the MAC empty when it gives an IP: that device is attributed by IP.
    """
    rows = list(csv.reader(io.StringIO(_read_text(path))))
    header = ["device", "mac", "ip", "vendor", "kind"]
    start = 0
    for index, row in enumerate(rows):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if cells[0].lower() in {"device", "name"} and len(cells) > 1 and normalise_mac(cells[1]) is None:
            header = [c.lower() for c in cells]
            if "mac" not in header or not ({"device", "name"} & set(header)):
                raise ConfigError(
                    f"{path}:{index + 1}", "header must name a device (or name) and a mac column"
                )
            header = ["device" if c == "name" else c for c in header]
            start = index + 1
        break
    devices: list[Device] = []
    seen_names: dict[str, int] = {}
    seen_macs: dict[str, int] = {}
    seen_ips: dict[str, int] = {}
    for index in range(start, len(rows)):
        line = index + 1
        cells = [c.strip() for c in rows[index]]
        if not any(cells) or cells[0].startswith("#"):
            continue
        where = f"{path}:{line}"
        if len(cells) < 2:
            raise ConfigError(where, f"expected 'device,mac', got {','.join(cells)!r}")
        record = dict(zip(header, cells, strict=False))
        name = record.get("device", "")
        check_name("device", name, where)
        if name in seen_names:
            raise ConfigError(where, f"duplicate device name {name!r} (first on line {seen_names[name]})")
        ip = record.get("ip") or None
        if ip:
            try:
                ip = str(ipaddress.ip_address(ip))
            except ValueError:
                raise ConfigError(where, f"invalid IP address {ip!r} for device {name!r}") from None
            if ip in seen_ips:
                raise ConfigError(where, f"duplicate IP {ip} (first on line {seen_ips[ip]})")
        mac_text = record.get("mac", "")
        mac = normalise_mac(mac_text)
        if mac is None and (mac_text or not ip):
            what = f"malformed MAC {mac_text!r}" if mac_text else "no MAC and no IP"
            raise ConfigError(where, f"{what} for device {name!r}")
        if mac is not None and mac in seen_macs:
            raise ConfigError(where, f"duplicate MAC {mac} (first on line {seen_macs[mac]})")
        seen_names[name] = line
        if mac is not None:
            seen_macs[mac] = line
        if ip:
            seen_ips[ip] = line
        devices.append(Device(name, mac, ip, record.get("vendor") or None, record.get("kind") or None))
    if not devices:
        raise ConfigError(path, "no devices listed")
    return devices


def load_registry(path: Path, base: Path) -> dict[str, DatasetEntry]:
    """The dataset registry `name,directory,source,licence,contributor,status` (quality.registry owns the
    full row); relative directories resolve against `base`."""
    if not path.exists():
        return {}
    reader = csv.DictReader(io.StringIO(_read_text(path)))
    missing = {"name", "directory"} - set(reader.fieldnames or [])
    if missing:
        raise ConfigError(f"{path}:1", f"missing column(s) {', '.join(sorted(missing))}")
    entries: dict[str, DatasetEntry] = {}
    for line, row in enumerate(reader, start=2):
        name = (row.get("name") or "").strip()
        if not name or name.startswith("#"):
            continue
        check_name("dataset", name, f"{path}:{line}")
        if name in entries:
            raise ConfigError(f"{path}:{line}", f"duplicate dataset {name!r}")
        directory = Path((row.get("directory") or "").strip())
        entries[name] = DatasetEntry(
            name=name,
            directory=directory if directory.is_absolute() else base / directory,
            source=(row.get("source") or "").strip(),
            status=(row.get("status") or "registered").strip(),
        )
    return entries


ProtocolCategory = Literal["Discovery", "Management", "Encrypted", "Unencrypted"]
PROTOCOL_CATEGORIES: tuple[ProtocolCategory, ...] = get_args(ProtocolCategory)
_PORT_LABEL = re.compile(r"^(tcp|udp):([0-9]{1,5})$")


@dataclass(frozen=True)
class ProtocolType:
    """One row of `conf/protocol_types.csv`: an application label, its category and well-known ports."""

    protocol: str
    category: ProtocolCategory
    purpose: str
    ports: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class ProtocolTypes:
    """The protocol taxonomy and the known server ports it implies (see `load_protocol_types`)."""

    types: tuple[ProtocolType, ...]

    def rows(self) -> list[tuple[str, str, str]]:
        """(protocol, category, purpose) rows for the `protocol_types` view of the protocol models."""
        return [(t.protocol, t.category, t.purpose) for t in self.types]

    def port_rows(self) -> list[tuple[str, int, str]]:
        """(transport, port, protocol) rows for the `protocol_ports` view: the known server ports.

        A port listed in a `ports` cell names its protocol; a `tcp:N`/`udp:N` label lists its own port unless
        another row claims it (`tcp:8883` stays a known port, named `secure-mqtt`).
        """
        claimed: dict[tuple[str, int], str] = {}
        for entry in self.types:
            for port in entry.ports:
                claimed.setdefault(port, entry.protocol)
        for entry in self.types:
            match = _PORT_LABEL.match(entry.protocol)
            if match:
                claimed.setdefault((match.group(1), int(match.group(2))), entry.protocol)
        return [(transport, port, name) for (transport, port), name in sorted(claimed.items())]


def _parse_ports(cell: str, where: str) -> tuple[tuple[str, int], ...]:
    ports = []
    for item in cell.split():
        match = _PORT_LABEL.match(item.lower())
        if not match or not 0 < int(match.group(2)) < 65536:
            raise ConfigError(
                where, f"malformed port {item!r}: use tcp:<port> or udp:<port>, space-separated"
            )
        ports.append((match.group(1), int(match.group(2))))
    return tuple(ports)


def load_protocol_types(path: Path) -> ProtocolTypes:
    """The protocol taxonomy `protocol,category,purpose,ports`; `#` lines are comments; no file, no types."""
    if not path.is_file():
        return ProtocolTypes(())
    lines = [
        (number, line)
        for number, line in enumerate(_read_text(path).splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        return ProtocolTypes(())
    header = [c.strip().lower() for c in next(csv.reader([lines[0][1]]))]
    missing = {"protocol", "category"} - set(header)
    if missing:
        raise ConfigError(f"{path}:{lines[0][0]}", f"missing column(s) {', '.join(sorted(missing))}")
    types: list[ProtocolType] = []
    seen: dict[str, int] = {}
    owners: dict[tuple[str, int], tuple[str, int]] = {}
    for number, line in lines[1:]:
        where = f"{path}:{number}"
        record = dict(zip(header, (c.strip() for c in next(csv.reader([line]))), strict=False))
        name = record.get("protocol", "").lower()
        if not name or not re.fullmatch(r"[a-z0-9][a-z0-9._:-]*", name):
            raise ConfigError(where, f"malformed protocol label {record.get('protocol', '')!r}")
        if name in seen:
            raise ConfigError(where, f"duplicate protocol {name!r} (first on line {seen[name]})")
        category = record.get("category", "")
        if category not in PROTOCOL_CATEGORIES:
            raise ConfigError(
                where, f"unknown category {category!r} for {name!r}: use {', '.join(PROTOCOL_CATEGORIES)}"
            )
        ports = _parse_ports(record.get("ports", ""), where)
        for port in ports:
            if port in owners:
                other, line_no = owners[port]
                raise ConfigError(where, f"port {port[0]}:{port[1]} is already {other!r}'s (line {line_no})")
            owners[port] = (name, number)
        seen[name] = number
        types.append(ProtocolType(name, category, record.get("purpose", ""), ports))
    return ProtocolTypes(tuple(types))


class Config:
    """The project's configuration rooted at one `conf/` folder."""

    def __init__(self, conf_dir: Path) -> None:
        self.conf_dir = conf_dir.resolve()
        self.project_dir = self.conf_dir.parent
        self.settings = load_settings(self.conf_dir / "iotlake.yaml")
        self._registry: dict[str, DatasetEntry] | None = None

    @property
    def lake_root(self) -> str:
        """The lake root as a URI or absolute path (relative paths resolve against the working directory)."""
        root = os.environ.get("IOTLAKE_LAKE") or self.settings.lake_root
        return root if "://" in root else str(Path(root).expanduser().resolve())

    @property
    def registry_path(self) -> Path:
        return self.conf_dir / "datasets.csv"

    def datasets(self) -> dict[str, DatasetEntry]:
        """All registered datasets by name."""
        if self._registry is None:
            self._registry = load_registry(self.registry_path, self.project_dir)
        return self._registry

    def dataset(self, name: str) -> DatasetEntry:
        """A registered dataset, or an error that lists the registered names."""
        check_name("dataset", name)
        entries = self.datasets()
        if name not in entries:
            known = ", ".join(sorted(entries)) or "none"
            raise ConfigError(self.registry_path, f"unknown dataset {name!r} (registered: {known})")
        return entries[name]

    def site_file(self, site: str, dataset_dir: Path | None = None) -> Path | None:
        """The site's YAML: `<dataset>/<site>/site.yaml` first, then `conf/sites/<site>.yaml`."""
        candidates = [dataset_dir / site / "site.yaml"] if dataset_dir else []
        candidates.append(self.conf_dir / "sites" / f"{site}.yaml")
        return next((p for p in candidates if p.is_file()), None)

    def macs_file(self, site: str, dataset_dir: Path | None = None) -> Path:
        """The site's MAC map: `<dataset>/<site>/macs.csv` first, then `conf/macs/<site>.csv`."""
        candidates = [dataset_dir / site / "macs.csv"] if dataset_dir else []
        candidates.append(self.conf_dir / "macs" / f"{site}.csv")
        for path in candidates:
            if path.is_file():
                return path
        raise ConfigError(
            candidates[-1], f"no MAC map for site {site!r} (looked in {', '.join(map(str, candidates))})"
        )

    def sites_in(self, directory: Path, dataset: str) -> list[str]:
        """Sites of a dataset folder: its sub-folders that hold captures."""
        if not directory.is_dir():
            raise ConfigError(directory, f"dataset {dataset!r}: directory not found")
        sites = sorted(p.name for p in directory.iterdir() if p.is_dir() and find_captures(p))
        if not sites:
            raise ConfigError(directory, f"dataset {dataset!r}: no site folder with captures")
        return sites


EVENT_DEVICES_FILE = "devices.yaml"


class EventDevice(BaseModel):
    """One entry of an event-capture folder's `devices.yaml`: the device's address and what it is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    ipv4: str
    manufacturer: str | None = None
    device_type: str | None = Field(default=None, alias="device-type")

    @field_validator("ipv4")
    @classmethod
    def _address(cls, value: str) -> str:
        return str(ipaddress.IPv4Address(value))


def load_event_devices(path: Path) -> dict[str, Device]:
    """The devices of an event-capture folder (`<Device>/<event>/*.pcap` beside `devices.yaml`), by name.

    The captures are anonymised per device but keep each device's IPv4 address, so devices are attributed by IP.
    """
    data = _load_yaml(path)
    devices = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigError(path, f"{name}: expected a mapping with an ipv4 field")
        parsed = _validated(EventDevice, entry, Path(f"{path}: {name}"))
        devices[name] = Device(name, None, parsed.ipv4, parsed.manufacturer, parsed.device_type)
    return devices


def find_captures(folder: Path) -> list[Path]:
    """Capture files under a folder, recursively, in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(CAPTURE_SUFFIXES))


def default_conf_dir() -> Path:
    """`$IOTLAKE_CONF`, else `./conf`, else the `conf/` of the source tree this package came from."""
    if env := os.environ.get("IOTLAKE_CONF"):
        return Path(env)
    if Path("conf").is_dir():
        return Path("conf")
    return Path(__file__).resolve().parents[2] / "conf"


def load_config(conf_dir: Path | str | None = None) -> Config:
    """Load the configuration rooted at `conf_dir` (see `default_conf_dir`)."""
    return Config(Path(conf_dir) if conf_dir else default_conf_dir())
