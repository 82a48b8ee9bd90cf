"""Deterministic synthetic smart-home captures (scapy, fixed seed) with a ground-truth oracle for tests and demos."""

from __future__ import annotations

import csv
import ipaddress
import json
import random
import struct
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from scapy.contrib.coap import CoAP
from scapy.data import DLT_EN10MB
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dhcp6 import (
    DUID_LL,
    DHCP6_InfoRequest,
    DHCP6_Reply,
    DHCP6OptClientId,
    DHCP6OptDNSServers,
    DHCP6OptElapsedTime,
    DHCP6OptOptReq,
    DHCP6OptServerId,
)
from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRRSRV
from scapy.layers.igmp import IGMP
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether
from scapy.layers.ntp import NTPHeader
from scapy.packet import Packet, Raw
from scapy.utils import PcapWriter

INTERVAL_S = 3600
US = 1_000_000  # timestamps are integer microseconds since the epoch throughout
MS = 1_000
MSS = 1400
NTP_EPOCH_OFFSET = 2_208_988_800
BROADCAST = "ff:ff:ff:ff:ff:ff"
SCOPES = ("ALL", "LAN", "WAN")
PROFILES = ("all", "passive")
METRICS = ("frames", "bytes", "tx_frames", "tx_bytes", "rx_frames", "rx_bytes")

_LOCAL_NETS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "255.255.255.255/32",
        "fe80::/10",
        "fc00::/7",
        "ff00::/8",
    )
)
_UDP_LABELS = {
    53: "dns",
    67: "dhcp",
    68: "dhcp",
    123: "ntp",
    546: "dhcpv6",
    547: "dhcpv6",
    1900: "ssdp",
    5353: "mdns",
    5355: "llmnr",
    5683: "coap",
}
_TCP_LABELS = {53: "dns", 80: "http", 443: "https", 9999: "tplink-smarthome"}
_PASSIVE_DROPPED_LABELS = {"dhcp", "dhcpv6", "icmp", "icmpv6", "igmp", "dns"}


# --------------------------------------------------------------------------------------------------------
# The simulated world: device kinds, cloud names, sites and captures
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """How one kind of device looks and behaves."""

    vendor: str
    oui: str
    host: int  # last octet of its IPv4 address
    hostname: str  # DHCP option 12
    vendor_class: str  # DHCP option 60
    cloud: str  # DNS name of its persistent cloud connection
    heartbeat_s: int
    hb_sizes: tuple[int, int]  # TLS application-data bytes sent / received per heartbeat
    cloud_port: int = 443
    ipv6: tuple[str, ...] = ()  # which IPv6 addresses it has: "ll", "ula", "gua"
    cloud_v6: bool = False  # heartbeat over IPv6 (needs "gua")
    mdns: str | None = None  # DNS-SD service type it announces
    ssdp: bool = False
    ntp_name: str | None = "pool.ntp.example"  # None: a hard-coded NTP server IP


KINDS: dict[str, _Kind] = {
    "plug": _Kind("TP-Link", "50:c7:bf", 21, "HS110", "udhcp 1.19.4", "devs.tplinkcloud.example", 60,
                  (117, 85), ntp_name=None),
    "camera": _Kind("Wyze", "2c:aa:8e", 22, "WYZEC3", "dhcpcd-6.8.2:Linux-3.10.14", "api.wyzecam.example",
                    30, (149, 101)),
    "speaker": _Kind("Amazon", "44:65:0d", 23, "amazon-echo", "android-dhcp-7.1.2",
                     "avs-alexa-na.amazon.example", 120, (181, 133), ipv6=("ll", "ula", "gua"),
                     cloud_v6=True, mdns="_amzn-wplay._tcp"),
    "hub": _Kind("Samsung", "d0:52:a8", 24, "SmartThings-Hub", "udhcp 1.30.1", "api.smartthings.example",
                 90, (133, 69), ipv6=("ll", "ula"), mdns="_smartthings._tcp", ssdp=True),
    "bulb": _Kind("Philips", "a8:bb:50", 25, "wiz_light", "ESP32 dhcpc", "eu.wizconnected.example", 180,
                  (96, 64), cloud_port=8883, ipv6=("ll", "ula")),
    "tv": _Kind("Samsung", "8c:79:f5", 26, "Samsung-TV", "Tizen dhcpc", "api.samsungtv.example", 300,
                (245, 181), ipv6=("ll",), mdns="_airplay._tcp", ssdp=True),
}  # fmt: skip


@dataclass(frozen=True)
class _CloudName:
    """What the gateway's resolver answers for one name: a CNAME chain, then the addresses."""

    cnames: tuple[str, ...]
    ipv4: str
    ipv6: str | None = None
    ttl: int = 300


CLOUD: dict[str, _CloudName] = {
    "devs.tplinkcloud.example": _CloudName(("devs-elb.us-east-1.cloud.example",), "52.71.18.204"),
    "api.wyzecam.example": _CloudName(("api.wyzecam.edgekey.example", "e4812.cdn.example"), "34.213.40.17"),
    "kvs.wyze-upload.example": _CloudName((), "13.56.210.33", ttl=60),
    "avs-alexa-na.amazon.example": _CloudName(
        ("avs.edge.amazon.example",), "54.239.22.185", "2600:1f18:631e:2f80:77b5:9d0a:1c33:4e21"
    ),
    "api.smartthings.example": _CloudName(("st-api.elb.example",), "35.170.44.61"),
    "fw.smartthings.example": _CloudName(("fw.cdn.example",), "13.33.88.12"),
    "eu.wizconnected.example": _CloudName(("wiz-mqtt.cloud.example",), "3.120.165.9"),
    "api.samsungtv.example": _CloudName(("tv-edge.cdn.example",), "13.124.19.88"),
    "pool.ntp.example": _CloudName((), "162.159.200.123", ttl=3600),
}
HARDCODED_NTP = "129.6.15.28"
# Party rules of the demo's made-up names (site.yaml `endpoint_rules`), and the class each remote endpoint
# has under them: the vendor's own cloud is First; the NTP pool, and the NTP server the plug reaches by a
# hard-coded address (NIST, by its AS owner in the shipped rules), are Support.
DEMO_FIRST_PARTY = {
    "TP-Link": ["tplinkcloud.example"],
    "Wyze": ["wyzecam.example", "wyze-upload.example"],
    "Amazon": ["amazon.example"],
    "Samsung": ["smartthings.example", "samsungtv.example"],
    "Philips": ["wizconnected.example"],
}
DEMO_SUPPORT = ["ntp.example"]


def _party(vendor: str, name: str | None, ip: str) -> str:
    if ip == HARDCODED_NTP:
        return "Support"
    if name and any(name == d or name.endswith("." + d) for d in DEMO_FIRST_PARTY.get(vendor, [])):
        return "First"
    if name and any(name == d or name.endswith("." + d) for d in DEMO_SUPPORT):
        return "Support"
    return "Third"


@dataclass(frozen=True)
class _CaptureSpec:
    name: str
    start: datetime
    duration_s: int
    # (device, from, to) in seconds after the start: the device is off (silent) in between
    asleep: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class _SiteSpec:
    name: str
    subnet: str  # first three octets of the /24
    ula48: str  # e.g. "fd12:3456:789a"
    gua64: str  # the ISP-delegated /64 (not local)
    kinds: tuple[str, ...]
    captures: tuple[_CaptureSpec, ...]


