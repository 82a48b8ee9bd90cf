"""conf/protocol_types.csv: the shipped file loads; malformed rows fail naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotlake.config import load_protocol_types
from iotlake.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_taxonomy_has_the_reference_labels_and_ports() -> None:
    types = load_protocol_types(REPO / "conf" / "protocol_types.csv")
    category = {t.protocol: t.category for t in types.types}
    assert category["https"] == category["secure-mqtt"] == category["quic"] == "Encrypted"
    assert category["mdns"] == category["ssdp"] == category["tplink-smarthome"] == "Discovery"
    assert category["ntp"] == category["stun"] == category["udp:55444"] == "Management"
    assert category["http"] == category["udp:9700"] == "Unencrypted"
    ports = {(t, p): name for t, p, name in types.port_rows()}
    assert ports[("tcp", 443)] == "https"
    assert ports[("tcp", 8883)] == "secure-mqtt"  # the explicit port wins over the label tcp:8883
    assert ports[("udp", 1982)] == "udp:1982"
    assert ports[("udp", 5355)] == "llmnr"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("foo,Secret,x,", "unknown category 'Secret'"),
        ("foo,Discovery,x,tcp:99999", "malformed port 'tcp:99999'"),
        ("https,Encrypted,again,", "duplicate protocol 'https' (first on line 3)"),
        ("bar,Discovery,x,tcp:443", "port tcp:443 is already 'https''s (line 3)"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, row: str, problem: str) -> None:
    path = tmp_path / "protocol_types.csv"
    path.write_text(f"# comment\nprotocol,category,purpose,ports\nhttps,Encrypted,web,tcp:443\n{row}\n")
    with pytest.raises(ConfigError) as error:
        load_protocol_types(path)
    assert str(error.value).startswith(f"{path}:4: {problem}")


def test_missing_file_means_no_categories(tmp_path: Path) -> None:
    assert load_protocol_types(tmp_path / "absent.csv").types == ()
