"""Concurrent ingests (issue 8, item 4): two real `iotlake ingest` processes, different captures, one dataset.

Round 1 starts both on an empty lake (both create every table), round 2 re-ingests both captures with new
contents into the existing tables. Both processes must exit 0 and land: the dataset then holds exactly the rows
of both captures. Delta lets one commit win and fails the other with a conflict, which the writer retries (each
retry is a warning line on stderr, counted and printed). Meanwhile this process reads the packets table over
and over: every count it sees is one of the committed states (each capture old or new), never a partial
write. Slow (two Spark sessions at once, twice): `make reliability`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from itertools import product
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from tests.conftest import require_tools

DATASET, SITE = "concurrent", "home"
PLUG, CAM, GW = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:fe"
T0 = 1_700_000_000
CLI = [sys.executable, "-m", "iotlake.cli"]
RETRY = re.compile(r"commit conflict \((\w+)\), retry (\d+)")


def _capture(path: Path, mac: str, ip: str, count: int) -> None:
    packets = []
    for i in range(count):
        packet = (
            Ether(src=mac, dst=GW) / IP(src=ip, dst="52.1.2.3") / UDP(sport=40000, dport=123) / Raw(b"n" * 48)
        )
        packet.time = T0 + i
        packets.append(packet)
    wrpcap(str(path), packets)


def _packets(spark, lake: Path) -> int | None:
    """Rows of the dataset in the packets table as a reader sees them now (None: no table yet)."""
    path = lake / "bronze" / "packets"
    if not any((path / "_delta_log").glob("*.json")):
        return None
    return spark.read.format("delta").load(str(path)).where(f"dataset = '{DATASET}'").count()


def _ingest_both(spark, lake: Path, repo: Path, files: dict[str, Path], macs: Path, allowed: set[int | None]):
    """Start one ingest per capture at the same time, read while they run; (processes, counts seen)."""
    procs = [
        subprocess.Popen(
            [
                *CLI,
                "ingest",
                DATASET,
                str(path),
                "--site",
                SITE,
                "--macs",
                str(macs),
                "--quiet",
                "--lake",
                str(lake),
            ],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in files.values()
    ]
    seen = []
    while any(p.poll() is None for p in procs):
        count = _packets(spark, lake)
        seen.append(count)
        assert count in allowed, (count, sorted(allowed, key=str))
        time.sleep(0.2)
    outputs = [(p.returncode, *p.communicate()) for p in procs]
    return outputs, seen


@pytest.mark.reliability
def test_two_concurrent_ingests_both_land_and_readers_see_whole_versions(spark, tmp_path) -> None:
    require_tools("tshark")
    repo = Path(__file__).resolve().parents[2]
    lake = tmp_path / "lake"
    macs = tmp_path / "macs.csv"
    macs.write_text(f"device,mac,ip\nplug,{PLUG},192.168.1.10\ncamera,{CAM},192.168.1.20\n")
    sizes = {1: {"plug": 300, "camera": 500}, 2: {"plug": 400, "camera": 200}}
    report = []
    for round_no, counts in sizes.items():
        folder = tmp_path / f"round{round_no}"
        folder.mkdir()
        files = {name: folder / f"{name}.pcap" for name in counts}
        _capture(files["plug"], PLUG, "192.168.1.10", counts["plug"])
        _capture(files["camera"], CAM, "192.168.1.20", counts["camera"])
        # every committed state: each capture absent (round 1) or old, or new
        before = sizes.get(round_no - 1)
        options = [(before[name] if before else 0, counts[name]) for name in counts]
        allowed: set[int | None] = {sum(c) for c in product(*options)}
        if round_no == 1:
            allowed.add(None)
        started = time.monotonic()
        outputs, seen = _ingest_both(spark, lake, repo, files, macs, allowed)
        seconds = time.monotonic() - started
        for code, _, err in outputs:
            assert code == 0, err[-3000:]
        retries = [m.groups() for _, _, err in outputs for m in RETRY.finditer(err)]
        total = sum(counts.values())
        assert _packets(spark, lake) == total
        frames = (
            spark.read.format("delta").load(str(lake / "bronze" / "packets")).where(f"dataset = '{DATASET}'")
        )
        assert frames.select("capture", "frame_no").distinct().count() == total
        captures = spark.read.format("delta").load(str(lake / "bronze" / "captures"))
        got = {r.capture: r.packets for r in captures.where(f"dataset = '{DATASET}'").collect()}
        assert got == counts
        devices = spark.read.format("delta").load(str(lake / "bronze" / "devices"))
        assert devices.where(f"dataset = '{DATASET}'").count() == 2
        report.append(
            f"round {round_no}: both exit 0 in {seconds:.0f}s; {len(retries)} retried conflict(s) "
            f"{sorted({r[0] for r in retries})}; reader saw {len(seen)} counts, distinct {sorted(set(seen), key=str)} "
            f"(allowed {sorted(allowed, key=str)})"
        )
    print("concurrent ingests:", *report, sep="\n  ")
