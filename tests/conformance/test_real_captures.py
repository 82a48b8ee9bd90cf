"""Real captures from ../shared/data: packet and per-device frame counts equal tshark's own statistics."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from tests.conformance.tshark_oracle import (
    PASSIVE,
    capinfos_packets,
    device_io_stat,
    ethernet_endpoints,
    frames_matching,
    is_group,
)
from tests.conftest import require_tools, shared_file

METRICS = ("frames", "bytes", "tx_frames", "tx_bytes", "rx_frames", "rx_bytes")


def ingest_file(spark, config, dataset: str, capture: Path, macs: Path) -> None:
    from iotlake import pipeline

    plans = pipeline.plan_files(config, dataset, "site1", [capture], macs, None)
    pipeline.ingest(spark, config, dataset, plans, progress=False)
    pipeline.build(
        spark,
        config,
        [dataset],
        alignment="capture_start",
        only=pipeline.models_for(config, "interval_volumes"),
    )


def device_metrics(spark, dataset: str) -> dict[str, dict[str, int]]:
    rows = (
        spark.table("iotlake.device_packets")
        .where(F.col("dataset") == dataset)
        .groupBy("device")
        .agg(
            F.count("*").alias("frames"),
            F.sum("frame_len").alias("bytes"),
            F.count_if(F.col("direction") == "tx").alias("tx_frames"),
            F.sum(F.when(F.col("direction") == "tx", F.col("frame_len")).otherwise(0)).alias("tx_bytes"),
            F.count_if(F.col("direction") == "rx").alias("rx_frames"),
            F.sum(F.when(F.col("direction") == "rx", F.col("frame_len")).otherwise(0)).alias("rx_bytes"),
        )
        .collect()
    )
    return {r["device"]: {m: int(r[m]) for m in METRICS} for r in rows}


def check_capture(spark, config, dataset: str, capture: Path, macs: Path, mac_of: dict[str, str]) -> None:
    ingest_file(spark, config, dataset, capture, macs)
    assert spark.table("iotlake.packets").where(F.col("dataset") == dataset).count() == capinfos_packets(
        capture
    )
    oracle = ethernet_endpoints(capture)
    actual = device_metrics(spark, dataset)
    expected = {device: oracle[mac] for device, mac in mac_of.items() if mac in oracle}
    assert expected, "no device of the MAC map appears in the capture"
    assert actual == expected
    for device, mac in mac_of.items():
        assert actual.get(device, {}).get("frames", 0) == frames_matching(capture, f"eth.addr == {mac}")
    check_hourly_volumes(spark, dataset, capture, mac_of)


def check_hourly_volumes(spark, dataset: str, capture: Path, mac_of: dict[str, str]) -> None:
    """Every device, profile, scope and hour equals tshark's io,stat with the equivalent display filters."""
    volumes = (
        spark.table("iotlake.interval_volumes")
        .where(F.col("dataset") == dataset)
        .join(
            spark.table("iotlake.captures").select("dataset", "site", "capture", "first_ts"),
            ["dataset", "site", "capture"],
        )
        .withColumn(
            "offset", F.round(F.unix_micros("interval_start") - F.unix_micros("first_ts")) / 1_000_000
        )
        .collect()
    )
    ours: dict[tuple, tuple[int, ...]] = {
        (r["device"], r["profile"], r["scope"], int(r["offset"])): tuple(r[m] for m in METRICS)
        for r in volumes
    }
    profiles = {"all": "frame", "passive": PASSIVE}
    compared = 0
    for profile, profile_filter in profiles.items():
        for device, mac in mac_of.items():
            for scope, rows in device_io_stat(capture, mac, profile_filter).items():
                for start, metrics in rows.items():
                    key = (device, profile, scope, start)
                    assert ours.get(key, (0,) * 6) == metrics, key
                    compared += key in ours
    # every row of ours for these profiles was compared with an io,stat row
    assert compared == sum(key[1] in profiles for key in ours)


@pytest.mark.realdata
def test_pingpong_home_capture(spark, config, tmp_path) -> None:
    require_tools("tshark", "capinfos")
    capture = shared_file("pingpong/wlan1.local.dns.pcap")
    unicast = sorted(mac for mac in ethernet_endpoints(capture) if not is_group(mac))
    mac_of = {f"dev{i:02d}": mac for i, mac in enumerate(unicast, 1)}
    macs = tmp_path / "macs.csv"
    macs.write_text("device,mac\n" + "".join(f"{d},{m}\n" for d, m in mac_of.items()))
    check_capture(spark, config, "pingpong", capture, macs, mac_of)


@pytest.mark.realdata
@pytest.mark.parametrize(
    "name",
    [
        # One labelled capture in make test; the other two (same code path, 25-30 s each) in make test-heavy.
        pytest.param("blink-cam-01", marks=pytest.mark.heavy),
        pytest.param("lockly-hub-01", marks=pytest.mark.heavy),
        "schlage-lock-01",
    ],
)
def test_labeled_week_long_capture(spark, config, name) -> None:
    require_tools("tshark", "capinfos")
    capture = shared_file(f"labeled-iot-captures/{name}.pcap")
    devices_csv = shared_file("labeled-iot-captures/devices.csv")
    seen = ethernet_endpoints(capture)
    with devices_csv.open(newline="") as handle:
        mac_of = {row["device"]: row["mac"].strip().lower() for row in csv.DictReader(handle)}
    mac_of = {device: mac for device, mac in mac_of.items() if mac in seen}
    check_capture(spark, config, f"labeled-{name}", capture, devices_csv, mac_of)
