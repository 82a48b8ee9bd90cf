"""Who owns a public IP address: RDAP through `ipwhois` when reachable, else the offline GeoLite2 ASN data
shipped with `geoip2fast`. Results are cached in the `ip_owners` table, so each address is looked up once.

A run never fails for lack of WHOIS: addresses neither source can name are stored as `unknown` and counted.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

OWNER_SCHEMA = (
    "ip STRING, status STRING, asn BIGINT, as_name STRING, as_country STRING, network_cidr STRING, "
    "network_name STRING, organisation STRING, source STRING, data_date STRING, looked_up_at TIMESTAMP"
)


@dataclass
class Owner:
    """One row of `ip_owners`."""

    ip: str
    status: str  # found | unknown
    asn: int | None = None
    as_name: str | None = None
    as_country: str | None = None
    network_cidr: str | None = None
    network_name: str | None = None
    organisation: str | None = None
    source: str | None = None
    data_date: str | None = None
    looked_up_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))


def is_public(ip: str) -> bool:
    """True for a globally routable address (the only ones worth a WHOIS lookup)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return address.is_global and not address.is_multicast


def _asn(value: Any) -> int | None:
    text = str(value or "").split()[0] if value else ""
    return int(text) if text.isdigit() else None


def owner_from_rdap(ip: str, result: dict[str, Any]) -> Owner:
    """An Owner from the dict ipwhois's RDAP parser returns (`IPWhois.lookup_rdap` or `RDAP.lookup`)."""
    network = result.get("network") or {}
    organisation = None
    for obj in (result.get("objects") or {}).values():
        if "registrant" in (obj.get("roles") or []):
            organisation = ((obj.get("contact") or {}).get("name")) or organisation
    return Owner(
        ip=ip,
        status="found",
        asn=_asn(result.get("asn")),
        as_name=result.get("asn_description"),
        as_country=result.get("asn_country_code"),
        network_cidr=network.get("cidr"),
        network_name=network.get("name"),
        organisation=organisation or network.get("name"),
        source=f"rdap:{result.get('asn_registry') or 'unknown'}",
    )


@cache
def _geoip() -> tuple[Any, str]:
    """The offline ASN database and its data date (loaded once per process)."""
    from geoip2fast import GeoIP2Fast

    db = GeoIP2Fast(geoip2fast_data_file="geoip2fast-asn-ipv6.dat.gz")
    info = db.get_database_info().get("source_info", "")
    return db, info.rsplit("-", 1)[-1] if "-" in info else info


def owner_offline(ip: str) -> Owner:
    """An Owner from the offline GeoLite2 country + ASN data of geoip2fast (no ASN numbers in that data)."""
    db, data_date = _geoip()
    found = db.lookup(ip)
    name = getattr(found, "asn_name", "") or ""
    if not name:
        return Owner(ip=ip, status="unknown", source="geoip2fast", data_date=data_date)
    return Owner(
        ip=ip,
        status="found",
        as_name=name,
        as_country=getattr(found, "country_code", None) or None,
        network_cidr=getattr(found, "asn_cidr", None) or None,
        organisation=name,
        source="geoip2fast:GeoLite2-ASN",
        data_date=data_date,
    )


class RateLimiter:
    """At most `per_second` calls per second across threads."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.lock = threading.Lock()
        self.next_at = 0.0

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            delay = max(0.0, self.next_at - now)
            self.next_at = max(now, self.next_at) + self.interval
        if delay:
            time.sleep(delay)


def rdap_reachable(host: str, timeout_s: float) -> bool:
    """One quick TCP connect to the RDAP bootstrap host, so an offline run does not wait out N timeouts."""
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def owner_online(ip: str, timeout_s: float, retries: int) -> Owner:
    """RDAP lookup through ipwhois (ASN by DNS/WHOIS/HTTP, then the registry's RDAP service)."""
    from ipwhois import IPWhois

    result = IPWhois(ip, timeout=timeout_s).lookup_rdap(depth=0, retry_count=retries, root_ent_check=False)
    return owner_from_rdap(ip, result)


@dataclass(frozen=True)
class LookupReport:
    """What one enrichment run found."""

    requested: int
    cached: int
    online: int
    offline: int
    unknown: int
    rdap_reachable: bool
    written: dict[str, int] = field(default_factory=dict)  # rows written per table (pipeline.enrich fills it)


def lookup_owners(
    ips: Iterable[str],
    cached: set[str],
    online: bool,
    parallelism: int,
    rate_per_s: float,
    timeout_s: float,
    retries: int,
    online_lookup: Callable[[str, float, int], Owner] = owner_online,
) -> tuple[list[Owner], LookupReport]:
    """Look up every public address not in `cached`: RDAP first when `online`, the offline data otherwise."""
    wanted = sorted({ip for ip in ips if is_public(ip)})
    todo = [ip for ip in wanted if ip not in cached]
    limiter = RateLimiter(rate_per_s)
    counts = {"online": 0, "offline": 0}

    def one(ip: str) -> Owner:
        if online:
            limiter.wait()
            try:
                owner = online_lookup(ip, timeout_s, retries)
                counts["online"] += 1
                return owner
            except Exception as exc:  # any RDAP failure falls back to the offline data
                log.info("RDAP lookup of %s failed (%s); using offline data", ip, exc)
        counts["offline"] += 1
        return owner_offline(ip)

    with ThreadPoolExecutor(max_workers=max(1, parallelism if online else 1)) as pool:
        owners = list(pool.map(one, todo))
    unknown = sum(o.status == "unknown" for o in owners)
    report = LookupReport(
        len(wanted), len(wanted) - len(todo), counts["online"], counts["offline"], unknown, online
    )
    return owners, report


def as_rows(owners: list[Owner]) -> list[tuple]:
    """Owners as tuples in OWNER_SCHEMA order, for `spark.createDataFrame`."""
    return [tuple(asdict(o).values()) for o in owners]
