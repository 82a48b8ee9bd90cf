"""Protocol labels on a real capture: per device, packets per label equal tshark display-filter counts.

The oracle is tshark alone: for each label a display filter (the port of the connections for TLS and bare TCP,
the dissector name otherwise), counted per MAC over `eth.src`/`eth.dst`. The filters must cover each device's
frames exactly once, which the test checks first, so a label the oracle misses cannot hide.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from pyspark.sql import functions as F

from tests.conformance.tshark_oracle import is_group
from tests.conftest import require_tools, shared_file

MODELS = ["device_packets", "packet_protocols", "device_addresses", "protocol_usage"]
# The capture's connections as tshark shows them (SYNs to 443 and 9999; ssh, 5228 and 5223 without a
# handshake in the capture, named by their lower port) and the protocols it dissects.
ORACLE = {
    "https": "tcp.port == 443",
    "tplink-smarthome": "tcp.port == 9999 || udp.port == 9999",
    "ssh": "tcp.port == 22",
    "tcp:5228": "tcp.port == 5228",
    "tcp:5223": "tcp.port == 5223",
    "mdns": "mdns",
    "dns": "dns && !mdns",
    "arp": "arp",
    "eapol": "eapol",
    "llc": "llc",
    "icmpv6": "icmpv6",
}


def frames_per_mac(path: Path, display_filter: str) -> Counter:
    """Frames matching a filter per MAC (source and destination; a frame to itself counted once)."""
    out = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(path),
            "-Y",
            display_filter,
            "-T",
            "fields",
            "-e",
            "eth.src",
            "-e",
            "eth.dst",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: Counter = Counter()
    for line in out.splitlines():
        src, dst = [*line.split("\t"), "", ""][:2]
        for mac in {src, dst} - {""}:
            counts[mac] += 1
    return counts


def test_pingpong_protocol_counts_per_device_equal_tshark(spark, config, tmp_path) -> None:
    require_tools("tshark")
    from iotlake import pipeline

    capture = shared_file("pingpong/wlan1.local.dns.pcap")
    everything = frames_per_mac(capture, "eth")
    macs = sorted(mac for mac in everything if not is_group(mac))
    mac_of = {f"d{i}": mac for i, mac in enumerate(macs)}
    macs_file = tmp_path / "macs.csv"
    macs_file.write_text("device,mac\n" + "".join(f"{d},{m}\n" for d, m in mac_of.items()))

    oracle = {label: frames_per_mac(capture, flt) for label, flt in ORACLE.items()}
    for mac in macs:  # the filters partition every device's frames
        assert sum(oracle[label][mac] for label in ORACLE) == everything[mac], mac

    plans = pipeline.plan_files(config, "pingpong_protocols", "site1", [capture], macs_file, None)
    pipeline.ingest(spark, config, "pingpong_protocols", plans, progress=False)
    pipeline.build(spark, config, ["pingpong_protocols"], only=MODELS)
    rows = (
        spark.table("iotlake.protocol_usage")
        .where(
            (F.col("dataset") == "pingpong_protocols")
            & (F.col("profile") == "all")
            & (F.col("scope") == "ALL")
        )
        .groupBy("device", "protocol")
        .agg(F.sum("packets").alias("packets"))
        .collect()
    )
    actual = {(r["device"], r["protocol"]): r["packets"] for r in rows}
    expected = {
        (device, label): oracle[label][mac]
        for device, mac in mac_of.items()
        for label in ORACLE
        if oracle[label][mac]
    }
    assert actual == expected
