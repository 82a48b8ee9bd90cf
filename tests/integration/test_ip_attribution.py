"""IP attribution (issue 8, item 2): the same frames as Ethernet, raw IP and Linux cooked captures.

Nine IP frames between two devices, a third local host and a cloud server are written with four link layers.
Every capture must give the same per-device tx/rx frame counts and scopes, labelled by hand below, and
`device_packets.attribution` says how each row was found: by MAC for Ethernet frames of devices with a MAC,
by IP for frames without Ethernet addresses and for devices the map knows only by IP.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from tests.conftest import require_tools

T0 = 1_700_000_000
PLUG, CAM, OTHER, GW = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:33", "02:00:00:00:00:fe"
PLUG4, CAM4, OTHER4, CLOUD4 = "192.168.1.10", "192.168.1.20", "192.168.1.50", "52.1.2.3"
DATASET = "attribution"

# (Ethernet source, destination, IP packet, what it is for the devices: (device, direction, scope) rows)
FRAMES: list[tuple[str, str, Packet, list[tuple[str, str, str]]]] = [
    (PLUG, GW, IP(src=PLUG4, dst=CLOUD4) / UDP(sport=40000, dport=123), [("plug", "tx", "WAN")]),
    (GW, PLUG, IP(src=CLOUD4, dst=PLUG4) / UDP(sport=123, dport=40000), [("plug", "rx", "WAN")]),
    (CAM, GW, IP(src=CAM4, dst=CLOUD4) / TCP(sport=50000, dport=443, flags="S"), [("camera", "tx", "WAN")]),
    (GW, CAM, IP(src=CLOUD4, dst=CAM4) / TCP(sport=443, dport=50000, flags="SA"), [("camera", "rx", "WAN")]),
    (
        PLUG,
        CAM,
        IP(src=PLUG4, dst=CAM4) / TCP(sport=40001, dport=8080, flags="S"),
        [("plug", "tx", "LAN"), ("camera", "rx", "LAN")],
    ),
    (
        PLUG,
        "01:00:5e:7f:ff:fa",
        IP(src=PLUG4, dst="239.255.255.250") / UDP(sport=1900, dport=1900),
        [("plug", "tx", "LAN")],
    ),
    (
        CAM,
        "ff:ff:ff:ff:ff:ff",
        IP(src=CAM4, dst="255.255.255.255") / UDP(sport=68, dport=67),
        [("camera", "tx", "LAN")],
    ),
    (OTHER, GW, IP(src=OTHER4, dst=CLOUD4) / UDP(sport=41000, dport=53), []),  # no device's frame
    (GW, PLUG, IP(src=CLOUD4, dst=PLUG4) / ICMP(type=0), [("plug", "rx", "WAN")]),
]
EXPECTED = Counter(row for *_, rows in FRAMES for row in rows)


def _ip_packets() -> list[Packet]:
    packets = []
    for i, (_, _, packet, _) in enumerate(FRAMES):
        packet = packet.copy() / Raw(b"p" * (10 + i))
        packet.time = T0 + i
        packets.append(packet)
    return packets


def _with_time(frames: list[Packet]) -> list[Packet]:
    for i, frame in enumerate(frames):
        frame.time = T0 + i
    return frames


def _write_captures(folder: Path) -> dict[str, int]:
    """The captures by name, with their link types."""
    ip = _ip_packets()
    ethernet = [Ether(src=s, dst=d) / p for (s, d, _, _), p in zip(FRAMES, ip, strict=True)]

    def sll_src(mac: str) -> bytes:
        return bytes.fromhex(mac.replace(":", "")) + b"\0\0"

    # Linux cooked headers name only the sender's MAC (and whether the frame was outgoing: pkttype 4)
    sll = [
        CookedLinux(pkttype=4 if s in (PLUG, CAM) else 0, lladdrtype=1, lladdrlen=6, src=sll_src(s)) / p
        for (s, _, _, _), p in zip(FRAMES, ip, strict=True)
    ]
    sll2 = [
        CookedLinuxV2(pkttype=4 if s in (PLUG, CAM) else 0, lladdrtype=1, lladdrlen=6, src=sll_src(s)) / p
        for (s, _, _, _), p in zip(FRAMES, ip, strict=True)
    ]
    captures = {"ethernet": (ethernet, 1), "raw": (ip, 101), "cooked": (sll, 113), "cooked2": (sll2, 276)}
    for name, (frames, link_type) in captures.items():
        wrpcap(str(folder / f"{name}.pcap"), _with_time([f.copy() for f in frames]), linktype=link_type)
    return {name: link_type for name, (_, link_type) in captures.items()}


@pytest.fixture(scope="module")
def attributed(spark, config, tmp_path_factory) -> dict[str, int]:
    """One dataset, two sites with the same four captures: `by_mac` maps MACs and IPs, `by_ip` IPs only."""
    require_tools("tshark")
    from iotlake import pipeline

    folder = tmp_path_factory.mktemp("ip_attribution")
    captures = _write_captures(folder)
    maps = {
        "by_mac": f"device,mac,ip,vendor\nplug,{PLUG},{PLUG4},Acme\ncamera,{CAM},{CAM4},Acme\n",
        "by_ip": f"device,mac,ip,vendor\nplug,,{PLUG4},Acme\ncamera,,{CAM4},Acme\n",
    }
    files = [folder / f"{name}.pcap" for name in captures]
    plans = []
    for site, text in maps.items():
        (folder / f"{site}.csv").write_text(text)
        plans += pipeline.plan_files(config, DATASET, site, files, folder / f"{site}.csv", None)
    pipeline.ingest(spark, config, DATASET, plans, progress=False)
    pipeline.build(spark, config, [DATASET], only=["device_packets"])
    return captures


def _rows(spark, site: str) -> list:
    return (
        spark.table("iotlake.device_packets")
        .where(f"dataset = '{DATASET}' AND site = '{site}'")
        .select("capture", "device", "direction", "scope", "attribution", "peer_mac", "frame_no")
        .collect()
    )


@pytest.mark.parametrize("site", ["by_mac", "by_ip"])
def test_every_link_layer_gives_the_hand_counted_tx_rx_frames(spark, attributed, site: str) -> None:
    rows = _rows(spark, site)
    for capture in attributed:
        seen = Counter((r.device, r.direction, r.scope) for r in rows if r.capture == capture)
        assert seen == EXPECTED, (site, capture)


def test_attribution_says_mac_for_ethernet_frames_of_mac_devices_else_ip(spark, attributed) -> None:
    found = {(s, r.capture, r.attribution) for s in ("by_mac", "by_ip") for r in _rows(spark, s)}
    expected = {("by_mac", "ethernet", "mac")}
    expected |= {("by_mac", c, "ip") for c in attributed if c != "ethernet"}
    expected |= {("by_ip", c, "ip") for c in attributed}
    assert found == expected
    devices = spark.table("iotlake.devices").where(f"dataset = '{DATASET}'")
    got = {(r.site, r.device, r.mac, r.attribution) for r in devices.collect()}
    assert got == {
        ("by_mac", "plug", PLUG, "mac"),
        ("by_mac", "camera", CAM, "mac"),
        ("by_ip", "plug", None, "ip"),
        ("by_ip", "camera", None, "ip"),
    }


def test_cooked_frames_name_the_sender_as_peer_of_received_frames(spark, attributed) -> None:
    rows = [r for r in _rows(spark, "by_ip") if r.direction == "rx"]
    peers = {c: {(r.frame_no, r.device, r.peer_mac) for r in rows if r.capture == c} for c in attributed}
    assert {p for _, _, p in peers["ethernet"]} == {GW, PLUG}
    assert peers["cooked"] == peers["ethernet"] == peers["cooked2"]
    assert {p for _, _, p in peers["raw"]} == {None}


def test_raw_capture_with_a_map_lacking_ips_is_one_line_naming_the_capture(tmp_path: Path) -> None:
    from iotlake.capture.probe import probe
    from iotlake.config import load_macs
    from iotlake.errors import BadCaptureError

    capture = tmp_path / "raw.pcap"
    wrpcap(str(capture), _ip_packets(), linktype=101)
    macs = tmp_path / "macs.csv"
    macs.write_text(f"device,mac,ip\nplug,{PLUG},{PLUG4}\ncamera,{CAM},\n")
    with pytest.raises(BadCaptureError) as info:
        probe(capture, load_macs(macs))
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(capture))
    assert "LINKTYPE_RAW (101)" in message and "needs an ip column" in message and "camera" in message
    assert probe(capture).link_types == [101]  # without the map: a valid capture


def test_mac_map_rows_may_give_an_ip_instead_of_a_mac(tmp_path: Path) -> None:
    from iotlake.config import load_macs

    macs = tmp_path / "macs.csv"
    macs.write_text(f"device,mac,ip\nplug,{PLUG.upper()},{PLUG4}\ncamera,,{CAM4}\n")
    devices = load_macs(macs)
    assert [(d.device, d.mac, d.ip, d.attribution) for d in devices] == [
        ("plug", PLUG, PLUG4, "mac"),
        ("camera", None, CAM4, "ip"),
    ]


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        (f"plug,{PLUG},{PLUG4}\ncamera,,\n", "no MAC and no IP for device 'camera'"),
        (f"plug,,{PLUG4}\ncamera,,{PLUG4}\n", f"duplicate IP {PLUG4} (first on line 2)"),
        (
            f"plug,{PLUG},{PLUG4}\ncamera,02:00:00:00:00,{CAM4}\n",
            "malformed MAC '02:00:00:00:00' for device 'camera'",
        ),
    ],
)
def test_mac_map_rows_without_an_address_or_with_a_taken_ip_are_one_line(
    tmp_path: Path, rows: str, problem: str
) -> None:
    from iotlake.config import load_macs
    from iotlake.errors import ConfigError

    macs = tmp_path / "macs.csv"
    macs.write_text("device,mac,ip\n" + rows)
    with pytest.raises(ConfigError) as info:
        load_macs(macs)
    assert str(info.value) == f"{macs}:3: {problem}"