SITES: tuple[_SiteSpec, ...] = (
    _SiteSpec(
        "home1",
        "192.168.1",
        "fd12:3456:789a",
        "2a02:810d:4b80:1200",
        ("plug", "camera", "speaker", "hub", "bulb", "tv"),
        (
            _CaptureSpec("capture1", datetime(2024, 3, 4, 0, 17, 23, 250000, tzinfo=UTC), 3 * 3600 + 300),
            # the TV is in standby for the whole 01:00 hour, so its interval rows have a gap of zeros
            _CaptureSpec(
                "capture2",
                datetime(2024, 3, 5, 0, 41, 7, 620000, tzinfo=UTC),
                2 * 3600 + 3120,
                asleep=(("tv", 900, 5400),),
            ),
        ),
    ),
    _SiteSpec(
        "home2",
        "192.168.2",
        "fd7e:1f2b:44c0",
        "2a02:810d:4b80:3400",
        ("plug", "camera", "speaker", "hub", "bulb"),
        (
            _CaptureSpec("capture1", datetime(2024, 3, 4, 1, 9, 51, 875000, tzinfo=UTC), 2 * 3600 + 2700),
            _CaptureSpec("capture2", datetime(2024, 3, 5, 2, 23, 44, 125000, tzinfo=UTC), 3 * 3600 + 900),
        ),
    ),
)


@dataclass(frozen=True)
class _Nic:
    """One end of a frame: the MAC it is sent from/to and the IP address."""

    mac: str
    ip: str


@dataclass(frozen=True)
class _Host:
    name: str
    mac: str
    ipv4: str
    kind: str = ""
    vendor: str = ""
    ll6: str | None = None
    ula6: str | None = None
    gua6: str | None = None

    @property
    def v4(self) -> _Nic:
        return _Nic(self.mac, self.ipv4)

    @property
    def ipv6(self) -> list[str]:
        return [a for a in (self.ll6, self.ula6, self.gua6) if a]

    @property
    def spec(self) -> _Kind:
        return KINDS[self.kind]


@dataclass(frozen=True)
class _Site:
    spec: _SiteSpec
    gateway: _Host
    phone: _Host
    devices: dict[str, _Host]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def gateway_ips(self) -> list[str]:
        return [self.gateway.ipv4, *self.gateway.ipv6]

    @property
    def local_prefixes(self) -> list[str]:
        return [f"{self.spec.ula48}::/48"]


def _random_mac(rng: random.Random, oui: str) -> str:
    return oui + "".join(f":{rng.randrange(256):02x}" for _ in range(3))


def _iid(mac: str) -> str:
    """The modified EUI-64 interface identifier of a MAC, as the last 64 bits of an IPv6 address."""
    b = bytes.fromhex(mac.replace(":", ""))
    eui = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:]
    return ":".join(eui[i : i + 2].hex() for i in range(0, 8, 2))


def _v6(prefix64: str, mac: str) -> str:
    return str(ipaddress.IPv6Address(f"{prefix64}:{_iid(mac)}"))


def _build_site(spec: _SiteSpec, rng: random.Random) -> _Site:
    ula64 = f"{spec.ula48}:1"

    def host(name: str, oui: str, octet: int, kind: str = "", vendor: str = "", v6: tuple[str, ...] = ()):
        mac = _random_mac(rng, oui)
        return _Host(
            name=name,
            mac=mac,
            ipv4=f"{spec.subnet}.{octet}",
            kind=kind,
            vendor=vendor,
            ll6=_v6("fe80:0:0:0", mac) if "ll" in v6 else None,
            ula6=_v6(ula64, mac) if "ula" in v6 else None,
            gua6=_v6(spec.gua64, mac) if "gua" in v6 else None,
        )

    gateway = host("gateway", "c4:ad:34", 1, v6=("ll",))
    phone = host("phone", "a4:83:e7", 50, v6=("ll",))
    devices = {k: host(k, KINDS[k].oui, KINDS[k].host, k, KINDS[k].vendor, KINDS[k].ipv6) for k in spec.kinds}
    return _Site(spec, gateway, phone, devices)


# --------------------------------------------------------------------------------------------------------
# Frames and the capture being built
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    """One written frame and the facts the oracle needs, as the generator built it."""

    ts: int
    order: int
    data: bytes
    src_mac: str
    dst_mac: str
    src_ip: str | None
    dst_ip: str | None
    transport: str | None  # "tcp" / "udp"
    sport: int | None
    dport: int | None
    label: str
    retransmission: bool


def _port_label(transport: str, sport: int, dport: int) -> str:
    known = _TCP_LABELS if transport == "tcp" else _UDP_LABELS
    port = next((p for p in sorted((sport, dport)) if p in known), None)
    return known[port] if port is not None else f"{transport}:{min(sport, dport)}"


def _describe(ts: int, order: int, pkt: Packet, retransmission: bool = False) -> _Frame:
    """A frame built whole by scapy (ARP, ICMP, IGMP, neighbour discovery)."""
    eth = pkt[Ether]
    src_ip = dst_ip = transport = None
    sport = dport = None
    if IP in pkt:
        src_ip, dst_ip = pkt[IP].src, pkt[IP].dst
    elif IPv6 in pkt:
        src_ip, dst_ip = pkt[IPv6].src, pkt[IPv6].dst
    for layer, name in ((TCP, "tcp"), (UDP, "udp")):
        if layer in pkt:
            transport, sport, dport = name, pkt[layer].sport, pkt[layer].dport
    if ARP in pkt:
        label = "arp"
    elif ICMP in pkt:
        label = "icmp"
    elif IGMP in pkt:
        label = "igmp"
    elif IPv6 in pkt and type(pkt[IPv6].payload).__name__.startswith("ICMPv6"):
        label = "icmpv6"
    elif transport is not None:
        assert sport is not None and dport is not None
        label = _port_label(transport, sport, dport)
    else:
        label = f"eth:{eth.type:04x}"
    ports = (transport, sport, dport)
    return _Frame(ts, order, bytes(pkt), eth.src, eth.dst, src_ip, dst_ip, *ports, label, retransmission)


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _l4_frame(src: _Nic, dst: _Nic, proto: int, segment: bytes, ttl: int, ip_id: int) -> bytes:
    """Ethernet + IPv4/IPv6 around a TCP (6) or UDP (17) segment whose checksum field is still zero.

    The TCP/UDP bulk is framed here rather than by scapy layers (about 30x faster); the result is
    byte-identical to ``Ether()/IP()/TCP()`` built by scapy, which the unit tests check.
    """
    s, d = ipaddress.ip_address(src.ip).packed, ipaddress.ip_address(dst.ip).packed
    v6 = len(s) == 16
    lengths = struct.pack("!IxxxB", len(segment), proto) if v6 else struct.pack("!xBH", proto, len(segment))
    pseudo = s + d + lengths
    csum = _checksum(pseudo + segment) or (0xFFFF if proto == 17 else 0)
    at = 16 if proto == 6 else 6
    segment = segment[:at] + struct.pack("!H", csum) + segment[at + 2 :]
    if v6:
        ip = struct.pack("!IHBB", 0x6000_0000, len(segment), proto, ttl) + s + d
        ethertype = 0x86DD
    else:
        head = struct.pack("!BBHHHBB", 0x45, 0, 20 + len(segment), ip_id, 0, ttl, proto)
        ip = head + struct.pack("!H", _checksum(head + b"\0\0" + s + d)) + s + d
        ethertype = 0x0800
    return _mac_bytes(dst.mac) + _mac_bytes(src.mac) + struct.pack("!H", ethertype) + ip + segment


def _group_mac(ip: str) -> str:
    """The Ethernet multicast address an IPv4/IPv6 multicast group maps to."""
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        b = addr.packed
        return f"01:00:5e:{b[1] & 0x7F:02x}:{b[2]:02x}:{b[3]:02x}"
    return "33:33:" + ":".join(f"{x:02x}" for x in addr.packed[12:])


def _group(ip: str) -> _Nic:
    return _Nic(_group_mac(ip), ip)


def _solicited_node(ip: str) -> str:
    tail = ipaddress.IPv6Address(ip).packed[13:]
    return str(ipaddress.IPv6Address(b"\xff\x02" + b"\x00" * 9 + b"\x01\xff" + tail))


