"""Concurrent writes (issue 8, item 4), in one process: the writer's retry, and two ingests in two threads.

The two-process version (real `iotlake ingest` commands) is tests/reliability/test_concurrent_ingest.py.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from iotlake.errors import IotlakeError
from iotlake.lake.writer import with_retry
from tests.conftest import require_tools

DATASET, SITE = "threads", "home"
PLUG, CAM, GW = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:fe"
T0 = 1_700_000_000


def _conflict(kind: str = "ConcurrentAppendException") -> BaseException:
    import delta.exceptions as dx

    return getattr(dx, kind)(message=f"[DELTA_CONCURRENT_APPEND] {kind}: files were added\nmore detail")


def test_a_conflicting_commit_is_rerun_after_a_logged_pause(caplog: pytest.LogCaptureFixture) -> None:
    calls, pauses = [], []

    def commit() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _conflict("ConcurrentAppendException" if len(calls) == 1 else "ProtocolChangedException")
        return "committed"

    with caplog.at_level(logging.WARNING, logger="iotlake.lake.writer"):
        assert with_retry(commit, "lake/bronze/packets", backoff_s=0.1, sleep=pauses.append) == "committed"
    assert len(calls) == 3
    assert 0.05 <= pauses[0] <= 0.15 and 0.1 <= pauses[1] <= 0.3  # doubling, jittered by ±50 %
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all(m.startswith("lake/bronze/packets: commit conflict") for m in messages)
    assert "ConcurrentAppendException" in messages[0] and "retry 1 of 7" in messages[0]


def test_conflicts_that_never_stop_end_in_one_line_naming_the_table() -> None:
    def commit() -> None:
        raise _conflict()

    with pytest.raises(IotlakeError) as info:
        with_retry(commit, "lake/bronze/devices", attempts=3, sleep=lambda s: None)
    assert str(info.value).startswith("lake/bronze/devices: concurrent writes kept conflicting")
    assert "after 3 attempts" in str(info.value) and "\n" not in str(info.value)


def test_other_errors_are_not_retried() -> None:
    calls = []

    def commit() -> None:
        calls.append(1)
        raise ValueError("not a conflict")

    with pytest.raises(ValueError):
        with_retry(commit, "t", sleep=lambda s: None)
    assert calls == [1]


def _capture(path: Path, mac: str, ip: str, count: int) -> None:
    packets = []
    for i in range(count):
        packet = (
            Ether(src=mac, dst=GW) / IP(src=ip, dst="52.1.2.3") / UDP(sport=40000, dport=123) / Raw(b"n" * 8)
        )
        packet.time = T0 + i
        packets.append(packet)
    wrpcap(str(path), packets)


def test_two_ingests_of_one_dataset_in_two_threads_both_land(
    spark, config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Both threads commit to the same tables of one dataset; a reader meanwhile sees only committed states."""
    require_tools("tshark")
    from iotlake import pipeline

    counts = {"plug": 40, "camera": 70}
    macs = tmp_path / "macs.csv"
    macs.write_text(f"device,mac,ip\nplug,{PLUG},192.168.1.10\ncamera,{CAM},192.168.1.20\n")
    _capture(tmp_path / "plug.pcap", PLUG, "192.168.1.10", counts["plug"])
    _capture(tmp_path / "camera.pcap", CAM, "192.168.1.20", counts["camera"])
    packets_path = Path(config.lake_root) / "bronze" / "packets"
    errors: list[BaseException] = []

    def ingest(name: str) -> None:
        try:
            plans = pipeline.plan_files(config, DATASET, SITE, [tmp_path / f"{name}.pcap"], macs, None)
            pipeline.ingest(spark, config, DATASET, plans, progress=False)
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(name,)) for name in counts]
    allowed, seen = {0, counts["plug"], counts["camera"], sum(counts.values())}, set()
    with caplog.at_level(logging.WARNING, logger="iotlake.lake.writer"):
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            if any((packets_path / "_delta_log").glob("*.json")):  # a first commit, not just its folder
                frames = spark.read.format("delta").load(str(packets_path))
                seen.add(frames.where(f"dataset = '{DATASET}'").count())
            time.sleep(1)
        for thread in threads:
            thread.join()
    assert not errors, errors
    print(f"retried conflicts: {[r.getMessage() for r in caplog.records]}; reader saw {sorted(seen)}")
    assert seen <= allowed, seen
    frames = spark.read.format("delta").load(str(packets_path)).where(f"dataset = '{DATASET}'")
    assert frames.count() == sum(counts.values())
    assert frames.select("capture", "frame_no").distinct().count() == sum(counts.values())
    captures = spark.read.format("delta").load(str(packets_path.parent / "captures"))
    assert {r.capture: r.packets for r in captures.where(f"dataset = '{DATASET}'").collect()} == counts
