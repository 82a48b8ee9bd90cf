"""Protocol exports in the Passive-Mode-Study formats, on a hand-built capture whose every frame is labelled by hand.

Expected rows are sums over the hand labels below (label, remote address, scope, direction, frame size from
scapy), never outputs of iotlake; headers are the reference's (passive-mode-study §4.2, §4.3) and, when the
earlier tool's files are present under ../shared/data, the headers of those files.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.layers.ntp import NTPHeader
from scapy.packet import Raw
from scapy.utils import wrpcap

from tests.conftest import REPO, SHARED_DATA, require_tools

T0 = 1_700_000_000
PLUG, CAM, GW = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:fe"
PLUG4, CAM4, GW4 = "192.168.1.10", "192.168.1.20", "192.168.1.1"
CLOUD4, NTP4, RESOLVER4 = "52.1.2.3", "162.159.200.123", "8.8.8.8"
PLUG6_LL, PLUG6, CLOUD6 = "fe80::10", "fd00::10", "2001:db8::1"
TLS_RECORD = b"\x17\x03\x03\x00\x10" + b"\xaa" * 16  # one TLS application-data record
SSDP = b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n'
MODELS = [
    "device_packets",
    "packet_protocols",
    "protocol_usage",
    "protocol_type_distribution",
    "unique_protocols",
    "protocol_distribution_pms",
]

# The reference's headers (passive-mode-study §4.2, §4.3), verbatim.
PROTOCOLS_HEADER = "MAC,WAN/LAN,Protocol,IP,TotalPackets,TotalBytes,TxPackets,TxBytes,RxPackets,RxBytes"
DISTRIBUTION_HEADER = (
    "MAC,Type,TotalCount,DiscoveryCount,DiscoveryPct,ManagementCount,ManagementPct,EncryptedCount,EncryptedPct,"
    "NonEncryptedCount,NonEncryptedPct,UnknownCount,UnknownPct"
)
UNIQUE_HEADER = "MAC,Type,Network,Transport,Session,Application"
OVERALL_HEADER = "Proto,Purpose,Type"

# Categories of the labels used below, as the reference's taxonomy (§5) gives them; tcp:47001 is in no list.
CATEGORY = {
    "https": "Encrypted",
    "ntp": "Management",
    "dns": "Management",
    "mdns": "Discovery",
    "ssdp": "Discovery",
    "tcp:47001": "Unknown",
}


@dataclass(frozen=True)
class Frame:
    """A frame and what it is, by hand: application label (None: none), remote address per device, scope."""

    second: float
    packet: object
    label: str | None
    scope: str
    devices: dict[str, tuple[str, str]]  # device → (tx/rx, remote IP)
    dns: bool = False  # a DNS or ICMP frame: the passive profile drops it
    tls: bool = False


def frames() -> list[Frame]:
    out: list[Frame] = []
    # TLS on 443 with the cloud: 5 frames, 3 sent by the plug
    for i, (flags, payload, tx) in enumerate(
        [
            ("S", b"", True),
            ("SA", b"", False),
            ("A", b"", True),
            ("PA", TLS_RECORD, True),
            ("PA", TLS_RECORD, False),
        ]
    ):
        ether = Ether(src=PLUG, dst=GW) if tx else Ether(src=GW, dst=PLUG)
        ip = IP(src=PLUG4, dst=CLOUD4) if tx else IP(src=CLOUD4, dst=PLUG4)
        tcp = TCP(sport=40000, dport=443, flags=flags) if tx else TCP(sport=443, dport=40000, flags=flags)
        packet = ether / ip / tcp / Raw(payload) if payload else ether / ip / tcp
        out.append(
            Frame(
                1 + i * 0.1,
                packet,
                "https",
                "WAN",
                {"plug": ("tx" if tx else "rx", CLOUD4)},
                tls=bool(payload),
            )
        )
    out += [
        Frame(2, Ether(src=PLUG, dst=GW) / IP(src=PLUG4, dst=NTP4) / UDP(sport=40123, dport=123) / NTPHeader(mode=3),
              "ntp", "WAN", {"plug": ("tx", NTP4)}),
        Frame(2.1, Ether(src=GW, dst=PLUG) / IP(src=NTP4, dst=PLUG4) / UDP(sport=123, dport=40123) / NTPHeader(mode=4),
              "ntp", "WAN", {"plug": ("rx", NTP4)}),
        Frame(3, Ether(src=PLUG, dst="01:00:5e:00:00:fb") / IP(src=PLUG4, dst="224.0.0.251") / UDP(sport=5353, dport=5353)
              / DNS(qd=DNSQR(qname="_hap._tcp.local", qtype="PTR")), "mdns", "LAN", {"plug": ("tx", "224.0.0.251")}),
        Frame(3.5, Ether(src=PLUG, dst="01:00:5e:00:00:fb") / IP(src=PLUG4, dst="224.0.0.251") / UDP(sport=5353, dport=5353)
              / DNS(qd=DNSQR(qname="_hue._tcp.local", qtype="PTR")), "mdns", "LAN", {"plug": ("tx", "224.0.0.251")}),
        Frame(4, Ether(src=PLUG, dst="01:00:5e:7f:ff:fa") / IP(src=PLUG4, dst="239.255.255.250")
              / UDP(sport=40002, dport=1900) / Raw(SSDP), "ssdp", "LAN", {"plug": ("tx", "239.255.255.250")}),
    ]  # fmt: skip
    # TCP to the camera on an unlisted port: tcp:47001, counted for both devices
    for i, (flags, payload, tx) in enumerate(
        [("S", b"", True), ("SA", b"", False), ("PA", b"\x00" * 12, True)]
    ):
        ether = Ether(src=PLUG, dst=CAM) if tx else Ether(src=CAM, dst=PLUG)
        ip = IP(src=PLUG4, dst=CAM4) if tx else IP(src=CAM4, dst=PLUG4)
        tcp = TCP(sport=1234, dport=47001, flags=flags) if tx else TCP(sport=47001, dport=1234, flags=flags)
        packet = ether / ip / tcp / Raw(payload) if payload else ether / ip / tcp
        plug, cam = ("tx", "rx") if tx else ("rx", "tx")
        out.append(
            Frame(5 + i * 0.1, packet, "tcp:47001", "LAN", {"plug": (plug, CAM4), "cam": (cam, PLUG4)})
        )
    out += [
        # IPv6: mDNS from the link-local address, a TLS handshake with a global address
        Frame(6, Ether(src=PLUG, dst="33:33:00:00:00:fb") / IPv6(src=PLUG6_LL, dst="ff02::fb")
              / UDP(sport=5353, dport=5353) / DNS(qd=DNSQR(qname="_hap._tcp.local", qtype="PTR")),
              "mdns", "LAN", {"plug": ("tx", "ff02::fb")}),
        Frame(7, Ether(src=PLUG, dst=GW) / IPv6(src=PLUG6, dst=CLOUD6) / TCP(sport=40100, dport=443, flags="S"),
              "https", "WAN", {"plug": ("tx", CLOUD6)}),
        Frame(7.1, Ether(src=GW, dst=PLUG) / IPv6(src=CLOUD6, dst=PLUG6) / TCP(sport=443, dport=40100, flags="SA"),
              "https", "WAN", {"plug": ("rx", CLOUD6)}),
        # DNS and ICMP: in `all`, not in `passive`; ICMP has no application label but counts under `ip`
        Frame(8, Ether(src=PLUG, dst=GW) / IP(src=PLUG4, dst=RESOLVER4) / UDP(sport=40124, dport=53)
              / DNS(rd=1, qd=DNSQR(qname="example.com")), "dns", "WAN", {"plug": ("tx", RESOLVER4)}, dns=True),
        Frame(8.1, Ether(src=GW, dst=PLUG) / IP(src=RESOLVER4, dst=PLUG4) / UDP(sport=53, dport=40124)
              / DNS(id=0, qr=1, qd=DNSQR(qname="example.com")), "dns", "WAN", {"plug": ("rx", RESOLVER4)}, dns=True),
        Frame(9, Ether(src=PLUG, dst=GW) / IP(src=PLUG4, dst=CLOUD4) / ICMP(), None, "WAN", {"plug": ("tx", CLOUD4)},
              dns=True),
        # ARP: no IP, so in no protocol file
        Frame(10, Ether(src=PLUG, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=PLUG, psrc=PLUG4, pdst=GW4), None, "LAN",
              {"plug": ("tx", "")}),
    ]  # fmt: skip
    return out


def ip_version(frame: Frame) -> int | None:
    return 6 if IPv6 in frame.packet else 4 if IP in frame.packet else None


def kept(frame: Frame, profile: str) -> bool:
    """The profiles of conf/iotlake.yaml on these frames: `passive` keeps IP frames other than DNS and ICMP."""
    return profile == "all" or (ip_version(frame) is not None and not frame.dns)


def expected_files(profile: str) -> dict[str, set[tuple]]:
    """{file name: set of rows} by hand: an ip/ipv6 row per remote address, an application row per label."""
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0] * 6)
    for f in frames():
        version = ip_version(f)
        if version is None or not kept(f, profile):
            continue
        size = len(bytes(f.packet))
        for device, (direction, remote) in f.devices.items():
            protocols = ["ipv6" if version == 6 else "ip"] + ([f.label] if f.label else [])
            for scope in ("ALL", f.scope):
                for protocol in protocols:
                    row = sums[(device, version, scope, protocol, remote)]
                    row[0] += 1
                    row[1] += size
                    side = 2 if direction == "tx" else 4
                    row[side] += 1
                    row[side + 1] += size
    mac = {"plug": PLUG.upper(), "cam": CAM.upper()}
    files: dict[str, set[tuple]] = defaultdict(set)
    for (device, version, scope, protocol, remote), values in sums.items():
        name = f"lab-capture1-split-{device}{'-ipv6' if version == 6 else ''}-protocols"
        name += {"ALL": "", "LAN": "-LAN", "WAN": "-WAN"}[scope] + ".csv"
        files[name].add((mac[device], scope, protocol, remote, *(str(v) for v in values)))
    return files


@pytest.fixture(scope="module")
def export_lake(spark, config, tmp_path_factory) -> str:
    require_tools("tshark")
    from iotlake import pipeline

    folder = tmp_path_factory.mktemp("protocol_exports")
    packets = []
    for f in frames():
        f.packet.time = T0 + f.second
        packets.append(f.packet)
    wrpcap(str(folder / "capture1.pcap"), packets)
    (folder / "macs.csv").write_text(f"device,mac\nplug,{PLUG}\ncam,{CAM}\n")
    (folder / "site.yaml").write_text("gateway_ips: [192.168.1.254]\n")  # no frame touches it
    plans = pipeline.plan_files(
        config, "protoexport", "lab", [folder / "capture1.pcap"], folder / "macs.csv", folder / "site.yaml"
    )
    pipeline.ingest(spark, config, "protoexport", plans, progress=False)
    pipeline.build(spark, config, ["protoexport"], only=MODELS)
    return "protoexport"


@pytest.fixture(scope="module")
def exported(spark, config, export_lake, tmp_path_factory) -> dict[str, Path]:
    from iotlake import pipeline

    out = {}
    for profile in ("all", "passive"):
        out[profile] = tmp_path_factory.mktemp(f"export_{profile}")
        report = pipeline.export_protocols(spark, config, export_lake, profile, out[profile])
        assert report.devices == 2
        assert report.files == len(expected_files(profile)) + 3
    return out


def read_rows(path: Path) -> tuple[str, list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0], list(csv.reader(lines[1:]))


@pytest.mark.parametrize("profile", ["all", "passive"])
def test_per_device_protocol_files_hold_the_hand_counts(exported, profile) -> None:
    expected = expected_files(profile)
    written = {p.name for p in exported[profile].glob("*-protocols*.csv")}
    assert written == set(expected)  # no empty files: the camera has no WAN and no IPv6 file
    for name, rows in expected.items():
        header, actual = read_rows(exported[profile] / name)
        assert header == PROTOCOLS_HEADER
        assert len(actual) == len(rows) and set(map(tuple, actual)) == rows, name
        protocols = [r[2] for r in actual]  # network rows first, as the earlier files (L3 before L7)
        assert protocols[0] in ("ip", "ipv6") and protocols.count(protocols[0]) == sum(
            1 for p in protocols if p in ("ip", "ipv6")
        )


def test_known_rows_by_hand(exported) -> None:
    _, rows = read_rows(exported["all"] / "lab-capture1-split-plug-protocols.csv")
    by_key = {(r[2], r[3]): r[4:] for r in rows}
    # TLS connection: 5 frames, SYN/ACK/data sent by the plug; in `all` the ICMP echo adds one `ip` packet
    assert [by_key[("https", CLOUD4)][i] for i in (0, 2, 4)] == ["5", "3", "2"]
    assert [by_key[("ip", CLOUD4)][i] for i in (0, 2, 4)] == ["6", "4", "2"]
    assert by_key[("mdns", "224.0.0.251")][0] == "2"
    assert ("dns", RESOLVER4) in by_key
    _, passive = read_rows(exported["passive"] / "lab-capture1-split-plug-protocols.csv")
    assert {(r[2], r[3]): r[4] for r in passive}[("ip", CLOUD4)] == "5"
    assert not [r for r in passive if r[2] == "dns" or r[3] == RESOLVER4]
    _, lan = read_rows(exported["all"] / "lab-capture1-split-cam-protocols-LAN.csv")
    # the camera received the SYN and the data and sent the SYN-ACK
    assert [[*r[:5], r[6], r[8]] for r in lan] == [
        [CAM.upper(), "LAN", "ip", PLUG4, "3", "1", "2"],
        [CAM.upper(), "LAN", "tcp:47001", PLUG4, "3", "1", "2"],
    ]


def expected_distribution(profile: str, device: str, scope: str) -> list:
    counts = dict.fromkeys(["Discovery", "Management", "Encrypted", "Unencrypted", "Unknown"], 0)
    for f in frames():
        if f.label and device in f.devices and scope in ("ALL", f.scope) and kept(f, profile):
            counts[CATEGORY[f.label]] += 1
    total = sum(counts.values())
    if not total:
        return [0] * 11
    cells: list = [total]
    for category in counts:
        cells += [counts[category], counts[category] / total]
    return cells


@pytest.mark.parametrize("profile", ["all", "passive"])
def test_proto_distributions(exported, profile) -> None:
    header, rows = read_rows(exported[profile] / "protoexport-proto-distributions.csv")
    assert header == DISTRIBUTION_HEADER
    mac = {"plug": PLUG.upper(), "cam": CAM.upper()}
    expected = [
        [mac[device], scope, *expected_distribution(profile, device, scope)]
        for device in ("cam", "plug")
        for scope in ("ALL", "LAN", "WAN")
    ]
    assert [r[:2] for r in rows] == [e[:2] for e in expected]
    for row, want in zip(rows, expected, strict=True):
        assert [int(x) for x in [row[2], *row[3::2]]] == [want[2], *want[3::2]], row  # counts
        assert [float(x) for x in row[4::2]] == pytest.approx(want[4::2]), row  # shares
    plug_all = rows[3]
    # by hand, profile all: https 5+2, ntp 2 + dns 2, mdns 3 + ssdp 1, tcp:47001 3
    assert plug_all[2:4] == (["18", "4"] if profile == "all" else ["16", "4"])
    assert rows[2] == [CAM.upper(), "WAN", *["0"] * 11]  # the earlier zero row


def test_unique_protocols_per_mac(exported) -> None:
    lines = (exported["all"] / "protoexport-unique-protos-per-mac.csv").read_text().splitlines()
    assert lines == [
        UNIQUE_HEADER,
        f'{CAM.upper()},ALL,"ip","tcp","","tcp:47001"',
        f'{CAM.upper()},WAN,"","","",""',
        f'{CAM.upper()},LAN,"ip","tcp","","tcp:47001"',
        f'{PLUG.upper()},ALL,"ip,ipv6","tcp,udp","tls","dns,https,mdns,ntp,ssdp,tcp:47001"',
        f'{PLUG.upper()},WAN,"ip,ipv6","tcp,udp","tls","dns,https,ntp"',
        f'{PLUG.upper()},LAN,"ip,ipv6","tcp,udp","","mdns,ssdp,tcp:47001"',
    ]


def test_unique_app_protos_overall_take_purpose_and_type_from_the_taxonomy(exported) -> None:
    header, rows = read_rows(exported["all"] / "protoexport-unique-app-protos-overall.csv")
    assert header == OVERALL_HEADER
    taxonomy = {
        r["protocol"]: r
        for r in csv.DictReader(
            line
            for line in (REPO / "conf" / "protocol_types.csv").read_text().splitlines()
            if not line.startswith("#")
        )
    }
    names = {"Encrypted": "Encrypted App", "Unencrypted": "Unencrypted App"}
    labels = sorted(CATEGORY)
    assert [r[0] for r in rows] == labels
    for proto, purpose, kind in rows:
        entry = taxonomy.get(proto)
        assert purpose == (entry["purpose"] if entry else "")
        assert kind == (names.get(entry["category"], entry["category"]) if entry else "")
    assert rows[labels.index("https")][2] == "Encrypted App"


EARLIER = SHARED_DATA / "passive-mode-study" / "data" / "protocols"
EARLIER_NAME = re.compile(r"^(?P<stem>.+-split-[A-Za-z0-9]+)(-ipv6)?-protocols(-LAN|-WAN)?\.csv$")


def earlier_header(pattern: str) -> str:
    found = sorted(EARLIER.rglob(pattern))
    if not found:
        pytest.skip(f"earlier protocol files not present: {EARLIER}/**/{pattern}")
    headers = {p.read_bytes().decode("utf-8-sig").splitlines()[0] for p in found}
    assert len(headers) == 1, headers
    return headers.pop()


def test_headers_and_names_equal_the_earlier_files(exported) -> None:
    out = exported["all"]
    pairs = [
        ("*-protocols*.csv", "lab-capture1-split-plug-protocols.csv"),
        ("*-proto-distributions.csv", "protoexport-proto-distributions.csv"),
        ("*-unique-protos-per-mac.csv", "protoexport-unique-protos-per-mac.csv"),
        ("*-unique-app-protos-overall.csv", "protoexport-unique-app-protos-overall.csv"),
    ]
    for pattern, ours in pairs:
        assert (out / ours).read_text().splitlines()[0] == earlier_header(pattern), pattern
    # every earlier per-device file name has the grammar ours follow
    for path in EARLIER.rglob("*-protocols*.csv"):
        assert EARLIER_NAME.match(path.name), path.name
    for path in out.glob("*-protocols*.csv"):
        assert EARLIER_NAME.match(path.name), path.name