@dataclass
class _Capture:
    """A capture under construction: frames in generation order plus what the generator knows about them."""

    site: _Site
    spec: _CaptureSpec
    rng: random.Random
    frames: list[_Frame] = field(default_factory=list)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    names: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))  # device → ip → name
    _ip_id: dict[str, int] = field(default_factory=dict)
    _ports: dict[str, int] = field(default_factory=dict)
    # (device, name, qtype) → when the cached answer expires
    dns_cache: dict[tuple[str, str, str], int] = field(default_factory=dict)

    @property
    def start(self) -> int:
        return int(self.spec.start.timestamp()) * US + self.spec.start.microsecond

    @property
    def end(self) -> int:
        return self.start + self.spec.duration_s * US

    @property
    def gw(self) -> _Host:
        return self.site.gateway

    def emit(self, ts: int, pkt: Packet) -> int:
        """Add a frame built whole by scapy."""
        self.frames.append(_describe(ts, len(self.frames), pkt))
        return ts

    def emit_l4(
        self,
        ts: int,
        src: _Nic,
        dst: _Nic,
        transport: str,
        segment: bytes,
        ttl: int,
        retransmission: bool = False,
    ) -> int:
        """Add a TCP/UDP frame: ``segment`` is the transport header (checksum zero) plus payload."""
        sport, dport = struct.unpack("!HH", segment[:4])
        data = _l4_frame(src, dst, 6 if transport == "tcp" else 17, segment, ttl, self._next_ip_id(src.ip))
        label = _port_label(transport, sport, dport)
        meta = (src.mac, dst.mac, src.ip, dst.ip, transport, sport, dport, label)
        self.frames.append(_Frame(ts, len(self.frames), data, *meta, retransmission))
        return ts

    def _next_ip_id(self, ip: str) -> int:
        """IPv4 identification: a counter per sending address (starting anywhere)."""
        ip_id = self._ip_id.get(ip, self.rng.randrange(1, 0xFFFF))
        self._ip_id[ip] = (ip_id + 1) & 0xFFFF
        return ip_id

    def jitter(self, max_ms: float) -> int:
        return self.rng.randint(0, int(max_ms * MS))

    def port(self, host: _Host) -> int:
        """The next ephemeral source port of a host."""
        nxt = self._ports.get(host.name, self.rng.randint(40000, 52000)) + self.rng.randint(1, 9)
        self._ports[host.name] = nxt
        return nxt

    def ip(self, src: _Nic, dst: _Nic, ttl: int = 64, options: list[Any] | None = None) -> Packet:
        """Ether + IPv4/IPv6 header from one end to the other (IPv4 ids count per sender)."""
        eth = Ether(src=src.mac, dst=dst.mac)
        if ":" in src.ip:
            return eth / IPv6(src=src.ip, dst=dst.ip, hlim=ttl)
        return eth / IP(src=src.ip, dst=dst.ip, ttl=ttl, id=self._next_ip_id(src.ip), options=options or [])

    def wan(self, ip: str) -> _Nic:
        """A cloud address as seen on the LAN: reached through the gateway's MAC."""
        return _Nic(self.gw.mac, ip)

    def udp(
        self, ts: int, src: _Nic, dst: _Nic, sport: int, dport: int, payload: Packet | bytes, ttl: int = 64
    ) -> int:
        """A UDP datagram; ``payload`` is an application message built by scapy (DNS, DHCP, NTP, CoAP…)."""
        body = bytes(payload)
        return self.emit_l4(
            ts, src, dst, "udp", struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body, ttl
        )

    def awake_spans(self, host: _Host, ts: int) -> list[tuple[int, int]]:
        """The stretches from ``ts`` to the end of the capture during which ``host`` is switched on."""
        spans, t = [], ts
        for name, off, on in self.spec.asleep:
            if name == host.name:
                spans.append((t, self.start + off * US))
                t = self.start + on * US
        return [*spans, (t, self.end)]

    def awake(self, host: _Host, ts: int) -> bool:
        return not any(
            name == host.name and off * US <= ts - self.start < on * US for name, off, on in self.spec.asleep
        )

    def event(self, device: _Host, name: str, ts: int) -> None:
        self.events[device.name].append({"event": name, "ts": ts / US})


def _every(start: int, end: int, period_s: float) -> Iterator[int]:
    t = start
    while t < end:
        yield t
        t += int(period_s * US)


# --------------------------------------------------------------------------------------------------------
# TCP and TLS
# --------------------------------------------------------------------------------------------------------


_TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}
# MSS 1460, NOP NOP SACK-permitted, NOP WScale 7
_SYN_OPTIONS = b"\x02\x04\x05\xb4\x01\x01\x04\x02\x01\x03\x03\x07"


class _Tcp:
    """One TCP connection with exact sequence bookkeeping (so tshark sees no analysis anomalies)."""

    def __init__(self, cap: _Capture, client: _Nic, server: _Nic, sport: int, dport: int, rtt_ms: float):
        self.cap, self.client, self.server, self.sport, self.dport = cap, client, server, sport, dport
        self.rtt = int(rtt_ms * MS)
        self.server_ttl = 64 if ipaddress.ip_address(server.ip).is_private else 51
        self.seq = {True: cap.rng.getrandbits(32), False: cap.rng.getrandbits(32)}  # keyed by from_client
        self.window = {True: 502, False: 501}

    def _segment(
        self,
        ts: int,
        from_client: bool,
        flags: str,
        payload: bytes = b"",
        seq: int | None = None,
        retransmission: bool = False,
    ) -> int:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        ports = (self.sport, self.dport) if from_client else (self.dport, self.sport)
        ttl = 64 if from_client else self.server_ttl
        options = _SYN_OPTIONS if "S" in flags else b""
        header = struct.pack(
            "!HHIIBBHHH",
            ports[0],
            ports[1],
            self.seq[from_client] if seq is None else seq,
            0 if flags == "S" else self.seq[not from_client],
            (5 + len(options) // 4) << 4,
            sum(_TCP_FLAGS[f] for f in flags),
            64240 if "S" in flags else self.window[from_client],
            0,
            0,
        )
        return self.cap.emit_l4(ts, src, dst, "tcp", header + options + payload, ttl, retransmission)

    def _advance(self, from_client: bool, n: int) -> None:
        self.seq[from_client] = (self.seq[from_client] + n) & 0xFFFF_FFFF

    def open(self, ts: int) -> int:
        self._segment(ts, True, "S")
        self._advance(True, 1)
        ts = self._segment(ts + self.rtt, False, "SA")
        self._advance(False, 1)
        return self._segment(ts + 150 + self.cap.jitter(0.2), True, "A")

    def send(self, ts: int, from_client: bool, payload: bytes, lose: bool = False) -> int:
        """One data segment; ``lose`` re-sends it unchanged ~200 ms later (a retransmission)."""
        seq = self.seq[from_client]
        ts = self._segment(ts, from_client, "PA", payload)
        if lose:
            ts = self._resend(ts, from_client, payload, seq)
        self._advance(from_client, len(payload))
        return ts

    def _resend(self, ts: int, from_client: bool, payload: bytes, seq: int) -> int:
        """The segment sent at ``ts`` was lost: send it again, unchanged, after a ~200 ms RTO."""
        t = ts + 200 * MS + self.cap.jitter(5)
        return self._segment(t, from_client, "PA", payload, seq=seq, retransmission=True)

    def ack(self, ts: int, from_client: bool) -> int:
        return self._segment(ts, from_client, "A")

    def bulk(self, ts: int, from_client: bool, payload: bytes, lose_last: bool = False) -> int:
        """A transfer in MSS segments; the receiver ACKs every second segment and the end."""
        chunks = [payload[i : i + MSS] for i in range(0, len(payload), MSS)]
        gap = 150 + self.cap.rng.randint(0, 80)
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            seq = self.seq[from_client]
            t_i = self._segment(ts + i * gap, from_client, "PA" if last else "A", chunk)
            if last and lose_last:
                t_i = self._resend(t_i, from_client, chunk, seq)
            self._advance(from_client, len(chunk))
            if i % 2 == 1 or last:
                self._segment(t_i + self.rtt // 2 + 7, not from_client, "A")
        return t_i + self.rtt // 2 + 7

    def close(self, ts: int, from_client: bool = True) -> int:
        self._segment(ts, from_client, "FA")
        self._advance(from_client, 1)
        ts = self._segment(ts + self.rtt, not from_client, "FA")
        self._advance(not from_client, 1)
        return self._segment(ts + 120 + self.cap.jitter(0.2), from_client, "A")


def _ext(ext_type: int, body: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(body)) + body


def _handshake_record(hs_type: int, body: bytes, record_version: int) -> bytes:
    hs = bytes([hs_type]) + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 0x16, record_version, len(hs)) + hs


def _client_hello(rng: random.Random, sni: str) -> bytes:
    """A TLS 1.3 ClientHello with server_name, ALPN, groups, signature algorithms and a key share."""
    name = sni.encode()
    ciphers = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0x009C, 0x009D)
    sigalgs = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501)
    exts = b"".join(
        (
            _ext(0x0000, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name),
            _ext(0x000A, struct.pack("!HHHH", 6, 0x001D, 0x0017, 0x0018)),
            _ext(0x000B, b"\x01\x00"),
            _ext(0x000D, struct.pack("!H", 2 * len(sigalgs)) + struct.pack(f"!{len(sigalgs)}H", *sigalgs)),
            _ext(0x0010, b"\x00\x09\x08http/1.1"),
            _ext(0x002B, b"\x04\x03\x04\x03\x03"),
            _ext(0x0033, struct.pack("!HHH", 36, 0x001D, 32) + rng.randbytes(32)),
        )
    )
    body = (
        struct.pack("!H", 0x0303)
        + rng.randbytes(32)
        + b"\x20"
        + rng.randbytes(32)
        + struct.pack("!H", 2 * len(ciphers))
        + struct.pack(f"!{len(ciphers)}H", *ciphers)
        + b"\x01\x00"
        + struct.pack("!H", len(exts))
        + exts
    )
    return _handshake_record(0x01, body, 0x0301)


