"""Config loading: every error names the file (and line) and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotlake.config import load_config, load_macs, load_registry, load_settings, load_site
from iotlake.errors import IotlakeError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_macs_with_header_and_extra_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "device,mac,ip,vendor\nplug,AC:84:C6:20:FE:4B,192.168.1.20,TP-Link\n")
    [device] = load_macs(path)
    assert (device.device, device.mac, device.ip, device.vendor) == (
        "plug",
        "ac:84:c6:20:fe:4b",
        "192.168.1.20",
        "TP-Link",
    )


def test_macs_in_the_earlier_headerless_format_with_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "US1-MACs.txt"
    path.write_bytes(b"\xef\xbb\xbfPhillipsBridge,EC:B5:FA:99:AC:15\r\n\r\n  TPLink , AC-84-C6-20-FE-4B \r\n")
    devices = load_macs(path)
    assert [(d.device, d.mac) for d in devices] == [
        ("PhillipsBridge", "ec:b5:fa:99:ac:15"),
        ("TPLink", "ac:84:c6:20:fe:4b"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("plug,AC:84:C6:20:FE\n", 1, "malformed MAC"),
        ("plug,ac:84:c6:20:fe:4b\nplug,ac:84:c6:20:fe:4c\n", 2, "duplicate device name"),
        ("a,ac:84:c6:20:fe:4b\nb,AC:84:C6:20:FE:4B\n", 2, "duplicate MAC"),
        ("a,ac:84:c6:20:fe:4b\n../evil,ac:84:c6:20:fe:4c\n", 2, "invalid device name"),
        ("device,mac,ip\na,ac:84:c6:20:fe:4b,300.1.1.1\n", 2, "invalid IP address"),
        ("just-a-name\n", 1, "expected 'device,mac'"),
    ],
)
def test_malformed_mac_maps_name_file_line_and_problem(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = write(tmp_path / "macs.csv", text)
    with pytest.raises(IotlakeError) as err:
        load_macs(path)
    message = str(err.value)
    assert f"{path}:{line}" in message
    assert problem in message
    assert "\n" not in message


def test_empty_mac_map_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(IotlakeError, match="no devices"):
        load_macs(write(tmp_path / "macs.csv", "\n# nothing\n"))


def test_site_config_validates_prefixes_and_addresses(tmp_path: Path) -> None:
    good = load_site(
        write(tmp_path / "a.yaml", "local_prefixes: [2620:0:5300::/44]\ngateway_ips: [192.168.1.1]\n")
    )
    assert good.local_prefixes == ["2620:0:5300::/44"]
    assert good.gateway_ips == ["192.168.1.1"]
    with pytest.raises(IotlakeError, match=r"b\.yaml: local_prefixes: invalid prefix '10\.0\.0\.1/8'"):
        load_site(write(tmp_path / "b.yaml", "local_prefixes: [10.0.0.1/8]\n"))
    with pytest.raises(IotlakeError, match=r"c\.yaml: gateway_ips: invalid IP address"):
        load_site(write(tmp_path / "c.yaml", "gateway_ips: [router]\n"))
    with pytest.raises(IotlakeError, match=r"d\.yaml: unknown_key: Extra inputs are not permitted"):
        load_site(write(tmp_path / "d.yaml", "unknown_key: 1\n"))
    with pytest.raises(IotlakeError, match=r"e\.yaml:\d+: invalid YAML"):
        load_site(write(tmp_path / "e.yaml", "gateway_ips:\n  - [unclosed\n"))


def test_settings_reject_bad_values(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "missing.yaml").lake_root == "./lake"
    with pytest.raises(
        IotlakeError, match=r"iotlake\.yaml: chunk_packets: Input should be greater than or equal"
    ):
        load_settings(write(tmp_path / "iotlake.yaml", "chunk_packets: 5\n"))
    with pytest.raises(IotlakeError, match=r"iotlake\.yaml: delta_jars: Input should be"):
        load_settings(write(tmp_path / "iotlake.yaml", "delta_jars: maybe\n"))


def test_registry_and_unknown_dataset(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    write(conf / "datasets.csv", "name,directory,link,status\ndemo,data/demo,,generated\n")
    config = load_config(conf)
    assert config.dataset("demo").directory == tmp_path / "data" / "demo"
    with pytest.raises(IotlakeError, match=r"datasets\.csv: unknown dataset 'nope' \(registered: demo\)"):
        config.dataset("nope")
    with pytest.raises(IotlakeError, match="duplicate dataset"):
        load_registry(write(conf / "dup.csv", "name,directory\na,x\na,y\n"), tmp_path)


def test_missing_mac_map_says_where_it_looked(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    with pytest.raises(IotlakeError, match="no MAC map for site 'home'"):
        config.macs_file("home", tmp_path / "dataset")
