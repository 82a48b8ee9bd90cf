"""The demo dataset end to end: bronze counts and interval volumes against the generator's ground truth."""

from __future__ import annotations

import subprocess

import pytest
from pyspark.sql import functions as F

from tests.conftest import require_tools

METRICS = ("frames", "bytes", "tx_frames", "tx_bytes", "rx_frames", "rx_bytes")


def capinfos_count(path) -> int:
    out = subprocess.run(
        ["capinfos", "-M", "-c", "-T", "-r", str(path)], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split("\t")[-1])


def test_packets_per_capture_equal_generator_and_capinfos(spark, demo_lake, demo_dir, truth) -> None:
    require_tools("capinfos")
    counts = {
        (r["site"], r["capture"]): r["count"]
        for r in spark.table("iotlake.packets")
        .where("dataset = 'demo'")
        .groupBy("site", "capture")
        .count()
        .collect()
    }
    expected = {}
    for site, site_truth in truth["sites"].items():
        for capture, capture_truth in site_truth["captures"].items():
            assert capinfos_count(demo_dir / capture_truth["file"]) == capture_truth["packets"]
            expected[(site, capture)] = capture_truth["packets"]
    assert counts == expected


def test_frame_numbers_are_unique_and_dense(spark, demo_lake) -> None:
    stats = (
        spark.table("iotlake.packets")
        .where("dataset = 'demo'")
        .groupBy("site", "capture")
        .agg(
            F.count("*").alias("n"),
            F.countDistinct("frame_no").alias("d"),
            F.min("frame_no"),
            F.max("frame_no"),
        )
        .collect()
    )
    for row in stats:
        assert row["n"] == row["d"] == row["max(frame_no)"]
        assert row["min(frame_no)"] == 1


def test_captures_table_records_manifest(spark, demo_lake, demo_dir, truth) -> None:
    import hashlib

    rows = {
        r["capture"] + "@" + r["site"]: r
        for r in spark.table("iotlake.captures").where("dataset='demo'").collect()
    }
    for site, site_truth in truth["sites"].items():
        for capture, capture_truth in site_truth["captures"].items():
            row = rows[f"{capture}@{site}"]
            data = (demo_dir / capture_truth["file"]).read_bytes()
            assert row["sha256"] == hashlib.sha256(data).hexdigest()
            assert row["bytes"] == len(data)
            assert row["packets"] == capture_truth["packets"]
            assert row["truncated"] is False
            assert row["first_ts"].timestamp() == pytest.approx(capture_truth["first_ts"], abs=1e-6)
            assert row["last_ts"].timestamp() == pytest.approx(capture_truth["last_ts"], abs=1e-6)
            assert row["tshark_version"]


@pytest.mark.parametrize("profile", ["all", "passive"])
def test_interval_volumes_equal_ground_truth(spark, demo_lake, truth, profile) -> None:
    rows = (
        spark.table("iotlake.interval_volumes").where("dataset = 'demo'").where(F.col("profile") == profile)
    ).collect()
    actual = {
        (r["site"], r["capture"], r["device"], r["scope"], int(r["interval_start"].timestamp())): tuple(
            r[m] for m in METRICS
        )
        for r in rows
    }
    expected = {}
    for site, site_truth in truth["sites"].items():
        for capture, capture_truth in site_truth["captures"].items():
            for device, device_truth in capture_truth["devices"].items():
                for scope, intervals in device_truth["intervals"][profile].items():
                    for interval in intervals:
                        key = (site, capture, device, scope, interval["start"])
                        expected[key] = tuple(interval[m] for m in METRICS)
    assert actual == expected


@pytest.mark.parametrize("profile", ["all", "passive"])
def test_device_totals_equal_ground_truth(spark, config, demo_lake, truth, profile) -> None:
    from iotlake.pipeline import device_summary

    summary = {(r["site"], r["device"]): r for r in device_summary(spark, config, "demo", profile).collect()}
    for site, site_truth in truth["sites"].items():
        for device in site_truth["devices"]:
            totals = [
                c["devices"][device]["totals"][profile]
                for c in site_truth["captures"].values()
                if device in c["devices"]
            ]
            row = summary[(site, device)]
            assert row["frames"] == sum(t["ALL"]["frames"] for t in totals)
            assert row["bytes"] == sum(t["ALL"]["bytes"] for t in totals)
            assert row["tx"] == sum(t["ALL"]["tx_frames"] for t in totals)
            assert row["rx"] == sum(t["ALL"]["rx_frames"] for t in totals)
            assert row["lan"] == sum(t["LAN"]["frames"] for t in totals)
            assert row["wan"] == sum(t["WAN"]["frames"] for t in totals)