def _server_flight(rng: random.Random) -> bytes:
    """ServerHello (TLS 1.3), ChangeCipherSpec and the encrypted rest of the server's first flight."""
    exts = _ext(0x002B, b"\x03\x04") + _ext(0x0033, struct.pack("!HH", 0x001D, 32) + rng.randbytes(32))
    body = (
        struct.pack("!H", 0x0303)
        + rng.randbytes(32)
        + b"\x20"
        + rng.randbytes(32)
        + b"\x13\x01\x00"
        + struct.pack("!H", len(exts))
        + exts
    )
    return _handshake_record(0x02, body, 0x0303) + _ccs() + _app_data(rng, rng.randint(2200, 3600))


def _ccs() -> bytes:
    return b"\x14\x03\x03\x00\x01\x01"


def _app_data(rng: random.Random, n: int) -> bytes:
    return struct.pack("!BHH", 0x17, 0x0303, n) + rng.randbytes(n)


def _app_stream(rng: random.Random, total: int, record: int = MSS - 5) -> bytes:
    """``total`` bytes of TLS application data as records of at most ``record`` bytes."""
    out = b""
    while total > 0:
        n = min(record, total)
        out += _app_data(rng, n)
        total -= n
    return out


# --------------------------------------------------------------------------------------------------------
# Protocol helpers: each emits one exchange starting at ``ts`` and returns the time of its last frame
# --------------------------------------------------------------------------------------------------------


def _resolve(cap: _Capture, dev: _Host, name: str, ts: int, v6: bool = False) -> tuple[int, str]:
    """Look a name up at the gateway (A, and AAAA when ``v6``) unless still cached; returns (ts, address)."""
    entry = CLOUD[name]
    for qtype in ("A", "AAAA") if v6 else ("A",):
        if cap.dns_cache.get((dev.name, name, qtype), -1) > ts:
            continue
        ts = _dns_query(cap, dev, name, qtype, ts + 2 * MS)
        cap.dns_cache[(dev.name, name, qtype)] = ts + entry.ttl * US
    cap.names[dev.name][entry.ipv4] = name
    if v6 and entry.ipv6:
        cap.names[dev.name][entry.ipv6] = name
        return ts, entry.ipv6
    return ts, entry.ipv4


def _dns_query(cap: _Capture, dev: _Host, name: str, qtype: str, ts: int) -> int:
    entry = CLOUD[name]
    txid, sport = cap.rng.randrange(0x10000), cap.port(dev)
    server = cap.gw.v4
    question = DNSQR(qname=name, qtype=qtype)
    cap.udp(ts, dev.v4, server, sport, 53, DNS(id=txid, rd=1, qd=[question]))
    answers, owner = [], name
    for cname in entry.cnames:
        answers.append(DNSRR(rrname=owner, type="CNAME", ttl=entry.ttl, rdata=cname))
        owner = cname
    address = entry.ipv4 if qtype == "A" else entry.ipv6
    if address:
        answers.append(DNSRR(rrname=owner, type=qtype, ttl=entry.ttl, rdata=address))
    reply = DNS(id=txid, qr=1, rd=1, ra=1, qd=[question], an=answers)
    return cap.udp(ts + 4 * MS + cap.jitter(12), server, dev.v4, 53, sport, reply)


def _tls_open(
    cap: _Capture, dev: _Host, name: str, ts: int, port: int = 443, v6: bool = False
) -> tuple[_Tcp, int]:
    """Resolve ``name``, then TCP + TLS handshake to it; returns (connection, ts)."""
    ts, address = _resolve(cap, dev, name, ts, v6)
    local = _Nic(dev.mac, dev.gua6) if v6 and dev.gua6 else dev.v4
    conn = _Tcp(cap, local, cap.wan(address), cap.port(dev), port, rtt_ms=18 + cap.rng.random() * 40)
    ts = conn.open(ts + 1 * MS + cap.jitter(3))
    ts = conn.send(ts + 300, True, _client_hello(cap.rng, name))
    ts = conn.bulk(ts + conn.rtt, False, _server_flight(cap.rng))
    ts = conn.send(ts + 2 * MS, True, _ccs() + _app_data(cap.rng, 53))
    ts = conn.ack(ts + conn.rtt, False)
    return conn, ts


def _heartbeats(cap: _Capture, dev: _Host, ts: int, until: int, lost: set[int]) -> None:
    """A persistent TLS connection with a small request/response every ``heartbeat_s`` seconds.

    It stays open at the end of the capture, and is closed when the device goes to sleep at ``until``.
    """
    spec = dev.spec
    conn, ts = _tls_open(cap, dev, spec.cloud, ts, spec.cloud_port, spec.cloud_v6)
    up, down = spec.hb_sizes
    for n, t in enumerate(_every(ts + spec.heartbeat_s * US, until - 5 * US, spec.heartbeat_s)):
        t = conn.send(t + cap.jitter(30), True, _app_data(cap.rng, up), lose=n in lost)
        t = conn.send(t + conn.rtt, False, _app_data(cap.rng, down))
        conn.ack(t + 180 + cap.jitter(0.3), True)
    if until < cap.end:
        conn.close(until - 2 * US)


def _ntp(cap: _Capture, dev: _Host, ts: int) -> int:
    name = dev.spec.ntp_name
    if name:
        ts, server_ip = _resolve(cap, dev, name, ts)
        ts += 1 * MS
    else:
        server_ip = HARDCODED_NTP
    server = cap.wan(server_ip)
    sent = ts / US + NTP_EPOCH_OFFSET
    request = NTPHeader(version=4, mode=3, stratum=0, poll=6, precision=-20, ref=0, orig=0, recv=0, sent=sent)
    cap.udp(ts, dev.v4, server, 123, 123, request)
    back = ts + 21 * MS + cap.jitter(25)
    stamps = {"ref": sent - 512.0, "orig": sent, "recv": sent + 0.0105, "sent": sent + 0.0106}
    reply = NTPHeader(version=4, mode=4, stratum=2, poll=6, precision=-25, id="17.253.34.125", **stamps)
    return cap.udp(back, server, dev.v4, 123, 123, reply, ttl=54)


