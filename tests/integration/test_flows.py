"""Flows, flow patterns and flow entropy on a hand-built capture whose flows are known by construction.

The plug (a) keeps a UDP heartbeat to a cloud address every 60 s (each its own flow: the UDP idle timeout is
30 s here), (b) opens two TCP connections on the same ports, closed by FIN, (c) sends a burst of three UDP
packets to another address with gaps under the timeout (one flow), and (d) talks to the hub on the LAN.
Expected values are counted from the packets the test writes, never from iotlake.
"""

from __future__ import annotations

import math

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from tests.conftest import require_tools

T0 = 1_700_000_000
PLUG, HUB, GW = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:fe"
PLUG4, HUB4, GW4 = "192.168.1.10", "192.168.1.20", "192.168.1.1"
BEAT4, API4, BURST4 = "52.1.2.3", "52.9.9.9", "198.51.100.7"
HEARTBEATS = 8
UDP_IDLE_S = 30


def _udp(src_mac, dst_mac, src, dst, sport, dport, size):
    return (
        Ether(src=src_mac, dst=dst_mac)
        / IP(src=src, dst=dst)
        / UDP(sport=sport, dport=dport)
        / Raw(b"h" * size)
    )


def _tcp(out: bool, flags: str, payload: bytes = b""):
    ends = ((PLUG, PLUG4, 41000), (GW, API4, 443))
    (smac, sip, sport), (dmac, dip, dport) = ends if out else ends[::-1]
    return (
        Ether(src=smac, dst=dmac)
        / IP(src=sip, dst=dip)
        / TCP(sport=sport, dport=dport, flags=flags)
        / Raw(payload)
    )


def _packets() -> list:
    timed = []
    # (a) heartbeat: 8 request/response pairs, 60 s apart
    for i in range(HEARTBEATS):
        at = 10 + 60 * i
        timed.append((at, _udp(PLUG, GW, PLUG4, BEAT4, 50000, 7000, 20)))
        timed.append((at + 0.2, _udp(GW, PLUG, BEAT4, PLUG4, 7000, 50000, 40)))
    # a DNS answer naming the API address just before the first connection
    timed.append(
        (
            100,
            Ether(src=PLUG, dst=GW)
            / IP(src=PLUG4, dst=GW4)
            / UDP(sport=5555, dport=53)
            / DNS(id=1, qd=DNSQR(qname="api.acme.example")),
        )
    )
    answer = DNS(
        id=1,
        qr=1,
        qd=DNSQR(qname="api.acme.example"),
        an=DNSRR(rrname="api.acme.example", rdata=API4, ttl=600),
    )
    timed.append(
        (100.1, Ether(src=GW, dst=PLUG) / IP(src=GW4, dst=PLUG4) / UDP(sport=53, dport=5555) / answer)
    )
    # (b) two TCP connections on the same four-tuple, 5 s apart (well inside the TCP idle timeout)
    for start in (101, 106):
        timed += [
            (start, _tcp(True, "S")),
            (start + 0.1, _tcp(False, "SA")),
            (start + 0.2, _tcp(True, "A")),
            (start + 0.3, _tcp(True, "PA", b"x" * 100)),
            (start + 0.4, _tcp(False, "PA", b"y" * 300)),
            (start + 0.5, _tcp(True, "FA")),
            (start + 0.6, _tcp(False, "FA")),
            (start + 0.7, _tcp(True, "A")),
        ]
    # (c) a burst of three packets, gaps of 10 s < the UDP timeout: one flow
    timed += [(200 + 10 * i, _udp(PLUG, GW, PLUG4, BURST4, 50001, 9000, 10 * (i + 1))) for i in range(3)]
    # (d) the hub and the plug on the LAN
    timed += [
        (300, _udp(HUB, PLUG, HUB4, PLUG4, 40001, 9999, 50)),
        (300.1, _udp(PLUG, HUB, PLUG4, HUB4, 9999, 40001, 60)),
    ]
    packets = []
    for at, packet in sorted(timed, key=lambda t: t[0]):
        packet.time = T0 + at
        packets.append(packet)
    return packets


