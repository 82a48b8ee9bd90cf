"""Protocol labels, device addresses and the protocol tables on a hand-built capture and on the demo dataset.

Every frame of the hand-built capture carries its expected label, layers and scope, written by hand below; the
demo's per-device protocol counts come from the generator's ground truth. Expected values never come from
iotlake.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_NA, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.layers.ntp import NTPHeader
from scapy.packet import Raw
from scapy.utils import wrpcap

from tests.conftest import require_tools

T0 = 1_700_000_000
DEV, PEER, GW = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:fe"
DEV4_OLD, DEV4_NEW, PEER4, GW4 = "192.168.1.10", "192.168.1.11", "192.168.1.20", "192.168.1.1"
CLOUD4, NTP4, RESOLVER4, ODD4 = "52.1.2.3", "162.159.200.123", "8.8.8.8", "52.9.9.9"
DEV6_LL, DEV6_ULA, PEER6 = "fe80::1", "fd00::10", "fd00::99"
TLS_RECORD = b"\x17\x03\x03\x00\x10" + b"\xaa" * 16  # one TLS application-data record
SSDP = b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n'
MODELS = [
    "device_packets",
    "packet_protocols",
    "device_addresses",
    "protocol_usage",
    "protocol_type_distribution",
    "unique_protocols",
    "protocol_distribution_pms",
]
# Categories as conf/protocol_types.csv states them; labels it lacks are Unknown.
CATEGORY = {
    "https": "Encrypted",
    "secure-mqtt": "Encrypted",
    "mdns": "Discovery",
    "ssdp": "Discovery",
    "ntp": "Management",
    "dns": "Management",
    "dhcp": "Management",
    "tcp:47001": "Unknown",
    "udp:31000": "Unknown",
    "udp:31001": "Unknown",
    "arp": "Non-application",
    "icmp": "Non-application",
    "icmpv6": "Non-application",
}


@dataclass(frozen=True)
class Frame:
    """A frame and what it is, by hand: its label, session layer, scope and the devices it belongs to."""

    second: float
    packet: object
    label: str
    scope: str
    devices: dict[str, str] = field(default_factory=dict)  # device → tx/rx
    session: str | None = None


def eth(src: str, dst: str) -> Ether:
    return Ether(src=src, dst=dst)


def frames() -> list[Frame]:
    dev, peer = "dev", "peer"
    syn, synack, ack, psh = "S", "SA", "A", "PA"
    out = [
        # the DHCP server acknowledges 192.168.1.10 to the device
        Frame(
            0,
            eth(GW, DEV)
            / IP(src=GW4, dst=DEV4_OLD)
            / UDP(sport=67, dport=68)
            / BOOTP(op=2, yiaddr=DEV4_OLD, chaddr=bytes.fromhex(DEV.replace(":", "")) + b"\0" * 10)
            / DHCP(options=[("message-type", "ack"), "end"]),
            "dhcp",
            "LAN",
            {dev: "rx"},
        ),
        Frame(
            1,
            eth(DEV, "ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=DEV, psrc=DEV4_OLD, hwdst=GW, pdst=GW4),
            "arp",
            "LAN",
            {dev: "tx"},
        ),
    ]
    # TLS on 443: every frame of the connection is https, handshake and bare ACKs included
    c = (DEV4_OLD, 40000, CLOUD4, 443)
    for i, (flags, payload, tx) in enumerate(
        [
            (syn, b"", True),
            (synack, b"", False),
            (ack, b"", True),
            (psh, TLS_RECORD, True),
            (psh, TLS_RECORD, False),
            (ack, b"", True),
        ]
    ):
        src, dst = (DEV, GW) if tx else (GW, DEV)
        ip = IP(src=c[0], dst=c[2]) if tx else IP(src=c[2], dst=c[0])
        tcp = TCP(sport=c[1], dport=c[3], flags=flags) if tx else TCP(sport=c[3], dport=c[1], flags=flags)
        out.append(
            Frame(
                10 + i * 0.1,
                eth(src, dst) / ip / tcp / Raw(payload) if payload else eth(src, dst) / ip / tcp,
                "https",
                "WAN",
                {dev: "tx" if tx else "rx"},
                "tls" if payload else None,
            )
        )
    # TLS on 8883: secure-mqtt
    for i, (flags, payload, tx) in enumerate(
        [(syn, b"", True), (synack, b"", False), (psh, TLS_RECORD, True), (psh, TLS_RECORD, False)]
    ):
        src, dst = (DEV, GW) if tx else (GW, DEV)
        ip = IP(src=DEV4_OLD, dst=CLOUD4) if tx else IP(src=CLOUD4, dst=DEV4_OLD)
        tcp = TCP(sport=40001, dport=8883, flags=flags) if tx else TCP(sport=8883, dport=40001, flags=flags)
        pkt = eth(src, dst) / ip / tcp / Raw(payload) if payload else eth(src, dst) / ip / tcp
        out.append(
            Frame(
                20 + i * 0.1,
                pkt,
                "secure-mqtt",
                "WAN",
                {dev: "tx" if tx else "rx"},
                "tls" if payload else None,
            )
        )
    # TCP on an unlisted port where the server (the peer) has the higher port: tcp:47001, not tcp:1234
    for i, (flags, payload, tx) in enumerate(
        [
            (syn, b"", True),
            (synack, b"", False),
            (ack, b"", True),
            (psh, b"\x00" * 12, True),
            (psh, b"\x00" * 20, False),
        ]
    ):
        src, dst = (DEV, PEER) if tx else (PEER, DEV)
        ip = IP(src=DEV4_OLD, dst=PEER4) if tx else IP(src=PEER4, dst=DEV4_OLD)
        tcp = TCP(sport=1234, dport=47001, flags=flags) if tx else TCP(sport=47001, dport=1234, flags=flags)
        pkt = eth(src, dst) / ip / tcp / Raw(payload) if payload else eth(src, dst) / ip / tcp
        out.append(
            Frame(
                30 + i * 0.1,
                pkt,
                "tcp:47001",
                "LAN",
                {dev: "tx", peer: "rx"} if tx else {dev: "rx", peer: "tx"},
            )
        )
    out += [
        # mDNS and SSDP to their groups
        Frame(
            40,
            eth(DEV, "01:00:5e:00:00:fb")
            / IP(src=DEV4_OLD, dst="224.0.0.251")
            / UDP(sport=5353, dport=5353)
            / DNS(qd=DNSQR(qname="_hap._tcp.local", qtype="PTR")),
            "mdns",
            "LAN",
            {dev: "tx"},
        ),
        Frame(
            41,
            eth(DEV, "01:00:5e:7f:ff:fa")
            / IP(src=DEV4_OLD, dst="239.255.255.250")
            / UDP(sport=40002, dport=1900)
            / Raw(SSDP),
            "ssdp",
            "LAN",
            {dev: "tx"},
        ),
        # the lease changes: 192.168.1.11 from now on
        Frame(
            100,
            eth(GW, DEV)
            / IP(src=GW4, dst=DEV4_NEW)
            / UDP(sport=67, dport=68)
            / BOOTP(op=2, yiaddr=DEV4_NEW, chaddr=bytes.fromhex(DEV.replace(":", "")) + b"\0" * 10)
            / DHCP(options=[("message-type", "ack"), "end"]),
            "dhcp",
            "LAN",
            {dev: "rx"},
        ),
        Frame(
            110,
            eth(DEV, GW) / IP(src=DEV4_NEW, dst=NTP4) / UDP(sport=40123, dport=123) / NTPHeader(mode=3),
            "ntp",
            "WAN",
            {dev: "tx"},
        ),
        Frame(
            110.1,
            eth(GW, DEV) / IP(src=NTP4, dst=DEV4_NEW) / UDP(sport=123, dport=40123) / NTPHeader(mode=4),
            "ntp",
            "WAN",
            {dev: "rx"},
        ),
        Frame(
            111,
            eth(DEV, GW)
            / IP(src=DEV4_NEW, dst=RESOLVER4)
            / UDP(sport=40124, dport=53)
            / DNS(rd=1, qd=DNSQR(qname="example.com")),
            "dns",
            "WAN",
            {dev: "tx"},
        ),
        Frame(
            111.1,
            eth(GW, DEV)
            / IP(src=RESOLVER4, dst=DEV4_NEW)
            / UDP(sport=53, dport=40124)
            / DNS(id=0, qr=1, qd=DNSQR(qname="example.com")),
            "dns",
            "WAN",
            {dev: "rx"},
        ),
        Frame(112, eth(DEV, GW) / IP(src=DEV4_NEW, dst=CLOUD4) / ICMP(), "icmp", "WAN", {dev: "tx"}),
    ]
    # an unknown UDP protocol, both directions: the lower port names it
    for i, tx in enumerate([True, False, True, False]):
        src, dst = (DEV, GW) if tx else (GW, DEV)
        ip = IP(src=DEV4_NEW, dst=ODD4) if tx else IP(src=ODD4, dst=DEV4_NEW)
        udp = UDP(sport=40500, dport=31000) if tx else UDP(sport=31000, dport=40500)
        out.append(
            Frame(
                120 + i,
                eth(src, dst) / ip / udp / Raw(b"\x01" * (8 + i)),
                "udp:31000",
                "WAN",
                {dev: "tx" if tx else "rx"},
            )
        )
    out += [
        # two IPv6 addresses: link-local (advertising the ULA) and the ULA itself
        Frame(130, eth(DEV, "33:33:00:00:00:01") / IPv6(src=DEV6_LL, dst="ff02::1", hlim=255)
              / ICMPv6ND_NA(tgt=DEV6_ULA, R=0, S=0, O=1), "icmpv6", "LAN", {dev: "tx"}),
        Frame(131, eth(DEV, "33:33:00:00:00:fb") / IPv6(src=DEV6_LL, dst="ff02::fb") / UDP(sport=5353, dport=5353)
              / DNS(qd=DNSQR(qname="_hap._tcp.local", qtype="PTR")), "mdns", "LAN", {dev: "tx"}),
        Frame(132, eth(DEV, PEER) / IPv6(src=DEV6_ULA, dst=PEER6) / UDP(sport=40600, dport=31001) / Raw(b"\x02" * 9),
              "udp:31001", "LAN", {dev: "tx", peer: "rx"}),
    ]  # fmt: skip
    return out


def build_capture(directory: Path) -> tuple[Path, Path]:
    packets = []
    for f in frames():
        f.packet.time = T0 + f.second
        packets.append(f.packet)
    capture = directory / "protocols.pcap"
    wrpcap(str(capture), packets)
    macs = directory / "macs.csv"
    macs.write_text(f"device,mac\ndev,{DEV}\npeer,{PEER}\n")
    return capture, macs


@pytest.fixture(scope="module")
def protocol_lake(spark, config, tmp_path_factory):
    require_tools("tshark")
    from iotlake import pipeline

    directory = tmp_path_factory.mktemp("protocols")
    capture, macs = build_capture(directory)
    plans = pipeline.plan_files(config, "protos", "home", [capture], macs, None)
    pipeline.ingest(spark, config, "protos", plans, progress=False)
    pipeline.build(spark, config, ["protos"], only=MODELS)
    return "protos"


def test_every_frame_has_its_hand_label_and_layers(spark, protocol_lake) -> None:
    rows = {
        r["frame_no"]: r
        for r in spark.table("iotlake.packet_protocols").where(F.col("dataset") == protocol_lake).collect()
    }
    expected = frames()
    assert len(rows) == len(expected)
    for number, frame in enumerate(expected, start=1):
        row = rows[number]
        assert row["protocol"] == frame.label, (number, row)
        application = frame.label if CATEGORY[frame.label] != "Non-application" else None
        assert row["application"] == application, (number, row)
        assert row["session"] == frame.session, (number, row)
        ip_version = 6 if IPv6 in frame.packet else 4 if IP in frame.packet else None
        assert row["network"] == {4: "ip", 6: "ipv6", None: None}[ip_version]
        transport = "tcp" if TCP in frame.packet else "udp" if UDP in frame.packet else None
        assert row["transport"] == transport, (number, row)


def test_server_port_rules(spark, protocol_lake) -> None:
    labels = spark.table("iotlake.packet_protocols").where(F.col("dataset") == protocol_lake)
    rules = {
        (r["application"], r["server_port"], r["server_port_rule"])
        for r in labels.where(
            F.col("application").isin("tcp:47001", "udp:31000", "udp:31001", "https")
        ).collect()
    }
    assert rules == {
        ("tcp:47001", 47001, "handshake"),  # the SYN's destination, though it is the higher port
        ("https", 443, "handshake"),
        ("udp:31000", 31000, "lower_port"),
        ("udp:31001", 31001, "lower_port"),
    }


def expected_usage() -> Counter:
    counts: Counter = Counter()
    for frame in frames():
        for device, direction in frame.devices.items():
            for scope in ("ALL", frame.scope):
                counts[(device, scope, frame.label, direction)] += 1
    return counts


def test_protocol_usage_counts_each_packet_once_per_scope(spark, protocol_lake) -> None:
    usage = spark.table("iotlake.protocol_usage").where(
        (F.col("dataset") == protocol_lake) & (F.col("profile") == "all")
    )
    actual: Counter = Counter()
    for r in usage.collect():
        actual[(r["device"], r["scope"], r["protocol"], "tx")] += r["tx_packets"]
        actual[(r["device"], r["scope"], r["protocol"], "rx")] += r["rx_packets"]
        assert r["tx_packets"] + r["rx_packets"] == r["packets"]
        assert r["category"] == CATEGORY[r["protocol"]], r
    assert +actual == expected_usage()
    # shares of one device, profile and scope add up to 1
    shares = usage.groupBy("device", "scope").agg(F.sum("packet_share").alias("s")).collect()
    assert all(abs(r["s"] - 1) < 1e-9 for r in shares)


def test_protocol_type_distribution_keeps_unknown_and_non_application_visible(spark, protocol_lake) -> None:
    dist = spark.table("iotlake.protocol_type_distribution").where(
        (F.col("dataset") == protocol_lake) & (F.col("profile") == "all") & (F.col("device") == "dev")
        & (F.col("scope") == "ALL") & (F.col("capture") == "*")
    )  # fmt: skip
    actual = {r["category"]: (r["packets"], r["packet_share"]) for r in dist.collect()}
    packets = Counter(CATEGORY[f.label] for f in frames() if "dev" in f.devices)
    application = sum(n for c, n in packets.items() if c != "Non-application")
    expected = {
        c: (packets.get(c, 0), None if c == "Non-application" else packets.get(c, 0) / application)
        for c in ("Discovery", "Management", "Encrypted", "Unencrypted", "Unknown", "Non-application")
    }
    assert actual.keys() == expected.keys()
    for category, (count, share) in expected.items():
        assert actual[category][0] == count, category
        assert (
            actual[category][1] == pytest.approx(share) if share is not None else actual[category][1] is None
        )


def test_unique_protocols_per_layer(spark, protocol_lake) -> None:
    row = (
        spark.table("iotlake.unique_protocols")
        .where(
            (F.col("dataset") == protocol_lake)
            & (F.col("device") == "dev")
            & (F.col("profile") == "all")
            & (F.col("scope") == "ALL")
            & (F.col("capture") == "*")
        )
        .collect()
    )
    assert len(row) == 1
    assert row[0]["network"] == ["ip", "ipv6"]
    assert row[0]["transport"] == ["tcp", "udp"]
    assert row[0]["session"] == ["tls"]
    labels = {f.label for f in frames() if "dev" in f.devices}
    assert row[0]["application"] == sorted(x for x in labels if CATEGORY[x] != "Non-application")
    assert row[0]["other"] == sorted(x for x in labels if CATEGORY[x] == "Non-application")


def test_device_addresses_follow_the_dhcp_change_and_keep_both_ipv6(spark, protocol_lake) -> None:
    rows = (
        spark.table("iotlake.device_addresses")
        .where((F.col("dataset") == protocol_lake) & (F.col("device") == "dev"))
        .collect()
    )

    def at(second: float) -> datetime:
        return datetime.fromtimestamp(T0 + second, UTC).replace(tzinfo=None)

    spans = {r["ip"]: (r["valid_from"], r["valid_until"], set(r["sources"])) for r in rows}
    assert set(spans) == {DEV4_OLD, DEV4_NEW, DEV6_LL, DEV6_ULA}
    assert spans[DEV4_OLD] == (at(0), at(100), {"dhcp_ack", "arp", "frame"})
    assert spans[DEV4_NEW] == (at(100), None, {"dhcp_ack", "frame"})
    assert spans[DEV6_LL][0] == at(130) and spans[DEV6_LL][1] is None
    assert spans[DEV6_ULA][0] == at(130) and spans[DEV6_ULA][2] == {"nd_advertisement", "frame"}
    peer = spark.table("iotlake.device_addresses").where(
        (F.col("dataset") == protocol_lake) & (F.col("device") == "peer")
    )
    assert {r["ip"] for r in peer.collect()} == {PEER4}


def test_unknown_labels_are_listed(spark, config, protocol_lake) -> None:
    from iotlake import protocols

    found = protocols.unknown_labels(spark, config.lake_root, [protocol_lake])
    assert {(u.protocol, u.packets) for u in found} == {
        ("tcp:47001", 5 * 2),  # counted for both devices
        ("udp:31000", 4),
        ("udp:31001", 1 * 2),
    }


def test_pms_distribution_matches_the_category_counts(spark, protocol_lake) -> None:
    row = (
        spark.table("iotlake.protocol_distribution_pms")
        .where(
            (F.col("dataset") == protocol_lake)
            & (F.col("device") == "dev")
            & (F.col("profile") == "all")
            & (F.col("scope") == "ALL")
            & (F.col("capture") == "*")
        )
        .collect()[0]
    )
    packets = Counter(CATEGORY[f.label] for f in frames() if "dev" in f.devices)
    total = sum(n for c, n in packets.items() if c != "Non-application")
    assert row["mac"] == DEV
    assert row["total_count"] == total
    assert row["encrypted_count"] == packets["Encrypted"]
    assert row["unknown_count"] == packets["Unknown"]
    assert row["nonencrypted_pct"] == 0
    assert row["discovery_pct"] == pytest.approx(packets["Discovery"] / total)


# The demo generator names TLS on 8883 `tcp:8883`, the earlier per-capture name; the taxonomy (reference §5)
# renamed it secure-mqtt.
DEMO_RENAMES = {"tcp:8883": "secure-mqtt"}


def test_demo_protocol_counts_equal_ground_truth(spark, config, demo_lake, truth) -> None:
    from iotlake import protocols

    usage = (
        spark.table("iotlake.protocol_usage")
        .where((F.col("dataset") == "demo") & (F.col("profile") == "all") & (F.col("scope") == "ALL"))
        .groupBy("site", "capture", "device", "protocol")
        .agg(F.sum("packets").alias("packets"))
        .collect()
    )
    actual = {(r["site"], r["capture"], r["device"], r["protocol"]): r["packets"] for r in usage}
    expected = {
        (site, capture, device, DEMO_RENAMES.get(label, label)): count
        for site, s in truth["sites"].items()
        for capture, c in s["captures"].items()
        for device, d in c["devices"].items()
        for label, count in d["protocols"].items()
    }
    assert actual == expected
    assert protocols.unknown_labels(spark, config.lake_root, ["demo"]) == []
