"""Re-ingesting replaces a capture atomically; bad input fails with one line and leaves the lake as it was."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from delta.tables import DeltaTable

from iotlake.lake import tables
from tests.conftest import REPO
from tests.integration.conftest import run_cli

BRONZE = ("packets", "captures", "devices", "sites", "site_prefixes")
MODELS = ("device_packets", "interval_volumes")


def versions(spark, config) -> dict[str, int]:
    out = {}
    for name in BRONZE + MODELS:
        path = tables.table(name).path(config.lake_root)
        out[name] = DeltaTable.forPath(spark, path).history(1).collect()[0]["version"]
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_reingest_keeps_rows_and_adds_a_version(spark, config, demo_lake, demo_dir) -> None:
    packets = tables.table("packets").path(config.lake_root)
    before_count = spark.read.format("delta").load(packets).count()
    before = versions(spark, config)
    site = demo_dir / "home1"
    code = run_cli(
        config,
        "ingest",
        "demo",
        str(site / "capture1.pcap"),
        "--site",
        "home1",
        "--macs",
        str(site / "macs.csv"),
        "--site-config",
        str(site / "site.yaml"),
        "--quiet",
    )
    assert code == 0
    after = versions(spark, config)
    assert spark.read.format("delta").load(packets).count() == before_count
    assert after["packets"] == before["packets"] + 1
    history = DeltaTable.forPath(spark, packets).history(1).collect()[0]
    assert '"job": "ingest_captures"' in history["userMetadata"]
    assert "capture1" in history["userMetadata"]


def raw_ip_pcap(path: Path) -> Path:
    """A valid pcap whose link type is raw IPv4 (LINKTYPE_RAW, 101): unsupported for now."""
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    packet = bytes.fromhex("450000140001000040017cdd7f0000017f000001")
    record = struct.pack("<IIII", 1, 0, len(packet), len(packet)) + packet
    path.write_bytes(header + record)
    return path


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("text", "not a pcap"),
        ("empty", "empty file"),
        ("rawip", "the MAC map needs an ip column"),
        ("badmac", "malformed MAC"),
        ("unknown_dataset", "unknown dataset 'no_such_dataset'"),
        ("unknown_build", "unknown dataset 'no_such_dataset'"),
    ],
)
def test_bad_input_is_one_line_nonzero_and_lake_unchanged(
    spark, config, demo_lake, demo_dir, tmp_path, capsys, case, problem
) -> None:
    site = demo_dir / "home1"
    macs = site / "macs.csv"
    capture = site / "capture2.pcap"
    capsys.readouterr()
    before = versions(spark, config)
    if case == "text":
        bad = tmp_path / "notes.pcap"
        bad.write_text("this is not a capture\n")
        args = ["ingest", "demo", str(bad), "--site", "home1", "--macs", str(macs)]
    elif case == "empty":
        bad = tmp_path / "empty.pcap"
        bad.write_bytes(b"")
        args = ["ingest", "demo", str(capture), str(bad), "--site", "home1", "--macs", str(macs)]
    elif case == "rawip":
        bad = raw_ip_pcap(tmp_path / "rawip.pcap")
        args = ["ingest", "demo", str(bad), "--site", "home1", "--macs", str(macs)]
    elif case == "badmac":
        bad = tmp_path / "macs.csv"
        bad.write_text("plug,aa:bb:cc:dd:ee\n")
        args = ["ingest", "demo", str(capture), "--site", "home1", "--macs", str(bad)]
    elif case == "unknown_dataset":
        bad = REPO / "conf" / "datasets.csv"
        args = ["ingest", "no_such_dataset"]
    else:
        bad = Path(config.lake_root)
        args = ["build", "--dataset", "no_such_dataset"]
    code = run_cli(config, *args, "--quiet") if args[0] == "ingest" else run_cli(config, *args)
    line = one_error_line(capsys)
    assert code == 2
    assert problem in line
    assert str(bad) in line
    assert versions(spark, config) == before


def test_truncated_capture_keeps_complete_packets_and_is_flagged(
    spark, config, demo_lake, demo_dir, tmp_path
) -> None:
    source = (demo_dir / "home2" / "capture1.pcap").read_bytes()
    # Cut the file in the middle of the 11th record: the header is 24 bytes, each record 16 + caplen.
    offset, records = 24, 0
    while records < 10:
        caplen = struct.unpack("<I", source[offset + 8 : offset + 12])[0]
        offset += 16 + caplen
        records += 1
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(source[: offset + 20])
    code = run_cli(
        config,
        "ingest",
        "truncated_demo",
        str(cut),
        "--site",
        "home2",
        "--macs",
        str(demo_dir / "home2" / "macs.csv"),
        "--quiet",
    )
    assert code == 0
    row = spark.table("iotlake.captures").where("dataset = 'truncated_demo'").collect()[0]
    assert row["truncated"] is True
    assert row["packets"] == 10
    assert any("cut short" in w for w in row["warnings"])
    assert spark.table("iotlake.packets").where("dataset = 'truncated_demo'").count() == 10
