"""Kill and rerun: an ingest and a model build killed (SIGKILL, with their JVM and tshark) at random points.

Ten kills: after one complete ingest, five re-ingests killed at 30-95 % of its duration; after one complete
build, five rebuilds killed the same way. After every kill each table holds, for the dataset, either nothing
(not built yet) or exactly the rows of a clean run: Delta commits are atomic, so no half-written version is
visible. After the final rerun every table equals the clean run, with no duplicate frames. The clean run is the
same capture ingested and built without interruption. Slow (about 5 minutes): `make reliability`.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from tests.conftest import require_tools

PLUG, GW = "02:00:00:00:00:01", "02:00:00:00:00:fe"
T0 = 1_700_000_000
MODELS = ["device_packets", "interval_volumes", "volume_stats"]
TABLES = {"packets": "bronze", "device_packets": "silver", "interval_volumes": "gold", "volume_stats": "gold"}
KILLS = 5  # per command


def _capture(path: Path) -> None:
    packets = []
    for i in range(400):
        if i % 2:
            layer = TCP(sport=40000 + i % 7, dport=443, flags="PA") / Raw(b"x" * (i % 50))
        else:
            layer = UDP(sport=50000, dport=123) / Raw(b"n" * 48)
        packet = Ether(src=PLUG, dst=GW) / IP(src="192.168.1.10", dst="52.1.2.3") / layer
        packet.time = T0 + 30 * i
        packets.append(packet)
    wrpcap(str(path), packets)


def _cli(*args: str, lake: Path) -> list[str]:
    return [sys.executable, "-m", "iotlake.cli", *args, "--lake", str(lake)]


def _counts(spark, lake: Path, dataset: str) -> dict[str, int]:
    """Rows of `dataset` per table as a reader sees them now (0 when the table does not exist yet)."""
    counts = {}
    for name, layer in TABLES.items():
        path = lake / layer / name
        # the file system, not DeltaTable.isDeltaTable: its cached answer goes stale when other processes write
        if not any((path / "_delta_log").glob("*.json")):
            counts[name] = 0
            continue
        counts[name] = spark.read.format("delta").load(str(path)).where(f"dataset = '{dataset}'").count()
    return counts


def _kill_after(command: list[str], seconds: float, cwd: Path) -> int | None:
    """Start `command` in its own process group and SIGKILL the whole group after `seconds` (or let it end)."""
    proc = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)  # let the kernel reap the JVM and tshark of the group
        return None


@pytest.mark.reliability
def test_killed_ingest_and_build_never_show_partial_tables_and_rerun_matches_clean(
    spark, config, tmp_path
) -> None:
    require_tools("tshark")
    from iotlake import pipeline

    repo = Path(__file__).resolve().parents[2]
    capture, macs = tmp_path / "capture1.pcap", tmp_path / "macs.csv"
    _capture(capture)
    macs.write_text(f"device,mac\nplug,{PLUG}\n")

    # the clean run, in this process, into the shared test lake
    plans = pipeline.plan_files(config, "killref", "home", [capture], macs, None)
    pipeline.ingest(spark, config, "killref", plans, progress=False)
    pipeline.build(spark, config, ["killref"], only=MODELS)
    clean = _counts(spark, Path(config.lake_root), "killref")
    assert clean["packets"] == 400 and all(clean.values())

    lake = tmp_path / "lake"
    ingest = _cli(
        "ingest", "killed", str(capture), "--site", "home", "--macs", str(macs), "--quiet", lake=lake
    )
    build = _cli("build", "--dataset", "killed", *(a for m in MODELS for a in ("--model", m)), lake=lake)
    rng = random.Random(20261125)
    outcomes = []
    for command in (ingest, build):
        # one complete run gives the command's duration; the kills then land at 30-95 % of it, so they hit
        # extraction, bronze writes and model writes on fast and slow machines alike
        started = time.monotonic()
        assert subprocess.run(command, cwd=repo, capture_output=True).returncode == 0
        duration = time.monotonic() - started
        assert _counts(spark, lake, "killed")["packets"] == clean["packets"]
        for _ in range(KILLS):
            after = rng.uniform(0.3, 0.95) * duration
            code = _kill_after(command, after, repo)
            seen = _counts(spark, lake, "killed")
            outcomes.append((command[3], round(after, 1), code, seen))
            for name, rows in seen.items():
                # a replaced partition shows the old or the new version, never a mix, duplicates or a gap
                expected = (clean[name],) if command is ingest and name == "packets" else (0, clean[name])
                assert rows in expected, (name, rows, clean[name], outcomes[-1])

    for command in (ingest, build):
        assert subprocess.run(command, cwd=repo, capture_output=True).returncode == 0
    final = _counts(spark, lake, "killed")
    print("kill outcomes (command, seconds, exit or None if killed, rows seen):", *outcomes, sep="\n  ")
    assert final == clean
    frames = spark.read.format("delta").load(str(lake / "bronze" / "packets"))
    assert frames.select("site", "capture", "frame_no").distinct().count() == clean["packets"]
