"""Contributions of the earlier tool's data files (`kind: pms-files`): promoted into gold, or quarantined.

Each contribution is a folder written here: a dataset.yaml, a MAC map in the earlier `Name,MAC` form and a
few hand-written hourly stats, protocols and endpoints files of two devices (one file CRLF with a BOM, one
protocols row with a `*` address, capture folders named with a space, and the plug a second unit: `TP2ndLink`
in the stats and protocols files, `TPLink` in its endpoints file, as in the published FR-Capture2). The project is a copy of conf/ (the gate writes its
registry) next to links to sql/ and expectations/; the lake is the test run's shared lake.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from iotlake.config import Config
from iotlake.quality import gate, registry
from tests.conftest import SHARED_DATA, shared_file
from tests.integration.conftest import run_cli
from tests.integration.test_contribute import lake_versions

FIRST, PLUG, CAM = "02:00:00:00:00:20", "02:00:00:00:00:21", "02:00:00:00:00:22"
MACS = f"TPLink,{FIRST.upper()}\nTP2ndLink,{PLUG.upper()}\nCam,{CAM.upper()}\n"  # TPLink: not in this capture
FOLDER = "LAB Capture1"  # the earlier "Auxillary Captures" had a space too
PREFIX = "LAB-Capture1-trimmed-filtered"
STATS = "Device,StartTime,Frames,Bytes,TxFrames,TxBytes,RxFrames,RxBytes"
PROTOCOLS = "MAC,WAN/LAN,Protocol,IP,TotalPackets,TotalBytes,TxPackets,TxBytes,RxPackets,RxBytes"
ENDPOINTS = (
    "IP,Type, Cert Owner, Cert Location, WHOIS Owner, WHOIS Location, ASN Owner, ASN Location, "
    "Original Hostname, Modified Hostname, IP Geolocation, Cert Geolocations, Packets, Bytes, TxPackets, "
    "TxBytes, RxPackets, RxBytes"
)
# (file name, lines, CRLF with a BOM); Frames = Tx + Rx and LAN + WAN = ALL in every interval
FILES = {
    "1hour-stats": [
        (
            f"{PREFIX}-split-TP2ndLink-stats.csv",
            [STATS, "TP2ndLink (LAB-1),0,10,1000,6,600,4,400", "TP2ndLink (LAB-1),3600,4,400,2,200,2,200"],
            True,
        ),
        (
            f"{PREFIX}-split-TP2ndLink-LAN-stats.csv",
            [STATS, "TP2ndLink (LAB-1),0,3,300,2,200,1,100", "TP2ndLink (LAB-1),3600,1,100,1,100,0,0"],
            False,
        ),
        (
            f"{PREFIX}-split-TP2ndLink-WAN-stats.csv",
            [STATS, "TP2ndLink (LAB-1),0,7,700,4,400,3,300", "TP2ndLink (LAB-1),3600,3,300,1,100,2,200"],
            False,
        ),
        (f"{PREFIX}-split-Cam-stats.csv", [STATS, "Cam (LAB-1),0,5,500,5,500,0,0"], False),
    ],
    "protocols": [
        (
            f"{PREFIX}-split-TP2ndLink-protocols.csv",
            [
                PROTOCOLS,
                f"{PLUG.upper()},ALL,ip,203.0.113.10,7,700,4,400,3,300",
                f"{PLUG.upper()},ALL,udp,224.0.0.251*,3,300,2,200,1,100",
            ],
            False,
        ),
        (
            f"{PREFIX}-split-TP2ndLink-protocols-WAN.csv",
            [PROTOCOLS, f"{PLUG.upper()},ALL,ip,203.0.113.10,7,700,4,400,3,300"],
            False,
        ),
        (
            f"{PREFIX}-split-TP2ndLink-protocols-LAN.csv",
            [PROTOCOLS, f"{PLUG.upper()},ALL,udp,224.0.0.251,3,300,2,200,1,100"],
            False,
        ),
        (
            f"{PREFIX}-split-Cam-ipv6-protocols.csv",
            [PROTOCOLS, f"{CAM.upper()},ALL,mdns,ff02::fb,5,500,5,500,0,0"],
            False,
        ),
    ],
    "endpoints": [
        (
            f"{PREFIX}-with-DNS-split-TPLink-endpoints.csv",
            [
                ENDPOINTS,
                '203.0.113.10,First,None,None,None,None,"EXAMPLE-AS, US",US,api.example.com,api.example.com,'
                "None,None,7,700,3,300,4,400",
                "224.0.0.251,Local Multicast,Local,Local,Local,Local,Local,Local,N/A,N/A,Local,Local,"
                "3,300,1,100,2,200",
            ],
            False,
        ),
    ],
}
# What the gold tables hold afterwards (endpoint Tx/Rx turned to the device's side).
INTERVALS = {
    ("TP2ndLink", "ALL", 0, 10, 1000, 6, 600, 4, 400),
    ("TP2ndLink", "ALL", 1, 4, 400, 2, 200, 2, 200),
    ("TP2ndLink", "LAN", 0, 3, 300, 2, 200, 1, 100),
    ("TP2ndLink", "LAN", 1, 1, 100, 1, 100, 0, 0),
    ("TP2ndLink", "WAN", 0, 7, 700, 4, 400, 3, 300),
    ("TP2ndLink", "WAN", 1, 3, 300, 1, 100, 2, 200),
    ("Cam", "ALL", 0, 5, 500, 5, 500, 0, 0),
}
PROTOCOL_ROWS = {
    ("TP2ndLink", "ALL", 4, "ip", "203.0.113.10", False, 7, 700, 4, 400, 3, 300),
    ("TP2ndLink", "ALL", 4, "udp", "224.0.0.251", True, 3, 300, 2, 200, 1, 100),
    ("TP2ndLink", "WAN", 4, "ip", "203.0.113.10", False, 7, 700, 4, 400, 3, 300),
    ("TP2ndLink", "LAN", 4, "udp", "224.0.0.251", False, 3, 300, 2, 200, 1, 100),
    ("Cam", "ALL", 6, "mdns", "ff02::fb", False, 5, 500, 5, 500, 0, 0),
}
ENDPOINT_ROWS = {
    ("TP2ndLink", "203.0.113.10", "First", "WAN", "api.example.com", 7, 700, 4, 400, 3, 300),
    ("TP2ndLink", "224.0.0.251", "Local Multicast", "LAN", None, 3, 300, 2, 200, 1, 100),
}


def write_pms_contribution(folder: Path, dataset: str, edits: dict[str, list[str]] | None = None) -> Path:
    """The hand-written contribution; `edits` replaces the lines of the named files. Returns dataset.yaml."""
    (folder / "macs").mkdir(parents=True, exist_ok=True)
    (folder / "macs" / "LAB-MACs.txt").write_text(MACS)
    for family, files in FILES.items():
        (folder / "data" / family / FOLDER).mkdir(parents=True, exist_ok=True)
        for name, lines, crlf_bom in files:
            lines = (edits or {}).get(name, lines)
            text = ("\ufeff" + "\r\n".join(lines) + "\r\n") if crlf_bom else "\n".join(lines) + "\n"
            (folder / "data" / family / FOLDER / name).write_bytes(text.encode("utf-8"))
    manifest = {
        "dataset": dataset,
        "kind": "pms-files",
        "contributor": "Test Lab <lab@example.org>",
        "licence": "CC-BY-4.0",
        "source": f"https://example.org/{dataset}",
    }
    (folder / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder / "dataset.yaml"


@pytest.fixture(scope="module")
def promoted(spark, project: Config, tmp_path_factory: pytest.TempPathFactory) -> gate.GateReport:
    """The good hand-written contribution, through the gate."""
    folder = tmp_path_factory.mktemp("pms_good")
    write_pms_contribution(folder, "pms_good")
    return gate.contribute(spark, project, folder, progress=False)


def gold(spark, name: str, dataset: str, columns: str) -> set[tuple]:
    """The rows of a gold table of the main lake for `dataset`, queried by name."""
    rows = spark.sql(f"SELECT {columns} FROM iotlake.{name} WHERE dataset = '{dataset}'").collect()
    return {tuple(r) for r in rows}


def test_good_pms_contribution_is_promoted_with_the_written_values(spark, project: Config, promoted) -> None:
    report = promoted
    assert report.promoted, report.failures
    assert (report.files, report.flagged) == (9, 1)
    assert report.rows == {"interval_volumes": 7, "protocol_usage": 5, "endpoint_usage": 2}
    assert set(report.versions) == {"interval_volumes", "protocol_usage", "endpoint_usage", "devices"}
    assert report.models == 0
    assert "promoted 9 data file(s)" in report.lines()[0]

    counts = "frames, bytes, tx_frames, tx_bytes, rx_frames, rx_bytes"
    assert (
        gold(spark, "interval_volumes", "pms_good", f"device, scope, interval_index, {counts}") == INTERVALS
    )
    counts = "packets, bytes, tx_packets, tx_bytes, rx_packets, rx_bytes"
    assert (
        gold(
            spark,
            "protocol_usage",
            "pms_good",
            f"device, scope, ip_version, protocol, remote_ip, flagged, {counts}",
        )
        == PROTOCOL_ROWS
    )
    assert (
        gold(spark, "endpoint_usage", "pms_good", f"device, remote_ip, class, scope, name, {counts}")
        == ENDPOINT_ROWS
    )
    for name in ("interval_volumes", "protocol_usage", "endpoint_usage"):
        assert gold(spark, name, "pms_good", "source") == {("imported",)}
        columns = spark.table(f"iotlake.{name}").columns
        assert not {"source_file", "source_line", "source_mac"} & set(columns), name
    assert gold(spark, "devices", "pms_good", "device, mac") == {
        ("TPLink", FIRST),
        ("TP2ndLink", PLUG),
        ("Cam", CAM),
    }
    assert gold(spark, "interval_volumes", "pms_good", "site, capture") == {("LAB", "Capture1")}

    entry = registry.find(registry.read_registry(project.registry_path), "pms_good")
    assert entry is not None and entry.status == "promoted"
    root = Path(project.lake_root)
    assert not (root / "_staging" / "pms_good").exists()
    assert not (root / "_quarantine" / "pms_good").exists()


def test_broken_pms_contribution_is_quarantined_and_lake_unchanged(
    spark, project: Config, promoted, tmp_path: Path, capsys
) -> None:
    # An hourly row whose Tx + Rx (2 + 1) is not its 4 frames, and a protocols row with negative bytes.
    stats = f"{PREFIX}-split-TP2ndLink-stats.csv"
    protocols = f"{PREFIX}-split-Cam-ipv6-protocols.csv"
    edits = {
        stats: [STATS, "TP2ndLink (LAB-1),0,10,1000,6,600,4,400", "TP2ndLink (LAB-1),3600,4,400,2,200,1,200"],
        protocols: [PROTOCOLS, f"{CAM.upper()},ALL,mdns,ff02::fb,5,-500,5,-500,0,0"],
    }
    folder = tmp_path / "pms_broken"
    write_pms_contribution(folder, "pms_broken", edits)
    root = Path(project.lake_root)
    before = lake_versions(root)
    assert {"gold/interval_volumes", "gold/protocol_usage", "bronze/devices"} <= set(before)

    capsys.readouterr()
    code = run_cli(project, "contribute", str(folder), "--quiet")
    captured = capsys.readouterr()
    assert code == 2
    error = captured.err.strip()
    assert error.count("\n") == 0, error
    quarantine = root / "_quarantine" / "pms_broken"
    assert str(quarantine / "summary.txt") in error

    assert lake_versions(root) == before
    summary = (quarantine / "summary.txt").read_text()
    blocks = summary.split("\n\n")
    tx_rx = next(b for b in blocks if "column: frames, tx_rx_frames" in b)
    assert (
        "FAILED interval_volumes (expectations/interval_volumes.json): expect_column_pair_values_to_be_equal"
        in tx_rx
    )
    assert f"1 of 7 rows unexpected, e.g. (4, 3) in data/1hour-stats/{FOLDER}/{stats}:3" in tx_rx
    negative = next(b for b in blocks if "column: bytes\n" in b and "be_between" in b)
    assert "FAILED protocol_usage (expectations/protocol_usage.json)" in negative
    assert f"e.g. -500 in data/protocols/{FOLDER}/{protocols}:2" in negative
    assert "tx_rx_bytes" not in summary  # Tx + Rx = total still holds for the negative row
    assert (quarantine / "data_docs" / "index.html").is_file()
    assert (quarantine / "staging" / "gold" / "interval_volumes" / "_delta_log").is_dir()
    assert not (root / "_staging" / "pms_broken").exists()
    assert gold(spark, "interval_volumes", "pms_broken", "device") == set()
    entry = registry.find(registry.read_registry(project.registry_path), "pms_broken")
    assert entry is not None and entry.status == "quarantined"


@pytest.mark.realdata
def test_real_capture_folder_passes_the_gate(spark, project: Config, tmp_path: Path) -> None:
    """The published US2 folder (two captures, five devices, `*` rows) as a contribution of its own."""
    study = shared_file("passive-mode-study")
    folder = tmp_path / "pms_us2"
    for family in ("1hour-stats", "protocols", "endpoints"):
        shutil.copytree(study / "data" / family / "US2", folder / "data" / family / "US2")
    shutil.copytree(study / "macs", folder / "macs")
    manifest = {
        "dataset": "pms_us2",
        "kind": "pms-files",
        "contributor": "DAMSlabUMBC",
        "licence": "unknown",
        "source": "https://github.com/DAMSlabUMBC/Passive-Mode-Study",
    }
    (folder / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    report = gate.contribute(spark, project, folder, progress=False)
    assert report.promoted, "\n".join(report.lines())
    assert report.files == 39 and report.flagged == 2
    assert report.rows["interval_volumes"] == 2616
    assert gold(spark, "interval_volumes", "pms_us2", "capture") == {("Headsets",), ("RoboRock-Alone",)}
    assert SHARED_DATA.exists()
