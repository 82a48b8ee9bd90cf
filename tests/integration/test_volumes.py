"""Volume models on a hand-built capture whose every frame is labelled by hand: profile, scope and direction.

The expected rows are sums over the hand labels below, never outputs of iotlake. Interval length is 60 s and
the capture starts on a minute boundary, so wall-clock, capture-start and device-first grids differ only where
the test says so.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from tests.conftest import require_tools

T0 = 1_699_999_200  # a whole hour (and minute) since the epoch
INTERVAL = 60
PLUG, CAM, GW = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:fe"
PLUG4, CAM4, GW4, CLOUD4, RESOLVER4 = "192.168.1.10", "192.168.1.20", "192.168.1.1", "52.1.2.3", "8.8.8.8"
PLUG6, PEER6, CLOUD6 = "fd00::10", "fd00::99", "2001:db8::1"
METRICS = ("frames", "bytes", "tx_frames", "tx_bytes", "rx_frames", "rx_bytes")
# The volume models and what they read: the other gold tables are not needed here.
VOLUME_MODELS = ["device_packets", "interval_volumes", "volume_stats", "traffic_distribution"]


@dataclass(frozen=True)
class Frame:
    """One frame of the capture and what it is for the plug, labelled by hand."""

    second: float  # offset from T0
    packet: object
    direction: str  # the plug's side: tx or rx
    scope: str  # LAN or WAN (DESIGN §6)
    ip: bool
    flags: frozenset[str] = frozenset()


def _tcp(src, dst, sport, dport, flags, seq, ack, payload=b""):
    layer = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=64240)
    return Ether(src=src[0], dst=dst[0]) / IP(src=src[1], dst=dst[1]) / layer / Raw(payload)


PLUG_SIDE, CLOUD_SIDE = (PLUG, PLUG4), (GW, CLOUD4)  # the cloud is reached through the gateway's MAC

FRAMES = [
    # minute 0: ARP, a TCP session with one retransmission, DNS to a public resolver, a packet to the gateway
    Frame(
        1,
        Ether(src=PLUG, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=PLUG4, pdst=GW4, hwsrc=PLUG),
        "tx",
        "LAN",
        False,
    ),
    Frame(5, _tcp(PLUG_SIDE, CLOUD_SIDE, 40000, 443, "S", 1000, 0), "tx", "WAN", True),
    Frame(5.1, _tcp(CLOUD_SIDE, PLUG_SIDE, 443, 40000, "SA", 5000, 1001), "rx", "WAN", True),
    Frame(5.2, _tcp(PLUG_SIDE, CLOUD_SIDE, 40000, 443, "A", 1001, 5001), "tx", "WAN", True),
    Frame(5.3, _tcp(PLUG_SIDE, CLOUD_SIDE, 40000, 443, "PA", 1001, 5001, b"0123456789"), "tx", "WAN", True),
    Frame(
        5.9,
        _tcp(PLUG_SIDE, CLOUD_SIDE, 40000, 443, "PA", 1001, 5001, b"0123456789"),
        "tx",
        "WAN",
        True,
        frozenset({"retransmission"}),
    ),
    Frame(6.0, _tcp(CLOUD_SIDE, PLUG_SIDE, 443, 40000, "A", 5001, 1011), "rx", "WAN", True),
    Frame(
        10,
        Ether(src=PLUG, dst=GW)
        / IP(src=PLUG4, dst=RESOLVER4)
        / UDP(sport=5353 + 1, dport=53)
        / DNS(id=7, rd=1, qd=DNSQR(qname="cloud.example.com")),
        "tx",
        "WAN",
        True,
        frozenset({"dns"}),
    ),
    Frame(
        10.05,
        Ether(src=GW, dst=PLUG)
        / IP(src=RESOLVER4, dst=PLUG4)
        / UDP(sport=53, dport=5354)
        / DNS(
            id=7,
            qr=1,
            rd=1,
            ra=1,
            qd=DNSQR(qname="cloud.example.com"),
            an=DNSRR(rrname="cloud.example.com", rdata=CLOUD4, ttl=300),
        ),
        "rx",
        "WAN",
        True,
        frozenset({"dns"}),
    ),
    Frame(
        20,
        Ether(src=PLUG, dst=GW) / IP(src=PLUG4, dst=GW4) / UDP(sport=9999, dport=9999) / Raw(b"x" * 30),
        "tx",
        "LAN",
        True,
        frozenset({"gateway"}),
    ),
    # minute 1: silent
    # minute 2: IPv6 ULA peer, mDNS multicast, a unicast from the camera, a global IPv6 destination
    Frame(
        125,
        Ether(src=PLUG, dst="02:00:00:00:00:99")
        / IPv6(src=PLUG6, dst=PEER6)
        / UDP(sport=7000, dport=7000)
        / Raw(b"u" * 40),
        "tx",
        "LAN",
        True,
    ),
    Frame(
        126,
        Ether(src=PLUG, dst="33:33:00:00:00:fb")
        / IPv6(src="fe80::10", dst="ff02::fb")
        / UDP(sport=5353, dport=5353)
        / DNS(qd=DNSQR(qname="_hap._tcp.local", qtype="PTR")),
        "tx",
        "LAN",
        True,
    ),
    Frame(
        130,
        Ether(src=CAM, dst=PLUG) / IP(src=CAM4, dst=PLUG4) / UDP(sport=6000, dport=6000) / Raw(b"c" * 12),
        "rx",
        "LAN",
        True,
    ),
    Frame(
        170,
        Ether(src=PLUG, dst=GW) / IPv6(src=PLUG6, dst=CLOUD6) / UDP(sport=7001, dport=443) / Raw(b"q" * 50),
        "tx",
        "WAN",
        True,
    ),
]
# What each profile keeps, from the definitions of the reference (passive-mode-study §2.2) and the issue.
PROFILES = {
    "all": lambda f: True,
    "passive": lambda f: f.ip and not f.flags,
    "passive_with_dns": lambda f: f.ip and f.flags <= {"dns"},
}


def _expected(profile: str, origin_of, scope: str) -> dict[int, tuple[int, ...]]:
    """Expected plug rows {interval start epoch: metrics} for one profile and scope, zeros between."""
    kept = [f for f in FRAMES if PROFILES[profile](f) and scope in ("ALL", f.scope)]
    every = [f for f in FRAMES if PROFILES[profile](f)]
    origin = origin_of(every)
    first = min(int(f.second - origin) // INTERVAL for f in every)
    last = max(int(f.second - origin) // INTERVAL for f in every)
    rows = {}
    for k in range(first, last + 1):
        inside = [f for f in kept if int(f.second - origin) // INTERVAL == k]
        size = {id(f): len(bytes(f.packet)) for f in inside}
        tx = [f for f in inside if f.direction == "tx"]
        rx = [f for f in inside if f.direction == "rx"]
        start = T0 + origin + k * INTERVAL
        rows[round(start * 1e6)] = (
            len(inside),
            sum(size.values()),
            len(tx),
            sum(size[id(f)] for f in tx),
            len(rx),
            sum(size[id(f)] for f in rx),
        )
    return rows


ALIGNMENTS = {
    "wall_clock": lambda frames: 0,
    "capture_start": lambda frames: FRAMES[0].second,
    "device_first": lambda frames: min(f.second for f in frames),
}


@pytest.fixture(scope="module")
def handbuilt(spark, config, tmp_path_factory) -> Path:
    require_tools("tshark")
    from iotlake import pipeline

    folder = tmp_path_factory.mktemp("handbuilt")
    packets = []
    for frame in FRAMES:
        frame.packet.time = T0 + frame.second
        packets.append(frame.packet)
    wrpcap(str(folder / "capture1.pcap"), packets)
    (folder / "macs.csv").write_text(f"device,mac\nplug,{PLUG}\ncam,{CAM}\n")
    (folder / "site.yaml").write_text(f"gateway_ips: [{GW4}]\n")
    plans = pipeline.plan_files(
        config, "handbuilt", "lab", [folder / "capture1.pcap"], folder / "macs.csv", folder / "site.yaml"
    )
    pipeline.ingest(spark, config, "handbuilt", plans, progress=False)
    return folder


def _actual(spark, profile: str, scope: str) -> dict[int, tuple[int, ...]]:
    rows = (
        spark.table("iotlake.interval_volumes")
        .where("dataset = 'handbuilt' AND device = 'plug'")
        .where((F.col("profile") == profile) & (F.col("scope") == scope))
        .collect()
    )
    return {round(r["interval_start"].timestamp() * 1e6): tuple(r[m] for m in METRICS) for r in rows}


@pytest.mark.parametrize("alignment", list(ALIGNMENTS))
def test_interval_rows_per_profile_scope_and_alignment(spark, config, handbuilt, alignment) -> None:
    from iotlake import pipeline

    pipeline.build(spark, config, ["handbuilt"], only=VOLUME_MODELS, interval_s=INTERVAL, alignment=alignment)
    for profile in PROFILES:
        for scope in ("ALL", "LAN", "WAN"):
            expected = _expected(profile, ALIGNMENTS[alignment], scope)
            assert _actual(spark, profile, scope) == expected, (profile, scope)


def test_device_first_starts_at_the_first_kept_frame(spark, config, handbuilt) -> None:
    from iotlake import pipeline

    pipeline.build(
        spark, config, ["handbuilt"], only=VOLUME_MODELS, interval_s=INTERVAL, alignment="device_first"
    )
    starts = {
        r["profile"]: r["start"]
        for r in spark.table("iotlake.interval_volumes")
        .where("dataset = 'handbuilt' AND device = 'plug' AND scope = 'ALL'")
        .groupBy("profile")
        .agg(F.min("interval_start").alias("start"))
        .collect()
    }
    # `all` starts at the ARP frame (second 1); passive at the TCP SYN (second 5), the first IP frame.
    assert starts["all"].timestamp() == pytest.approx(T0 + 1)
    assert starts["passive"].timestamp() == pytest.approx(T0 + 5)


def test_volume_stats_and_distribution_on_the_known_series(spark, config, handbuilt) -> None:
    from iotlake import pipeline

    pipeline.build(
        spark, config, ["handbuilt"], only=VOLUME_MODELS, interval_s=INTERVAL, alignment="wall_clock"
    )
    series = _expected("passive", ALIGNMENTS["wall_clock"], "ALL")
    frames = [v[0] for _, v in sorted(series.items())]
    assert frames == [5, 0, 4]  # minute 0: SYN, SYN-ACK, ACK, data, ACK; minute 1 silent; minute 2: four
    stats = (
        spark.table("iotlake.volume_stats")
        .where("dataset = 'handbuilt' AND device = 'plug' AND profile = 'passive' AND scope = 'ALL'")
        .where("capture = 'capture1'")
        .first()
    )
    mean, std = 3.0, statistics.stdev([5, 0, 4])  # (5+0+4)/3; sample std by hand: sqrt(7) = 2.6458
    assert stats["intervals"] == 3
    assert stats["frames_total"] == 9
    assert stats["frames_mean"] == pytest.approx(mean)
    assert stats["frames_std"] == pytest.approx(7**0.5)
    assert stats["frames_cov"] == pytest.approx(std / mean)
    dist = (
        spark.table("iotlake.traffic_distribution")
        .where("dataset = 'handbuilt' AND device = 'plug' AND profile = 'passive' AND capture = '*'")
        .first()
    )
    # passive keeps 9 plug frames: 5 WAN TCP + 1 WAN IPv6 = 6 WAN; ULA, mDNS, camera = 3 LAN; rx: SYN-ACK, ACK, camera
    assert (dist["packet_total"], dist["lan_packet_total"], dist["wan_packet_total"]) == (9, 3, 6)
    assert dist["rx_packet_pct"] == pytest.approx(3 / 9)
    assert dist["lan_rx_packet_pct"] == pytest.approx(1 / 9)  # over the overall total, as the earlier file


def test_single_interval_cov_is_null_and_zero_mean_cov_is_zero(spark, config, handbuilt) -> None:
    from iotlake import pipeline

    pipeline.build(spark, config, ["handbuilt"], only=VOLUME_MODELS, interval_s=3600, alignment="wall_clock")
    rows = {
        r["scope"]: r
        for r in spark.table("iotlake.volume_stats")
        .where("dataset = 'handbuilt' AND device = 'cam' AND profile = 'all' AND capture = 'capture1'")
        .collect()
    }
    assert rows["ALL"]["intervals"] == 1 and rows["ALL"]["frames_cov"] is None
    assert rows["WAN"]["frames_total"] == 0 and rows["WAN"]["frames_cov"] is None


def test_pms_export_headers_match_the_earlier_files(spark, config, handbuilt, tmp_path) -> None:
    from iotlake import pipeline

    pipeline.build(
        spark, config, ["handbuilt"], only=VOLUME_MODELS, interval_s=INTERVAL, alignment="device_first"
    )
    report = pipeline.export_volumes(spark, config, "handbuilt", "passive", tmp_path)
    # Headers as the reference gives them (passive-mode-study §3.4, §4.1).
    interval_header = "Device,StartTime,Frames,Bytes,TxFrames,TxBytes,RxFrames,RxBytes"
    for suffix in ("", "-LAN", "-WAN"):
        path = tmp_path / f"lab-capture1-split-plug{suffix}-stats.csv"
        lines = path.read_text().splitlines()
        assert lines[0] == interval_header
        assert lines[1].startswith("plug (lab-1),0,")
    stats = list(csv.reader((tmp_path / "overall-stats.csv").open()))
    assert len(stats[0]) == 37 and stats[0][:3] == ["Device", "PacketAvg", "PacketCoV"]
    assert stats[0][-1] == "WanRxByteCoV"
    dist = list(csv.reader((tmp_path / "overall-distribution.csv").open()))
    assert len(dist[0]) == 35 and dist[0][-2:] == ["WanRxByteTotal", "WanRxBytePct"]
    assert {row[0] for row in dist[1:]} == {"plug (lab)", "cam (lab)"}
    assert report.devices == 2 and report.files == 2 * 3 + 2  # two devices × ALL/LAN/WAN, two overall files
