"""Manual party-class overrides: a curator's decision for an address or a host name wins over every rule.

Overrides live in the `endpoint_overrides` table (keyed by kind, value, dataset and device; `*` means any),
are added one at a time (`iotlake label --ip/--host … --class …`) or from a CSV, and take effect at the next
`iotlake build`: `endpoint_usage` gives the overridden class with `class_rule` = `override <kind> <value>`.
"""

from __future__ import annotations

import csv
import getpass
import ipaddress
import re
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from iotlake.errors import ConfigError, IotlakeError
from iotlake.names import check_name

OVERRIDE_SCHEMA = (
    "kind STRING, value STRING, dataset STRING, device STRING, class STRING, note STRING, "
    "added_by STRING, added_at TIMESTAMP"
)
KEYS = ("kind", "value", "dataset", "device")
ANY = "*"
# The classes endpoint_usage itself gives, plus `Local (<peer>)` for any peer name.
PARTY_CLASSES = ("First", "Support", "Third", "Local Multicast", "Local Broadcast")
_LOCAL_PEER = re.compile(r"^Local \([^()]{1,128}\)$")
_HOST = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+$")
CSV_COLUMNS = ("ip", "host", "class", "dataset", "device", "note")


@dataclass(frozen=True)
class Override:
    """One row of `endpoint_overrides`."""

    kind: str  # ip | host
    value: str
    dataset: str
    device: str
    party_class: str
    note: str = ""
    added_by: str = field(default_factory=getpass.getuser)
    added_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))


def check_class(value: str, where: str) -> str:
    """Return a valid party class (First, Support, Third, Local Multicast/Broadcast, Local (<peer>))."""
    if value in PARTY_CLASSES or _LOCAL_PEER.fullmatch(value):
        return value
    raise IotlakeError(where, f"unknown class {value!r}: use {', '.join(PARTY_CLASSES)} or 'Local (<peer>)'")


def make_override(
    ip: str | None,
    host: str | None,
    party_class: str,
    dataset: str | None = None,
    device: str | None = None,
    note: str = "",
    where: str = "iotlake label",
) -> Override:
    """Validate one override: exactly one of an IP address or a host name (a name covers its subdomains)."""
    if bool(ip) == bool(host):
        raise IotlakeError(where, "give exactly one of an IP address (--ip) or a host name (--host)")
    if ip:
        try:
            kind, value = "ip", str(ipaddress.ip_address(ip.strip()))
        except ValueError:
            raise IotlakeError(where, f"invalid IP address {ip!r}") from None
    else:
        value = (host or "").strip().lower().rstrip(".")
        if not _HOST.fullmatch(value):
            raise IotlakeError(where, f"invalid host name {host!r}")
        kind = "host"
    return Override(
        kind,
        value,
        check_name("dataset", dataset, where) if dataset else ANY,
        check_name("device", device, where) if device else ANY,
        check_class(party_class.strip(), where),
        note,
    )


def read_csv(path: Path) -> list[Override]:
    """Overrides from a CSV with a header of `ip,host,class` and optionally `dataset,device,note`."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip().lower() for h in reader.fieldnames or []]
            columns = set(header)
            problems = [f"unknown column {c!r}" for c in sorted(columns - set(CSV_COLUMNS))]
            if "class" not in columns:
                problems.append("missing column 'class'")
            if not {"ip", "host"} & columns:
                problems.append("missing column 'ip' or 'host'")
            if problems:
                raise ConfigError(path, f"{'; '.join(problems)} (columns: {', '.join(CSV_COLUMNS)})")
            reader.fieldnames = header
            rows = []
            for line, row in enumerate(reader, start=2):
                value = {k: (v or "").strip() for k, v in row.items() if k}
                rows.append(
                    make_override(
                        value.get("ip") or None,
                        value.get("host") or None,
                        value.get("class", ""),
                        value.get("dataset") or None,
                        value.get("device") or None,
                        value.get("note", ""),
                        where=f"{path}:{line}",
                    )
                )
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(path, f"cannot read overrides CSV: {error}") from None
    keys = [(o.kind, o.value, o.dataset, o.device) for o in rows]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        kind, value, dataset, device = duplicates[0]
        raise ConfigError(path, f"{kind} {value} is overridden twice for dataset {dataset}, device {device}")
    return rows


def as_rows(overrides: list[Override]) -> list[tuple]:
    """Rows in OVERRIDE_SCHEMA order."""
    return [astuple(o) for o in overrides]
