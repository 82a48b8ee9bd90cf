"""The SQL helper functions against Python's ipaddress module (the independent reference)."""

from __future__ import annotations

import ipaddress

import pytest

from tests.conftest import REPO

ADDRESSES = [
    "192.168.1.10",
    "10.0.0.1",
    "255.255.255.255",
    "0.0.0.0",
    "fe80::1",
    "::",
    "::1",
    "2001:db8::",
    "ff02::fb",
    "1:2:3:4:5:6:7:8",
    "fd12:3456:789a:1::abcd",
    "2600:1f18:4a3:6900:bc3d:9aa2:b3a6:b6f3",
    "fe80::1:0:0:1",
]


@pytest.fixture(scope="module")
def functions(spark):
    from iotlake.models.runner import register_functions

    register_functions(spark, REPO / "sql")
    return spark


@pytest.mark.parametrize("address", ADDRESSES)
def test_ip_hex_matches_ipaddress(functions, address: str) -> None:
    parsed = ipaddress.ip_address(address)
    if parsed.version == 4:
        parsed = ipaddress.IPv6Address(f"::ffff:{address}")
    [row] = functions.sql("SELECT ip_hex(:ip) AS h", args={"ip": address}).collect()
    assert row["h"] == f"{int(parsed):032x}"


@pytest.mark.parametrize(
    ("mac", "group"),
    [
        ("ff:ff:ff:ff:ff:ff", True),
        ("01:00:5e:00:00:fb", True),
        ("33:33:00:00:00:01", True),
        ("ac:84:c6:20:fe:4b", False),
    ],
)
def test_is_group_mac(functions, mac: str, group: bool) -> None:
    [row] = functions.sql("SELECT is_group_mac(:mac) AS g", args={"mac": mac}).collect()
    assert row["g"] is group


@pytest.mark.parametrize(
    ("name", "domain", "inside"),
    [
        ("a.example.com", "example.com", True),
        ("example.com", "example.com", True),
        ("A.Example.COM", "example.com", True),
        ("badexample.com", "example.com", False),
        ("example.com.evil.net", "example.com", False),
    ],
)
def test_in_domain_honours_label_boundaries(functions, name: str, domain: str, inside: bool) -> None:
    [row] = functions.sql("SELECT in_domain(:n, :d) AS r", args={"n": name, "d": domain}).collect()
    assert row["r"] is inside


@pytest.mark.parametrize(
    ("name", "pattern", "match"),
    [
        ("a.example.com", "*.example.com", True),
        ("a.b.example.com", "*.example.com", False),  # a wildcard is one label (RFC 6125)
        ("badexample.com", "*.example.com", False),
        ("example.com", "*.example.com", False),
        ("www.example.com", "www.example.com", True),
        ("WWW.example.com", "www.EXAMPLE.com", True),
    ],
)
def test_certificate_name_matching(functions, name: str, pattern: str, match: bool) -> None:
    [row] = functions.sql("SELECT cert_name_matches(:n, :p) AS r", args={"n": name, "p": pattern}).collect()
    assert row["r"] is match