@pytest.fixture(scope="module")
def flows(spark, config, tmp_path_factory):
    require_tools("tshark")
    from iotlake import pipeline

    folder = tmp_path_factory.mktemp("flows")
    packets = _packets()
    wrpcap(str(folder / "capture1.pcap"), packets)
    (folder / "macs.csv").write_text(f"device,mac\nplug,{PLUG}\nhub,{HUB}\n")
    (folder / "site.yaml").write_text(f"gateway_ips: [{GW4}]\n")
    plans = pipeline.plan_files(
        config, "flowlab", "lab", [folder / "capture1.pcap"], folder / "macs.csv", folder / "site.yaml"
    )
    pipeline.ingest(spark, config, "flowlab", plans, progress=False)
    settings = config.settings.flows
    previous = settings.udp_idle_s
    settings.udp_idle_s = UDP_IDLE_S
    try:
        pipeline.build(
            spark, config, ["flowlab"], only=pipeline.models_for(config, "flow_patterns", "flow_entropy")
        )
    finally:
        settings.udp_idle_s = previous
    return {
        (r["device"], r["remote_ip"], r["start_ts"].timestamp()): r
        for r in spark.table("iotlake.flows").where("dataset = 'flowlab'").collect()
    }


def _wire(packet) -> int:
    return len(bytes(packet))


def test_each_heartbeat_is_its_own_flow_with_exact_counts(flows) -> None:
    beats = sorted((k, r) for k, r in flows.items() if k[:2] == ("plug", BEAT4))
    assert len(beats) == HEARTBEATS
    request = _wire(_udp(PLUG, GW, PLUG4, BEAT4, 50000, 7000, 20))
    response = _wire(_udp(GW, PLUG, BEAT4, PLUG4, 7000, 50000, 40))
    for i, (key, row) in enumerate(beats):
        assert key[2] == pytest.approx(T0 + 10 + 60 * i)
        assert (row["packets"], row["tx_packets"], row["rx_packets"]) == (2, 1, 1)
        assert (row["tx_bytes"], row["rx_bytes"]) == (request, response)
        assert (row["initiator"], row["transport"], row["remote_port"]) == ("device", "udp", 7000)


def test_two_connections_on_the_same_ports_are_two_named_flows(flows) -> None:
    connections = sorted((k, r) for k, r in flows.items() if k[:2] == ("plug", API4))
    assert [k[2] for k, _ in connections] == [pytest.approx(T0 + 101), pytest.approx(T0 + 106)]
    for _, row in connections:
        assert (row["packets"], row["tx_packets"], row["rx_packets"]) == (8, 5, 3)
        assert row["closed"] and row["server_port"] == 443 and row["initiator"] == "device"
        assert (row["remote_name"], row["remote_name_source"]) == ("api.acme.example", "dns")
        assert row["duration_s"] == pytest.approx(0.7, abs=1e-3)


def test_gaps_under_the_idle_timeout_stay_one_flow(flows) -> None:
    burst = [r for k, r in flows.items() if k[:2] == ("plug", BURST4)]
    assert len(burst) == 1
    assert (burst[0]["packets"], burst[0]["duration_s"]) == (3, pytest.approx(20.0))


def test_heartbeat_pattern_is_periodic_with_period_60(spark, flows) -> None:
    rows = {
        r["remote"]: r
        for r in spark.table("iotlake.flow_patterns")
        .where("dataset = 'flowlab' AND device = 'plug'")
        .collect()
    }
    beat = rows[BEAT4]
    assert (beat["flows"], beat["periodic"]) == (HEARTBEATS, True)
    assert beat["period_s"] == pytest.approx(60.0)
    assert beat["regularity"] == pytest.approx(0.0, abs=1e-6)
    assert beat["period_share"] == pytest.approx(1.0)
    assert rows["api.acme.example"]["periodic"] is False  # two flows are not a period
    assert rows[BURST4]["flows"] == 1 and rows[BURST4]["periodic"] is False


def test_flow_entropy_equals_the_hand_computed_value(spark, flows) -> None:
    """WAN flows of the plug without the gateway: 8 heartbeats, 2 connections, 1 burst."""
    wan = [r for k, r in flows.items() if k[0] == "plug" and r["scope"] == "WAN" and not r["with_gateway"]]
    packets = [2] * HEARTBEATS + [8, 8] + [3]
    assert sorted(r["packets"] for r in wan) == sorted(packets)
    total = sum(packets)
    expected = -sum(p / total * math.log2(p / total) for p in packets) / math.log2(len(packets))
    row = (
        spark.table("iotlake.flow_entropy")
        .where("dataset = 'flowlab' AND device = 'plug' AND scope = 'WAN'")
        .collect()[0]
    )
    assert (row["flows"], row["packets"]) == (len(packets), total)
    assert row["packet_entropy"] == pytest.approx(expected)
    lan = (
        spark.table("iotlake.flow_entropy")
        .where("dataset = 'flowlab' AND device = 'plug' AND scope = 'LAN'")
        .collect()[0]
    )
    assert (lan["flows"], lan["packet_entropy"], lan["byte_entropy"]) == (1, 0.0, 0.0)
