"""Endpoint names, classes, traffic and TLS certificates on a hand-built capture whose every frame is known.

One plug (vendor Acme; the site's `endpoint_rules` make acme.example first party and cdn.example support)
and one hub. The capture holds, each at a known time: an AAAA answer, a CNAME chain, a DNS answer used after
its TTL, an SNI without DNS, a TLS 1.2 wildcard certificate against a matching and a non-matching SNI, a
unicast to the hub, an mDNS multicast and a broadcast. Expected values come from the frames written here,
never from iotlake.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from tests.conftest import require_tools

DATASET, SITE = "handbuilt_endpoints", "lab"
T0 = 1_700_000_000
PLUG, HUB, GW = "02:00:00:00:00:21", "02:00:00:00:00:24", "02:00:00:00:00:01"
PLUG4, HUB4, GW4 = "192.168.1.21", "192.168.1.24", "192.168.1.1"
PLUG6 = "2001:db8:1::21"  # the plug's global IPv6 address
V6_SERVER, CNAME_SERVER, STALE_SERVER = "2001:db8::10", "203.0.113.20", "203.0.113.30"
SNI_SERVER, CERT_SERVER = "198.51.100.40", "198.51.100.50"
MDNS4, BROADCAST4 = "224.0.0.251", "255.255.255.255"
MDNS_MAC, BROADCAST_MAC = "01:00:5e:00:00:fb", "ff:ff:ff:ff:ff:ff"
STALE_TTL, STALE_AFTER = 10, 60  # the answer's TTL, and when (s after the answer) the plug first connects
SITE_YAML = f"""\
gateway_ips: [{GW4}]
endpoint_rules:
  first_party:
    Acme:
      domains: [acme.example]
  support:
    domains: [cdn.example]
