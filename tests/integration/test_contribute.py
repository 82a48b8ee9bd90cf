"""Contributions: a good one is promoted and queryable; a failing one is quarantined and the lake unchanged.

Each contribution is a folder built here with scapy: a dataset.yaml, MAC maps and a few captures of a
handful of packets at known times. The project is a copy of conf/ (the gate writes its registry) next to
links to sql/ and expectations/; the lake is the test run's shared lake.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from iotlake.config import Config
from iotlake.lake import tables
from iotlake.quality import gate, registry
from tests.conftest import require_tools
from tests.integration.conftest import run_cli

T0 = 1_700_000_000
PLUG, HUB, GW = "02:00:00:00:00:21", "02:00:00:00:00:24", "02:00:00:00:00:01"
PLUG4, HUB4, REMOTE4 = "192.168.1.21", "192.168.1.24", "203.0.113.10"
MACS = f"device,mac,ip\nplug,{PLUG},{PLUG4}\nhub,{HUB},{HUB4}\n"


def write_capture(path: Path, start: int, count: int) -> int:
    """`count` UDP frames one second apart from `start`: the plug to a remote server and back, via the gateway."""
    frames = []
    for i in range(count):
        if i % 2 == 0:
            frame = Ether(src=PLUG, dst=GW) / IP(src=PLUG4, dst=REMOTE4) / UDP(sport=40000, dport=5683)
        else:
            frame = Ether(src=GW, dst=PLUG) / IP(src=REMOTE4, dst=PLUG4) / UDP(sport=5683, dport=40000)
        frame = frame / Raw(b"x" * (10 + i))
        frame.time = start + i
        frames.append(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrpcap(str(path), frames)
    return count


def write_contribution(folder: Path, dataset: str, sites: dict[str, list[dict]]) -> int:
    """A contributed folder: per site a MAC map and captures {file, start, count[, window]}; returns packets."""
    total = 0
    manifest_sites = []
    for site, captures in sites.items():
        (folder / site).mkdir(parents=True, exist_ok=True)
        (folder / site / "macs.csv").write_text(MACS)
        entries = []
        for capture in captures:
            total += write_capture(folder / capture["file"], capture["start"], capture["count"])
            entry = {"file": capture["file"], **capture.get("window", {})}
            entries.append(entry)
        manifest_sites.append({"name": site, "macs": f"{site}/macs.csv", "captures": entries})
    manifest = {
        "dataset": dataset,
        "contributor": "Test Lab <lab@example.org>",
        "licence": "CC-BY-4.0",
        "source": f"https://example.org/{dataset}",
        "sites": manifest_sites,
    }
    (folder / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return total


def lake_versions(root: Path) -> dict[str, int]:
    """The latest version of every main-lake table, from the names of its `_delta_log` commit files."""
    found = {}
    for log in sorted(root.glob("*/*/_delta_log")):
        if log.parent.parent.name.startswith("_"):
            continue
        commits = [int(p.stem) for p in log.glob("*.json") if p.stem.isdigit()]
        found[f"{log.parent.parent.name}/{log.parent.name}"] = max(commits)
    return found


@pytest.fixture(scope="module")
def promoted(spark, project: Config, tmp_path_factory: pytest.TempPathFactory) -> tuple[gate.GateReport, int]:
    """A good contribution of two sites and three captures, through the gate."""
    require_tools("tshark", "capinfos")
    folder = tmp_path_factory.mktemp("contrib_good")
    written = write_contribution(
        folder,
        "contrib_good",
        {
            "home1": [
                {"file": "home1/idle.pcap", "start": T0, "count": 5, "window": {"start": T0, "end": T0 + 60}},
                {"file": "home1/active.pcap", "start": T0 + 100, "count": 4},
            ],
            "home2": [{"file": "home2/night.pcap", "start": T0 + 200, "count": 3}],
        },
    )
    return gate.contribute(spark, project, folder, progress=False), written


def test_good_contribution_is_promoted_and_queryable(spark, project: Config, promoted, capsys) -> None:
    report, written = promoted
    assert report.promoted, report.failures
    assert report.failures == []
    assert (report.captures, report.packets) == (3, written)
    packets = spark.read.format("delta").load(tables.table("packets").path(project.lake_root))
    assert packets.where("dataset = 'contrib_good'").count() == written
    by_name = spark.sql("SELECT count(*) AS n FROM iotlake.packets WHERE dataset = 'contrib_good'")
    assert by_name.collect()[0]["n"] == written
    models = spark.sql("SELECT count(*) AS n FROM iotlake.device_packets WHERE dataset = 'contrib_good'")
    assert models.collect()[0]["n"] == written  # every frame is the plug's
    entry = registry.find(registry.read_registry(project.registry_path), "contrib_good")
    assert entry is not None and entry.status == "promoted"
    assert (entry.licence, entry.contributor) == ("CC-BY-4.0", "Test Lab <lab@example.org>")
    mirrored = spark.read.format("delta").load(tables.table("datasets").path(project.lake_root))
    assert {(r["dataset"], r["status"]) for r in mirrored.collect()} >= {
        ("demo", "builtin"),
        ("contrib_good", "promoted"),
    }
    root = Path(project.lake_root)
    assert not (root / "_staging" / "contrib_good").exists()
    assert not (root / "_quarantine" / "contrib_good").exists()

    capsys.readouterr()
    assert run_cli(project, "datasets") == 0
    listing = capsys.readouterr().out
    line = next(line for line in listing.splitlines() if "contrib_good" in line)
    assert "promoted" in line
    assert f"packets v{report.versions['packets']}" in line


def test_capture_window_violation_is_quarantined_and_lake_unchanged(
    spark, project: Config, promoted, tmp_path: Path, capsys
) -> None:
    # Six frames at T0+1000…T0+1005, but the manifest says the capture ended at T0+1002: three are outside.
    folder = tmp_path / "contrib_window"
    write_contribution(
        folder,
        "contrib_window",
        {
            "lab": [
                {"file": "lab/a.pcap", "start": T0 + 1000, "count": 6, "window": {"end": T0 + 1002}},
                {"file": "lab/b.pcap", "start": T0 + 2000, "count": 2},
            ]
        },
    )
    root = Path(project.lake_root)
    before = lake_versions(root)
    assert "meta/datasets" in before and "bronze/packets" in before

    capsys.readouterr()
    code = run_cli(project, "contribute", str(folder), "--quiet")
    captured = capsys.readouterr()
    assert code == 2
    error = captured.err.strip()
    assert error.count("\n") == 0, error
    quarantine = root / "_quarantine" / "contrib_window"
    assert str(quarantine / "summary.txt") in error

    assert lake_versions(root) == before
    summary = (quarantine / "summary.txt").read_text()
    assert (
        "FAILED packets (expectations/packets.json): expect_column_pair_values_a_to_be_greater_than_b"
        in summary
    )
    assert "column: window_end, ts" in summary
    assert "3 of 8 rows unexpected" in summary
    # the report names the contributed file and the frames (frames 4-6 of a.pcap are after its end)
    assert sorted(re.findall(r"lab/a\.pcap frame (\d+)", summary)) == ["4", "5", "6"], summary
    assert summary.count("FAILED") == 1, summary
    assert (quarantine / "data_docs" / "index.html").is_file()
    assert (quarantine / "staging" / "bronze" / "packets" / "_delta_log").is_dir()
    assert not (root / "_staging" / "contrib_window").exists()
    packets = spark.read.format("delta").load(tables.table("packets").path(project.lake_root))
    assert packets.where("dataset = 'contrib_window'").isEmpty()
    by_name = spark.sql("SELECT count(*) AS n FROM iotlake.packets WHERE dataset = 'contrib_window'")
    assert by_name.collect()[0]["n"] == 0
    entry = registry.find(registry.read_registry(project.registry_path), "contrib_window")
    assert entry is not None and entry.status == "quarantined"


def test_missing_capture_file_is_one_line_naming_the_manifest_field(
    project: Config, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "contrib_missing"
    write_contribution(folder, "contrib_missing", {"lab": [{"file": "lab/a.pcap", "start": T0, "count": 2}]})
    manifest = yaml.safe_load((folder / "dataset.yaml").read_text())
    manifest["sites"][0]["captures"].append({"file": "lab/gone.pcap"})
    (folder / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    before = lake_versions(Path(project.lake_root))

    capsys.readouterr()
    code = run_cli(project, "contribute", str(folder), "--quiet")
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.count("\n") == 0, error
    assert f"{folder / 'dataset.yaml'}: sites[0].captures[1].file: file not found" in error
    assert lake_versions(Path(project.lake_root)) == before
    assert registry.find(registry.read_registry(project.registry_path), "contrib_missing") is None