def _arp(cap: _Capture, asker: _Host, target: _Host, ts: int) -> int:
    request = ARP(op=1, hwsrc=asker.mac, psrc=asker.ipv4, hwdst="00:00:00:00:00:00", pdst=target.ipv4)
    cap.emit(ts, Ether(src=asker.mac, dst=BROADCAST) / request)
    reply = ARP(op=2, hwsrc=target.mac, psrc=target.ipv4, hwdst=asker.mac, pdst=asker.ipv4)
    return cap.emit(ts + 1 * MS + cap.jitter(3), Ether(src=target.mac, dst=asker.mac) / reply)


def _gratuitous_arp(cap: _Capture, dev: _Host, ts: int) -> int:
    arp = ARP(op=1, hwsrc=dev.mac, psrc=dev.ipv4, hwdst="00:00:00:00:00:00", pdst=dev.ipv4)
    return cap.emit(ts, Ether(src=dev.mac, dst=BROADCAST) / arp)


def _dhcp_options(dev: _Host, msg: str, extra: list[Any]) -> DHCP:
    return DHCP(
        options=[
            ("message-type", msg),
            ("client_id", b"\x01" + _mac_bytes(dev.mac)),
            *extra,
            ("hostname", dev.spec.hostname.encode()),
            ("vendor_class_id", dev.spec.vendor_class.encode()),
            ("param_req_list", [1, 3, 6, 12, 15, 28, 42]),
            "end",
        ]
    )


def _dhcp_server_options(cap: _Capture, msg: str) -> DHCP:
    gw = cap.gw.ipv4
    return DHCP(
        options=[
            ("message-type", msg),
            ("server_id", gw),
            ("lease_time", 86400),
            ("renewal_time", 43200),
            ("rebinding_time", 75600),
            ("subnet_mask", "255.255.255.0"),
            ("router", gw),
            ("name_server", gw),
            ("domain", b"lan"),
            "end",
        ]
    )


def _dhcp_boot(cap: _Capture, dev: _Host, ts: int) -> int:
    """DISCOVER / OFFER / REQUEST / ACK at boot (client messages broadcast, server replies unicast)."""
    xid, mac = cap.rng.getrandbits(32), _mac_bytes(dev.mac)
    client, bcast, server = _Nic(dev.mac, "0.0.0.0"), _Nic(BROADCAST, "255.255.255.255"), cap.gw.v4
    req = [("requested_addr", dev.ipv4)]
    cap.udp(ts, client, bcast, 68, 67, BOOTP(xid=xid, chaddr=mac) / _dhcp_options(dev, "discover", req))
    ts += 3 * MS + cap.jitter(20)
    offer = BOOTP(op=2, xid=xid, yiaddr=dev.ipv4, siaddr=cap.gw.ipv4, chaddr=mac)
    cap.udp(ts, server, dev.v4, 67, 68, offer / _dhcp_server_options(cap, "offer"))
    ts += 2 * MS + cap.jitter(10)
    req = [("requested_addr", dev.ipv4), ("server_id", cap.gw.ipv4)]
    cap.udp(ts, client, bcast, 68, 67, BOOTP(xid=xid, chaddr=mac) / _dhcp_options(dev, "request", req))
    ts += 3 * MS + cap.jitter(20)
    ack = BOOTP(op=2, xid=xid, yiaddr=dev.ipv4, siaddr=cap.gw.ipv4, chaddr=mac)
    return cap.udp(ts, server, dev.v4, 67, 68, ack / _dhcp_server_options(cap, "ack"))


def _dhcp_renew(cap: _Capture, dev: _Host, ts: int) -> int:
    """A lease renewal: unicast REQUEST to the server and its ACK."""
    xid, mac = cap.rng.getrandbits(32), _mac_bytes(dev.mac)
    request = BOOTP(xid=xid, ciaddr=dev.ipv4, chaddr=mac) / _dhcp_options(dev, "request", [])
    cap.udp(ts, dev.v4, cap.gw.v4, 68, 67, request)
    ack = BOOTP(op=2, xid=xid, ciaddr=dev.ipv4, yiaddr=dev.ipv4, chaddr=mac)
    return cap.udp(
        ts + 2 * MS + cap.jitter(8), cap.gw.v4, dev.v4, 67, 68, ack / _dhcp_server_options(cap, "ack")
    )


def _dhcpv6_info(cap: _Capture, dev: _Host, ts: int) -> int:
    """Stateless DHCPv6: INFORMATION-REQUEST to ff02::1:2 and the gateway's REPLY."""
    assert dev.ll6 and cap.gw.ll6
    trid = cap.rng.getrandbits(24)
    client_id = DHCP6OptClientId(duid=DUID_LL(lladdr=dev.mac))
    request = (
        DHCP6_InfoRequest(trid=trid) / client_id / DHCP6OptElapsedTime() / DHCP6OptOptReq(reqopts=[23, 24])
    )
    me, gw = _Nic(dev.mac, dev.ll6), _Nic(cap.gw.mac, cap.gw.ll6)
    cap.udp(ts, me, _group("ff02::1:2"), 546, 547, request, ttl=1)
    reply = (
        DHCP6_Reply(trid=trid)
        / DHCP6OptServerId(duid=DUID_LL(lladdr=cap.gw.mac))
        / client_id
        / DHCP6OptDNSServers(dnsservers=[cap.gw.ll6])
    )
    return cap.udp(ts + 2 * MS + cap.jitter(5), gw, me, 547, 546, reply)


def _igmp_join(cap: _Capture, dev: _Host, group: str, ts: int) -> int:
    """An IGMPv2 membership report (with the Router Alert option) for ``group``."""
    ip = cap.ip(dev.v4, _group(group), ttl=1, options=[IPOption_Router_Alert()])
    return cap.emit(ts, ip / IGMP(type=0x16, gaddr=group))


def _router_solicit(cap: _Capture, dev: _Host, ts: int) -> int:
    assert dev.ll6
    rs = ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=dev.mac)
    return cap.emit(ts, cap.ip(_Nic(dev.mac, dev.ll6), _group("ff02::2"), 255) / rs)


def _router_advert(cap: _Capture, ts: int) -> int:
    spec, gw = cap.site.spec, cap.gw
    assert gw.ll6
    lifetimes = {"validlifetime": 86400, "preferredlifetime": 14400}
    ra = (
        ICMPv6ND_RA(chlim=64, routerlifetime=1800)
        / ICMPv6NDOptPrefixInfo(prefixlen=64, prefix=f"{spec.gua64}::", **lifetimes)
        / ICMPv6NDOptPrefixInfo(prefixlen=64, prefix=f"{spec.ula48}:1::", **lifetimes)
        / ICMPv6NDOptSrcLLAddr(lladdr=gw.mac)
    )
    return cap.emit(ts, cap.ip(_Nic(gw.mac, gw.ll6), _group("ff02::1"), 255) / ra)


def _neighbour_discovery(cap: _Capture, asker: _Nic, target: _Nic, ts: int) -> int:
    """NS to the target's solicited-node group, NA back unicast."""
    ns = ICMPv6ND_NS(tgt=target.ip) / ICMPv6NDOptSrcLLAddr(lladdr=asker.mac)
    cap.emit(ts, cap.ip(asker, _group(_solicited_node(target.ip)), 255) / ns)
    na = ICMPv6ND_NA(tgt=target.ip, R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=target.mac)
    return cap.emit(ts + 1 * MS + cap.jitter(4), cap.ip(target, asker, 255) / na)


def _ping_gateway(cap: _Capture, dev: _Host, ts: int) -> int:
    ident, seq = cap.rng.randrange(0x10000), cap.rng.randrange(1, 0x1000)
    payload = bytes(range(32))
    cap.emit(ts, cap.ip(dev.v4, cap.gw.v4) / ICMP(type=8, id=ident, seq=seq) / payload)
    reply = cap.ip(cap.gw.v4, dev.v4) / ICMP(type=0, id=ident, seq=seq) / payload
    return cap.emit(ts + 1 * MS + cap.jitter(2), reply)