"""


# --------------------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nic:
    """One end of a frame as it is on the wire: the MAC (the gateway's for a remote host) and the address."""

    mac: str
    ip: str


PLUG_V4, PLUG_V6, HUB_V4, GW_V4 = Nic(PLUG, PLUG4), Nic(PLUG, PLUG6), Nic(HUB, HUB4), Nic(GW, GW4)


def remote(ip: str) -> Nic:
    return Nic(GW, ip)  # reached through the gateway


def _l3(src: Nic, dst: Nic) -> Packet:
    layer = IPv6(src=src.ip, dst=dst.ip) if ":" in src.ip else IP(src=src.ip, dst=dst.ip)
    return Ether(src=src.mac, dst=dst.mac) / layer


class Capture:
    """Frames in time order, each stamped T0 + its second."""

    def __init__(self) -> None:
        self.packets: list[Packet] = []

    def add(self, second: float, pkt: Packet) -> float:
        pkt.time = T0 + second
        self.packets.append(pkt)
        return second

    def udp(
        self, second: float, src: Nic, dst: Nic, sport: int, dport: int, payload: Packet | bytes
    ) -> float:
        return self.add(second, _l3(src, dst) / UDP(sport=sport, dport=dport) / payload)

    def dns(self, second: float, qname: str, qtype: str, answers: list[Packet], txid: int) -> float:
        """A query from the plug to the gateway's resolver and its answer 20 ms later."""
        question = DNSQR(qname=qname, qtype=qtype)
        self.udp(second, PLUG_V4, GW_V4, 40000 + txid, 53, DNS(id=txid, rd=1, qd=question))
        reply = DNS(id=txid, qr=1, rd=1, ra=1, qd=question, an=answers)
        return self.udp(second + 0.02, GW_V4, PLUG_V4, 53, 40000 + txid, reply)

    def tcp(
        self,
        second: float,
        client: Nic,
        server: Nic,
        sport: int,
        dport: int,
        payloads: list[tuple[bool, bytes]],
    ) -> float:
        """Handshake, then each (from_client, payload) as one segment ACKed by the other side, 5 ms apart."""
        seq = {True: 1000, False: 5000}
        t = second

        def segment(from_client: bool, flags: str, payload: bytes = b"") -> None:
            nonlocal t
            src, dst = (client, server) if from_client else (server, client)
            ports = (sport, dport) if from_client else (dport, sport)
            ack = 0 if flags == "S" else seq[not from_client]
            layer = TCP(
                sport=ports[0], dport=ports[1], flags=flags, seq=seq[from_client], ack=ack, window=64240
            )
            self.add(t, _l3(src, dst) / layer / Raw(payload) if payload else _l3(src, dst) / layer)
            seq[from_client] += len(payload) + (1 if "S" in flags else 0)
            t += 0.005

        segment(True, "S")
        segment(False, "SA")
        segment(True, "A")
        for from_client, payload in payloads:
            segment(from_client, "PA", payload)
            segment(not from_client, "A")
        return t


# TLS records, built by hand like the demo's (capture/demo.py), but TLS 1.2 so the certificate is in clear.
def _ext(ext_type: int, body: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(body)) + body


def _handshake(hs_type: int, body: bytes) -> bytes:
    return bytes([hs_type]) + len(body).to_bytes(3, "big") + body


def _record(messages: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", 0x16, version, len(messages)) + messages


def client_hello(sni: str) -> bytes:
    """A TLS 1.2 ClientHello with server_name, groups, point formats and signature algorithms."""
    name = sni.encode()
    exts = b"".join(
        (
            _ext(0x0000, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name),
            _ext(0x000A, struct.pack("!HHH", 4, 0x001D, 0x0017)),
            _ext(0x000B, b"\x01\x00"),
            _ext(0x000D, struct.pack("!HHH", 4, 0x0403, 0x0401)),
        )
    )
    body = (
        struct.pack("!H", 0x0303)
        + bytes(range(32))
        + b"\x00"  # no session id
        + struct.pack("!HHH", 4, 0xC02B, 0xC02F)
        + b"\x01\x00"
        + struct.pack("!H", len(exts))
        + exts
    )
    return _record(_handshake(0x01, body), 0x0301)


def server_flight(der: bytes) -> bytes:
    """ServerHello (TLS 1.2), Certificate (the one leaf) and ServerHelloDone in one record."""
    hello = struct.pack("!H", 0x0303) + bytes(range(32, 64)) + b"\x00" + struct.pack("!HB", 0xC02B, 0)
    chain = len(der).to_bytes(3, "big") + der
    certificate = len(chain).to_bytes(3, "big") + chain
    return _record(_handshake(0x02, hello) + _handshake(0x0B, certificate) + _handshake(0x0E, b""))


@functools.cache
def wildcard_certificate() -> bytes:
    """A self-signed leaf for *.acme.example (CN and the only SAN), DER."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "*.acme.example"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Devices"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Acme Test CA")]))
        .public_key(key.public_key())
        .serial_number(42)
        .not_valid_before(datetime(2023, 1, 1))
        .not_valid_after(datetime(2025, 1, 1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.acme.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@functools.cache
def capture() -> tuple[Packet, ...]:
    cap = Capture()
    # 6. plug ↔ hub unicast
    cap.udp(0.0, PLUG_V4, HUB_V4, 6000, 6000, Raw(b"p" * 20))
    cap.udp(0.01, HUB_V4, PLUG_V4, 6000, 6000, Raw(b"h" * 30))
    # 7. mDNS multicast, 8. broadcast
    cap.udp(
        1.0, PLUG_V4, Nic(MDNS_MAC, MDNS4), 5353, 5353, DNS(qd=DNSQR(qname="_acme._tcp.local", qtype="PTR"))
    )
    cap.udp(2.0, PLUG_V4, Nic(BROADCAST_MAC, BROADCAST4), 5000, 5000, Raw(b"b" * 16))
    # 1. AAAA answer, then TCP over IPv6 to the address
    t = cap.dns(
        10.0,
        "v6.acme.example",
        "AAAA",
        [DNSRR(rrname="v6.acme.example", type="AAAA", ttl=300, rdata=V6_SERVER)],
        1,
    )
    cap.tcp(t + 0.01, PLUG_V6, remote(V6_SERVER), 50001, 7000, [(True, b"q" * 40), (False, b"r" * 120)])
    # 2. CNAME chain: the address answers the asked name through edge.cdn.example
    chain = [
        DNSRR(rrname="api.acme.example", type="CNAME", ttl=300, rdata="edge.cdn.example"),
        DNSRR(rrname="edge.cdn.example", type="A", ttl=300, rdata=CNAME_SERVER),
    ]
    t = cap.dns(20.0, "api.acme.example", "A", chain, 2)
    cap.tcp(
        t + 0.01,
        PLUG_V4,
        remote(CNAME_SERVER),
        50002,
        7000,
        [(True, b"c" * 60), (False, b"d" * 200), (True, b"e" * 10)],
    )
    # 3. an answer with a 10 s TTL; the first packet to its address 60 s after it
    stale = [DNSRR(rrname="old.acme.example", type="A", ttl=STALE_TTL, rdata=STALE_SERVER)]
    t = cap.dns(30.0, "old.acme.example", "A", stale, 3)
    cap.tcp(t + STALE_AFTER, PLUG_V4, remote(STALE_SERVER), 50003, 7000, [(True, b"o" * 25)])
    # 4. SNI without DNS
    cap.tcp(100.0, PLUG_V4, remote(SNI_SERVER), 50004, 443, [(True, client_hello("sni.other.example"))])
    # 5. a TLS 1.2 wildcard certificate, against a matching SNI, then against a name outside the wildcard
    for n, (second, sni) in enumerate(((110.0, "a.acme.example"), (120.0, "badacme.example"))):
        flight = [(True, client_hello(sni)), (False, server_flight(wildcard_certificate()))]
        cap.tcp(second, PLUG_V4, remote(CERT_SERVER), 50005 + n, 443, flight)
    return tuple(cap.packets)


def written_traffic(device_mac: str, ip: str) -> tuple[int, ...]:
    """(packets, bytes, tx_packets, tx_bytes, rx_packets, rx_bytes) of one device with one address, as written."""
    tx, rx = [], []
    for pkt in capture():
        l3 = pkt[IP] if IP in pkt else pkt[IPv6]
        if pkt[Ether].src == device_mac and l3.dst == ip:
            tx.append(len(bytes(pkt)))
        elif pkt[Ether].dst == device_mac and l3.src == ip:
            rx.append(len(bytes(pkt)))
    return (len(tx) + len(rx), sum(tx) + sum(rx), len(tx), sum(tx), len(rx), sum(rx))


# --------------------------------------------------------------------------------------------------------
# The lake
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handbuilt(spark, config, tmp_path_factory) -> Path:
    """Ingest, build, enrich (owners offline: the RDAP probe is stubbed out) and rebuild the endpoint model."""
    require_tools("tshark")
    from iotlake import pipeline
    from iotlake.enrich import owners

    folder = tmp_path_factory.mktemp("handbuilt_endpoints")
    wrpcap(str(folder / "capture1.pcap"), list(capture()))
    (folder / "macs.csv").write_text(f"device,mac,vendor\nplug,{PLUG},Acme\nhub,{HUB},Hubco\n")
    (folder / "site.yaml").write_text(SITE_YAML)
    plans = pipeline.plan_files(
        config, DATASET, SITE, [folder / "capture1.pcap"], folder / "macs.csv", folder / "site.yaml"
    )
    pipeline.ingest(spark, config, DATASET, plans, progress=False)
    pipeline.build(spark, config, [DATASET], only=["device_packets", "dns_names", "endpoint_usage"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(owners, "rdap_reachable", lambda *args, **kwargs: False)
        pipeline.enrich(spark, config, [DATASET])
    pipeline.build(spark, config, [DATASET], only=["endpoint_usage"])
    return folder


def endpoints(spark, device: str = "plug") -> dict[str, dict]:
    rows = (
        spark.table("iotlake.endpoint_usage")
        .where(f"dataset = '{DATASET}' AND profile = 'all' AND device = '{device}'")
        .collect()
    )
    assert len({r["remote_ip"] for r in rows}) == len(rows), "one row per address"
    return {r["remote_ip"]: r.asDict() for r in rows}


def test_every_address_of_the_plug_has_its_name_and_class(spark, handbuilt) -> None:
    got = {ip: (r["name"], r["name_source"], r["class"]) for ip, r in endpoints(spark).items()}
    assert got == {
        GW4: (None, None, "Local (gateway)"),  # the DNS resolver
        V6_SERVER: ("v6.acme.example", "dns", "First"),
        CNAME_SERVER: ("api.acme.example", "dns", "First"),  # the asked name, not edge.cdn.example (Support)
        STALE_SERVER: ("old.acme.example", "dns_stale", "First"),
        SNI_SERVER: ("sni.other.example", "sni", "Third"),
        CERT_SERVER: got[CERT_SERVER],  # two SNIs; which one names the address is not this test's business
        HUB4: (None, None, "Local (hub)"),
        MDNS4: (None, None, "Local Multicast"),
        BROADCAST4: (None, None, "Local Broadcast"),
    }
    assert endpoints(spark)[CERT_SERVER]["names"] == ["a.acme.example", "badacme.example"]


def test_rules_and_scopes_behind_the_classes(spark, handbuilt) -> None:
    rows = endpoints(spark)
    assert rows[CNAME_SERVER]["class_rule"] == "first domain acme.example"
    assert rows[STALE_SERVER]["class_rule"] == "first domain acme.example"
    assert rows[SNI_SERVER]["class_rule"] == "no rule matched"
    assert {ip for ip, r in rows.items() if r["scope"] == "WAN"} == {
        V6_SERVER,
        CNAME_SERVER,
        STALE_SERVER,
        SNI_SERVER,
        CERT_SERVER,
    }
    assert rows[HUB4]["peer_device"] == "hub"
    assert endpoints(spark, "hub")[PLUG4]["class"] == "Local (plug)"


def test_the_stale_answer_was_outside_its_ttl_at_the_first_packet(spark, handbuilt) -> None:
    answer = (
        spark.table("iotlake.dns_names").where(f"dataset = '{DATASET}' AND ip = '{STALE_SERVER}'").collect()
    )
    assert [(r["name"], r["source"], r["ttl"]) for r in answer] == [("old.acme.example", "dns", STALE_TTL)]
    first = endpoints(spark)[STALE_SERVER]["first_seen"]
    assert (first - answer[0]["valid_from"]).total_seconds() == pytest.approx(STALE_AFTER, abs=0.1)
    assert first > answer[0]["valid_until"]


def test_cname_chain_is_kept_with_the_asked_name(spark, handbuilt) -> None:
    rows = (
        spark.table("iotlake.dns_names").where(f"dataset = '{DATASET}' AND ip = '{CNAME_SERVER}'").collect()
    )
    assert [(r["name"], r["source"], list(r["cnames"])) for r in rows] == [
        ("api.acme.example", "dns", ["edge.cdn.example"])
    ]


@pytest.mark.parametrize("ip", [V6_SERVER, CNAME_SERVER, HUB4])
def test_traffic_counts_equal_the_written_frames(spark, handbuilt, ip) -> None:
    row = endpoints(spark)[ip]
    metrics = ("packets", "bytes", "tx_packets", "tx_bytes", "rx_packets", "rx_bytes")
    assert tuple(row[m] for m in metrics) == written_traffic(PLUG, ip)


def test_traffic_counts_by_hand() -> None:
    # the written frames themselves: handshake (3) + 2 segments each ACKed (4); 3 + 3 × 2 with the CNAME flow
    assert written_traffic(PLUG, V6_SERVER)[:5:2] == (7, 4, 3)
    assert written_traffic(PLUG, CNAME_SERVER)[:5:2] == (9, 5, 4)
    assert written_traffic(PLUG, HUB4)[:5:2] == (2, 1, 1)


def test_wildcard_certificate_matches_on_label_boundaries(spark, handbuilt) -> None:
    rows = spark.table("iotlake.certificates").where(f"dataset = '{DATASET}'").collect()
    assert {(r["server_ip"], r["sni"]): r["sni_matches"] for r in rows} == {
        (CERT_SERVER, "a.acme.example"): True,
        (CERT_SERVER, "badacme.example"): False,
    }
    for r in rows:
        assert (r["visible"], r["tls_version"], r["handshakes"]) == (True, "TLS <= 1.2", 1)
        assert (r["subject_cn"], list(r["san_dns"]), r["parse_error"]) == (
            "*.acme.example",
            ["*.acme.example"],
            None,
        )
