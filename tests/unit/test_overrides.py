"""Manual party-class overrides: validation of single overrides and of the CSV import (no Spark)."""

from __future__ import annotations

import pytest

from iotlake.enrich import overrides
from iotlake.errors import IotlakeError


def test_addresses_and_names_are_normalised_and_any_is_the_default() -> None:
    by_ip = overrides.make_override("2001:DB8:0:0::10", None, "Third")
    assert (by_ip.kind, by_ip.value, by_ip.dataset, by_ip.device) == ("ip", "2001:db8::10", "*", "*")
    by_host = overrides.make_override(None, "API.Example.COM.", "Local (hub)", "demo", "plug")
    assert (by_host.kind, by_host.value, by_host.dataset, by_host.device) == (
        "host",
        "api.example.com",
        "demo",
        "plug",
    )


@pytest.mark.parametrize(
    ("ip", "host", "party", "problem"),
    [
        ("1.2.3.4", "a.example", "Third", "exactly one"),
        (None, None, "Third", "exactly one"),
        ("1.2.3", None, "Third", "invalid IP address"),
        (None, "bad host!", "Third", "invalid host name"),
        ("1.2.3.4", None, "Vendor", "unknown class"),
    ],
)
def test_bad_overrides_are_one_line_errors(ip, host, party, problem) -> None:
    with pytest.raises(IotlakeError, match=problem):
        overrides.make_override(ip, host, party)


def test_csv_rows_name_their_line_and_duplicates_are_refused(tmp_path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(
        "ip,host,class,dataset,device,note\n8.8.8.8,,Support,,,resolver\n,ads.example,Third,demo,tv,\n"
    )
    rows = overrides.read_csv(good)
    assert [(o.kind, o.value, o.party_class, o.dataset, o.device) for o in rows] == [
        ("ip", "8.8.8.8", "Support", "*", "*"),
        ("host", "ads.example", "Third", "demo", "tv"),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("ip,class\n8.8.8.8,Support\n8.8.8.x,Third\n")
    with pytest.raises(IotlakeError, match=r"bad\.csv:3: invalid IP address"):
        overrides.read_csv(bad)
    twice = tmp_path / "twice.csv"
    twice.write_text("ip,class\n8.8.8.8,Support\n8.8.8.8,Third\n")
    with pytest.raises(IotlakeError, match="overridden twice"):
        overrides.read_csv(twice)
    columns = tmp_path / "columns.csv"
    columns.write_text("address,type\n8.8.8.8,Support\n")
    with pytest.raises(IotlakeError, match="unknown column 'address'"):
        overrides.read_csv(columns)
