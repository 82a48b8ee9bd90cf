"""IP owners: recorded RDAP JSON through ipwhois's own parser, the offline ASN data, and the offline fallback.

No test touches the network: the RDAP response is a recording, and the online lookup is replaced by one that
fails as an unreachable network does.
"""

from __future__ import annotations

import json
from pathlib import Path

from ipwhois.net import Net
from ipwhois.rdap import RDAP

from iotlake.enrich.owners import is_public, lookup_owners, owner_from_rdap, owner_offline

RECORDED = Path(__file__).parent / "data" / "rdap_arin_8.8.8.0.json"
# What ipwhois's ASN lookup (Team Cymru) answers for 8.8.8.8, recorded alongside the RDAP response.
ASN_DATA = {
    "asn_registry": "arin",
    "asn": "15169",
    "asn_cidr": "8.8.8.0/24",
    "asn_country_code": "US",
    "asn_date": "2023-12-28",
    "asn_description": "GOOGLE, US",
}


def test_recorded_rdap_response_through_ipwhois_parser() -> None:
    parsed = RDAP(Net("8.8.8.8")).lookup(
        response=json.loads(RECORDED.read_text()), asn_data=ASN_DATA, depth=0, root_ent_check=False
    )
    owner = owner_from_rdap("8.8.8.8", {**ASN_DATA, **parsed})
    assert owner.status == "found"
    assert owner.asn == 15169
    assert owner.as_name == "GOOGLE, US"
    assert owner.as_country == "US"
    assert owner.network_cidr == "8.8.8.0/24"
    assert owner.network_name == "GOGL"
    assert owner.organisation == "Google LLC"
    assert owner.source == "rdap:arin"


def test_offline_data_names_public_addresses_and_records_its_date() -> None:
    owner = owner_offline("8.8.8.8")
    assert owner.status == "found" and owner.as_name == "GOOGLE" and owner.as_country == "US"
    assert owner.network_cidr == "8.8.8.0/24"
    assert owner.data_date and owner.data_date.isdigit()  # e.g. 20240618, from the database's own header


def test_only_public_addresses_are_looked_up() -> None:
    assert is_public("52.71.18.204")
    assert not any(map(is_public, ["192.168.1.10", "fd00::1", "fe80::1", "203.0.113.5", "ff02::fb", "bogus"]))


def test_unreachable_rdap_falls_back_to_offline_and_counts_unknowns() -> None:
    def unreachable(ip: str, timeout_s: float, retries: int):
        raise OSError("network is unreachable")

    owners, report = lookup_owners(
        ["8.8.8.8", "1.1.1.1", "192.168.1.1", "100.64.0.1"],
        cached={"1.1.1.1"},
        online=True,
        parallelism=2,
        rate_per_s=100,
        timeout_s=0.1,
        retries=0,
        online_lookup=unreachable,
    )
    assert [o.ip for o in owners] == ["8.8.8.8"]  # 1.1.1.1 cached; private and CGNAT addresses skipped
    assert owners[0].source.startswith("geoip2fast")
    assert (report.requested, report.cached, report.online, report.offline, report.unknown) == (2, 1, 0, 1, 0)