def _mdns_announce(cap: _Capture, dev: _Host, ts: int) -> int:
    """An unsolicited mDNS response (PTR, SRV, A) on IPv4 and, with a link-local address, on IPv6."""
    service = f"{dev.spec.mdns}.local"
    instance = f"{dev.spec.hostname}-{dev.mac[-5:].replace(':', '')}.{service}"
    target = f"{dev.spec.hostname}.local"
    answers = [
        DNSRR(rrname=service, type="PTR", ttl=4500, rdata=instance),
        DNSRRSRV(rrname=instance, ttl=120, priority=0, weight=0, port=8080, target=target),
        DNSRR(rrname=target, type="A", ttl=120, rdata=dev.ipv4),
    ]
    cap.udp(ts, dev.v4, _group("224.0.0.251"), 5353, 5353, DNS(id=0, qr=1, aa=1, qd=[], an=answers), ttl=255)
    if dev.ll6:
        v6 = (_Nic(dev.mac, dev.ll6), _group("ff02::fb"))
        ts = cap.udp(ts + 2 * MS, *v6, 5353, 5353, DNS(id=0, qr=1, aa=1, qd=[], an=answers), ttl=255)
    return ts


def _mdns_query(cap: _Capture, asker: _Host, service: str, responders: list[_Host], ts: int) -> int:
    query = DNS(id=0, qd=[DNSQR(qname=f"{service}.local", qtype="PTR")])
    cap.udp(ts, asker.v4, _group("224.0.0.251"), 5353, 5353, query, ttl=255)
    for dev in (d for d in responders if cap.awake(d, ts)):
        ts = _mdns_announce(cap, dev, ts + 20 * MS + cap.jitter(100))
    return ts


def _ssdp_usn(dev: _Host) -> str:
    return str(uuid.UUID(int=int(dev.mac.replace(":", ""), 16) << 64 | 0x4000_8000_0000_0000))


def _ssdp_location(dev: _Host) -> str:
    return f"http://{dev.ipv4}:7676/{dev.kind}/description.xml"


def _ssdp_notify(cap: _Capture, dev: _Host, ts: int) -> int:
    for nt in ("upnp:rootdevice", f"urn:schemas-upnp-org:device:{dev.kind}:1"):
        text = (
            "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n"
            f"LOCATION: {_ssdp_location(dev)}\r\nNT: {nt}\r\nNTS: ssdp:alive\r\n"
            f"SERVER: Linux/4.1 UPnP/1.0 {dev.vendor}/1.0\r\nUSN: uuid:{_ssdp_usn(dev)}::{nt}\r\n\r\n"
        )
        ts = cap.udp(ts + 3 * MS, dev.v4, _group("239.255.255.250"), 1900, 1900, text.encode(), ttl=4)
    return ts


def _ssdp_search(cap: _Capture, asker: _Host, responders: list[_Host], ts: int) -> int:
    """M-SEARCH to the SSDP group; each responder answers unicast."""
    sport = cap.port(asker)
    text = (
        "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
        'MAN: "ssdp:discover"\r\nMX: 2\r\nST: ssdp:all\r\n\r\n'
    )
    cap.udp(ts, asker.v4, _group("239.255.255.250"), sport, 1900, text.encode(), ttl=4)
    for dev in (d for d in responders if cap.awake(d, ts)):
        reply = (
            "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n"
            f"LOCATION: {_ssdp_location(dev)}\r\nSERVER: Linux/4.1 UPnP/1.0 {dev.vendor}/1.0\r\n"
            f"ST: upnp:rootdevice\r\nUSN: uuid:{_ssdp_usn(dev)}::upnp:rootdevice\r\n\r\n"
        )
        ts = cap.udp(ts + 50 * MS + cap.jitter(900), dev.v4, asker.v4, 1900, sport, reply.encode())
    return ts


def _coap_get(cap: _Capture, client: _Nic, server: _Nic, client_host: _Host, ts: int) -> int:
    """CoAP confirmable GET /light/state and the piggy-backed 2.05 Content answer."""
    msg_id, token, sport = cap.rng.randrange(0x10000), cap.rng.randbytes(4), cap.port(client_host)
    get = CoAP(
        type=0, code=1, msg_id=msg_id, token=token, options=[("Uri-Path", b"light"), ("Uri-Path", b"state")]
    )
    cap.udp(ts, client, server, sport, 5683, get)
    state = b'{"on":%d,"bri":%d}' % (cap.rng.randint(0, 1), cap.rng.randint(1, 254))
    answer = CoAP(
        type=2, code=69, msg_id=msg_id, token=token, options=[("Content-Format", b"\x32")], paymark=b"\xff"
    )
    return cap.udp(ts + 2 * MS + cap.jitter(6), server, client, 5683, sport, answer / Raw(state))


def _http_exchange(conn: _Tcp, ts: int, request: str, body: bytes, lose_request: bool = False) -> int:
    """One HTTP/1.1 request and response on an open connection, then the client closes it."""
    ts = conn.send(ts, True, request.encode(), lose=lose_request)
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ts = conn.bulk(ts + conn.rtt, False, head.encode() + body)
    return conn.close(ts + 2 * MS + conn.cap.jitter(3))


def _hub_bulb_http(cap: _Capture, hub: _Host, bulb: _Host, ts: int, lose: bool = False) -> int:
    conn = _Tcp(cap, hub.v4, bulb.v4, cap.port(hub), 80, rtt_ms=2.5)
    ts = conn.open(ts)
    request = (
        f"GET /api/state HTTP/1.1\r\nHost: {bulb.ipv4}\r\nUser-Agent: SmartThings-Hub/0.47\r\n"
        "Accept: application/json\r\nConnection: close\r\n\r\n"
    )
    body = b'{"state":{"on":%d,"bri":%d,"ct":2700}}' % (cap.rng.randint(0, 1), cap.rng.randint(1, 254))
    return _http_exchange(conn, ts + 1 * MS, request, body, lose_request=lose)


def _http_firmware_check(cap: _Capture, hub: _Host, ts: int) -> int:
    """One plain HTTP GET to a cloud host (Host header names it)."""
    name = "fw.smartthings.example"
    ts, address = _resolve(cap, hub, name, ts)
    conn = _Tcp(cap, hub.v4, cap.wan(address), cap.port(hub), 80, rtt_ms=24)
    ts = conn.open(ts + 1 * MS)
    request = (
        f"GET /firmware/v2/manifest.json?model=hub-v3 HTTP/1.1\r\nHost: {name}\r\n"
        "User-Agent: SmartThings-Hub/0.47\r\nAccept: */*\r\n\r\n"
    )
    body = json.dumps({"model": "hub-v3", "latest": "0.47.9", "url": f"http://{name}/fw/0.47.9.bin"}).encode()
    return _http_exchange(conn, ts + 1 * MS, request, body)


def _tplink_frame(obj: dict[str, Any]) -> bytes:
    """The TP-Link smart-home protocol: a length prefix and XOR-autokey 'encrypted' JSON (key 171)."""
    key, out = 171, bytearray()
    for b in json.dumps(obj, separators=(",", ":")).encode():
        key ^= b
        out.append(key)
    return struct.pack("!I", len(out)) + bytes(out)


# --------------------------------------------------------------------------------------------------------
# User events
# --------------------------------------------------------------------------------------------------------


def _plug_on(cap: _Capture, phone: _Host, plug: _Host, ts: int) -> None:
    """The app turns the plug on (local tcp/9999), then the plug reports the new state to its cloud."""
    cap.event(plug, "plug_on", ts)
    conn = _Tcp(cap, phone.v4, plug.v4, cap.port(phone), 9999, rtt_ms=4)
    t = conn.open(ts)
    t = conn.send(t + 1 * MS, True, _tplink_frame({"system": {"set_relay_state": {"state": 1}}}))
    t = conn.send(t + 6 * MS, False, _tplink_frame({"system": {"set_relay_state": {"err_code": 0}}}))
    t = conn.close(t + 3 * MS)
    cloud, t = _tls_open(cap, plug, "devs.tplinkcloud.example", t + 40 * MS)
    t = cloud.send(t + 5 * MS, True, _app_data(cap.rng, 389))
    t = cloud.send(t + 2 * MS, True, _app_data(cap.rng, 245))
    t = cloud.send(t + cloud.rtt, False, _app_data(cap.rng, 97))
    cloud.close(t + 300 * MS)


def _camera_motion(cap: _Capture, camera: _Host, ts: int, lose: bool = False) -> None:
    """Motion detected: the camera uploads a short clip to its upload host."""
    cap.event(camera, "camera_motion", ts)
    conn, t = _tls_open(cap, camera, "kvs.wyze-upload.example", ts)
    t = conn.bulk(t + 3 * MS, True, _app_stream(cap.rng, cap.rng.randint(30_000, 42_000)), lose_last=lose)
    t = conn.send(t + 30 * MS, False, _app_data(cap.rng, 140))
    conn.close(t + 1 * US)


def _speaker_voice(cap: _Capture, speaker: _Host, ts: int) -> None:
    """A voice command: audio up to the cloud over IPv6, the spoken answer back down."""
    cap.event(speaker, "voice_command", ts)
    conn, t = _tls_open(cap, speaker, speaker.spec.cloud, ts, v6=True)
    t = conn.bulk(t + 2 * MS, True, _app_stream(cap.rng, cap.rng.randint(9_000, 14_000), 1195))
    t = conn.bulk(t + 400 * MS, False, _app_stream(cap.rng, cap.rng.randint(16_000, 24_000)))
    conn.close(t + 2 * US)


# --------------------------------------------------------------------------------------------------------
# The schedule of one capture
# --------------------------------------------------------------------------------------------------------

# Which heartbeat (by index) or exchange loses its data segment, so tshark sees a retransmission.
_LOST_HEARTBEAT = {"plug": {17}, "camera": {101}}
_LOST_HUB_HTTP = 5
_LOST_MOTION = 1


def _simulate(site: _Site, spec: _CaptureSpec, rng: random.Random, boot: bool) -> _Capture:
    cap = _Capture(site, spec, rng)
    start, end = cap.start, cap.end
    dev = site.devices
    for t in _every(start, end, 600):
        _router_advert(cap, t)

    for i, host in enumerate(dev.values()):
        kind = host.spec
        t = start + (3 + 9 * i) * US + cap.jitter(900)
        if boot:
            t = _boot(cap, host, t)
        for n, (awake, asleep) in enumerate(cap.awake_spans(host, t)):
            lost = _LOST_HEARTBEAT.get(host.kind, set()) if n == 0 else set()
            _session(cap, host, awake + (40 * MS if n == 0 else cap.jitter(900)), asleep, lost)
        probes = (tp for tp in _every(start + (200 + 97 * i) * US, end, 1200) if cap.awake(host, tp))
        for tp in probes:
            _arp(cap, site.gateway, host, tp)
        if kind.mdns:
            for tm in _every(t + 1 * US, end, 900):
                if cap.awake(host, tm):
                    _mdns_announce(cap, host, tm + cap.jitter(200))
        if kind.ssdp:
            for tn in _every(t + 2 * US, end, 1800):
                if cap.awake(host, tn):
                    _ssdp_notify(cap, host, tn + cap.jitter(200))
        if not boot and i == 1:
            _dhcp_renew(cap, host, start + spec.duration_s * US // 2)
    _background(cap, boot)
    _events(cap)
    return cap


def _boot(cap: _Capture, host: _Host, t: int) -> int:
    """What a device sends when it joins the network: DHCP, ARP, IGMP joins, IPv6 RS and DHCPv6."""
    t = _dhcp_boot(cap, host, t)
    t = _gratuitous_arp(cap, host, t + 5 * MS)
    if host.spec.mdns:
        t = _igmp_join(cap, host, "224.0.0.251", t + 20 * MS)
    if host.spec.ssdp:
        t = _igmp_join(cap, host, "239.255.255.250", t + 10 * MS)
    if host.ll6:
        t = _router_solicit(cap, host, t + 30 * MS)
    if host.gua6:
        t = _dhcpv6_info(cap, host, t + 200 * MS)
    return t


def _session(cap: _Capture, host: _Host, t: int, until: int, lost: set[int]) -> None:
    """A device while it is switched on: find the gateway, sync the clock hourly, keep its cloud link."""
    t = _arp(cap, host, cap.gw, t)
    for tn in _every(t + 2 * US, until - 60 * US, 3600):
        _ntp(cap, host, tn + cap.jitter(500))
    _heartbeats(cap, host, t + 4 * US, until, lost)


def _background(cap: _Capture, boot: bool) -> None:
    """Local traffic that is not tied to one device's boot: hub↔bulb, the phone, pings, firmware check."""
    site, start, end = cap.site, cap.start, cap.end
    dev, phone = site.devices, site.phone
    if "camera" in dev:
        for t in _every(start + 150 * US, end, 600):
            _ping_gateway(cap, dev["camera"], t + cap.jitter(300))
    if "hub" in dev and "bulb" in dev:
        hub, bulb = dev["hub"], dev["bulb"]
        for n, t in enumerate(_every(start + 120 * US, end - 30 * US, 600)):
            _hub_bulb_http(cap, hub, bulb, t + cap.jitter(400), lose=n == _LOST_HUB_HTTP)
        for t in _every(start + 75 * US, end, 300):
            _coap_get(cap, hub.v4, bulb.v4, hub, t + cap.jitter(300))
        assert hub.ula6 and bulb.ula6 and hub.ll6 and bulb.ll6
        hub6, bulb6 = _Nic(hub.mac, hub.ula6), _Nic(bulb.mac, bulb.ula6)
        for n, t in enumerate(_every(start + 95 * US, end, 900)):
            t += cap.jitter(300)
            if n % 4 == 0:
                t = _neighbour_discovery(cap, hub6, bulb6, t) + 1 * MS
            _coap_get(cap, hub6, bulb6, hub, t)
        for t in _every(start + 1300 * US, end, 3600):
            _neighbour_discovery(cap, _Nic(bulb.mac, bulb.ll6), _Nic(hub.mac, hub.ll6), t + cap.jitter(500))
        ssdp_responders = [d for d in dev.values() if d.spec.ssdp and d is not hub]
        for t in _every(start + 400 * US, end, 3600):
            _ssdp_search(cap, hub, ssdp_responders, t + cap.jitter(300))
        _http_firmware_check(cap, hub, start + 2400 * US + cap.jitter(900))
    mdns = [d for d in dev.values() if d.spec.mdns]
    for n, t in enumerate(_every(start + 500 * US, end, 1200)):
        service = mdns[n % len(mdns)].spec.mdns
        assert service
        _mdns_query(cap, phone, service, [d for d in mdns if d.spec.mdns == service], t + cap.jitter(500))
    for t in _every(start + 700 * US, end, 1800):
        _ssdp_search(cap, phone, [d for d in dev.values() if d.spec.ssdp], t + cap.jitter(500))
    if boot:
        _arp(cap, phone, site.gateway, start + 30 * US)


def _events(cap: _Capture) -> None:
    """User events at fixed fractions of the capture (plus jitter), so each capture has a few of each."""
    dev, span = cap.site.devices, cap.spec.duration_s * US

    def at(frac: float) -> int:
        return cap.start + int(frac * span) + cap.jitter(20_000)

    if "plug" in dev:
        for frac in (0.12, 0.43, 0.78):
            t = at(frac)
            _arp(cap, cap.site.phone, dev["plug"], t - 20 * MS)
            _plug_on(cap, cap.site.phone, dev["plug"], t)
    if "camera" in dev:
        for n, frac in enumerate((0.21, 0.55, 0.88)):
            _camera_motion(cap, dev["camera"], at(frac), lose=n == _LOST_MOTION)
    if "speaker" in dev:
        for frac in (0.33, 0.67):
            _speaker_voice(cap, dev["speaker"], at(frac))


# --------------------------------------------------------------------------------------------------------
# The oracle: per-device metrics computed from the frames we built
# --------------------------------------------------------------------------------------------------------


def _is_local(ip: str, prefixes: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr.version == net.version and addr in net for net in (*_LOCAL_NETS, *prefixes))


def _scope(f: _Frame, prefixes: list[Any]) -> str:
    if int(f.dst_mac[:2], 16) & 1 or f.src_ip is None or f.dst_ip is None:
        return "LAN"
    return "LAN" if _is_local(f.src_ip, prefixes) and _is_local(f.dst_ip, prefixes) else "WAN"


def _passive(f: _Frame, gateway_ips: set[str]) -> bool:
    if f.src_ip is None or f.retransmission or f.label in _PASSIVE_DROPPED_LABELS:
        return False
    return f.src_ip not in gateway_ips and f.dst_ip not in gateway_ips


def _zero() -> dict[str, int]:
    return dict.fromkeys(METRICS, 0)


def _add(m: dict[str, int], size: int, tx: bool) -> None:
    side = "tx" if tx else "rx"
    m["frames"] += 1
    m["bytes"] += size
    m[f"{side}_frames"] += 1
    m[f"{side}_bytes"] += size


def _device_truth(cap: _Capture, dev: _Host, frames: list[_Frame]) -> dict[str, Any]:
    site = cap.site
    prefixes = [ipaddress.ip_network(p) for p in site.local_prefixes]
    gateway_ips = set(site.gateway_ips)
    totals = {p: {s: _zero() for s in SCOPES} for p in PROFILES}
    buckets: dict[str, dict[int, dict[str, dict[str, int]]]] = {p: {} for p in PROFILES}
    protocols: Counter[str] = Counter()
    endpoints: dict[tuple[str, int, str], list[int]] = {}
    for f in frames:
        if dev.mac not in (f.src_mac, f.dst_mac):
            continue
        tx, size, scope = f.src_mac == dev.mac, len(f.data), _scope(f, prefixes)
        start = f.ts // (INTERVAL_S * US) * INTERVAL_S
        protocols[f.label] += 1
        for profile in PROFILES if _passive(f, gateway_ips) else ("all",):
            row = buckets[profile].setdefault(start, {s: _zero() for s in SCOPES})
            for s in ("ALL", scope):
                _add(totals[profile][s], size, tx)
                _add(row[s], size, tx)
        if scope == "WAN" and f.transport:
            remote, port = (f.dst_ip, f.dport) if tx else (f.src_ip, f.sport)
            assert remote is not None and port is not None
            counts = endpoints.setdefault((remote, port, f.transport), [0, 0])
            counts[0] += 1
            counts[1] += size
    names = cap.names[dev.name]
    # Per profile, one row per hour from the device's first to its last kept frame, zeros included.
    intervals: dict[str, dict[str, list[dict[str, int]]]] = {p: {s: [] for s in SCOPES} for p in PROFILES}
    for profile, rows in buckets.items():
        hours = range(min(rows), max(rows) + INTERVAL_S, INTERVAL_S) if rows else []
        for start in hours:
            row = rows.get(start, {s: _zero() for s in SCOPES})
            for s in SCOPES:
                intervals[profile][s].append({"start": start, **row[s]})
    return {
        "totals": totals,
        "intervals": intervals,
        "protocols": dict(sorted(protocols.items())),
        "endpoints": [
            {
                "ip": ip,
                "name": names.get(ip),
                "class": _party(dev.vendor, names.get(ip), ip),
                "port": port,
                "transport": proto,
                "frames": n,
                "bytes": size,
            }
            for (ip, port, proto), (n, size) in sorted(endpoints.items())
        ],
        "events": sorted(cap.events.get(dev.name, []), key=lambda e: e["ts"]),
    }


def _capture_truth(cap: _Capture, frames: list[_Frame], file: str) -> dict[str, Any]:
    return {
        "file": file,
        "packets": len(frames),
        "first_ts": frames[0].ts / US,
        "last_ts": frames[-1].ts / US,
        "retransmissions": sum(f.retransmission for f in frames),
        "devices": {name: _device_truth(cap, dev, frames) for name, dev in cap.site.devices.items()},
    }


# --------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------


def _write_pcap(path: Path, frames: list[_Frame]) -> None:
    writer = PcapWriter(str(path), linktype=DLT_EN10MB, endianness="<", nano=False)
    writer.write_header(None)
    for f in frames:
        writer.write_packet(f.data, sec=f.ts // US, usec=f.ts % US)
    writer.close()


def _write_site_files(site_dir: Path, site: _Site) -> None:
    site_dir.mkdir(parents=True, exist_ok=True)
    conf = {
        "gateway_ips": site.gateway_ips,
        "local_prefixes": site.local_prefixes,
        "endpoint_rules": {
            "first_party": {vendor: {"domains": d} for vendor, d in DEMO_FIRST_PARTY.items()},
            "support": {"domains": DEMO_SUPPORT},
        },
    }
    (site_dir / "site.yaml").write_text(yaml.safe_dump(conf, sort_keys=False), encoding="utf-8")
    with (site_dir / "macs.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["device", "mac", "vendor", "kind"])
        for name, dev in site.devices.items():
            out.writerow([name, dev.mac, dev.vendor, dev.kind])


def generate_demo(out_dir: Path, seed: int = 7) -> dict[str, Any]:
    """Write the demo dataset under ``out_dir`` and return its ground truth (also ``out_dir/truth.json``).

    Layout: ``home1/`` and ``home2/`` each with ``site.yaml``, ``macs.csv``, ``capture1.pcap`` and
    ``capture2.pcap``; then ``truth.json``. The same seed gives byte-identical files: all randomness comes
    from one ``random.Random(seed)`` and all times from fixed epochs.

    The truth is computed from the frames as built, never by reading the pcaps back. Per device and capture:
    ``totals`` and hourly ``intervals`` (one row per hour from the device's first to its last frame, zeros
    included) per profile (``all``; ``passive`` = IP only, without the injected retransmissions,
    DHCP/DHCPv6/ICMP/ICMPv6/IGMP/DNS or gateway traffic) and scope (``LAN`` = group-addressed, non-IP, or
    both addresses local; ``WAN`` the rest); a frame is the device's when its MAC is the source (tx) or the
    destination (rx). Also ``protocols`` (frames per label), WAN ``endpoints`` (with the DNS name the device
    looked up, or null) and the injected ``events``.
    """
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    truth: dict[str, Any] = {"seed": seed, "interval_s": INTERVAL_S, "sites": {}}
    for site_spec in SITES:
        site = _build_site(site_spec, rng)
        _write_site_files(out_dir / site.name, site)
        site_truth: dict[str, Any] = {
            "gateway_ips": site.gateway_ips,
            "local_prefixes": site.local_prefixes,
            "devices": {
                name: {"mac": d.mac, "vendor": d.vendor, "kind": d.kind, "ipv4": d.ipv4, "ipv6": d.ipv6}
                for name, d in site.devices.items()
            },
            "captures": {},
        }
        for n, cap_spec in enumerate(site_spec.captures):
            cap = _simulate(site, cap_spec, rng, boot=n == 0)
            frames = sorted(cap.frames, key=lambda f: (f.ts, f.order))
            rel = f"{site.name}/{cap_spec.name}.pcap"
            _write_pcap(out_dir / rel, frames)
            site_truth["captures"][cap_spec.name] = _capture_truth(cap, frames, rel)
        truth["sites"][site.name] = site_truth
    (out_dir / "truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return truth


if __name__ == "__main__":  # pragma: no cover - manual use: python -m iotlake.capture.demo OUT_DIR [SEED]
    import sys

    generate_demo(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 7)
