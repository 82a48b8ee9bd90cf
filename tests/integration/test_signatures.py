"""Event signatures on hand-built event captures whose contents are known by construction.

Two devices, six captures of one "toggle" event each, laid out as `<device>/<event>/*.pcap` beside
`devices.yaml` (devices attributed by IP). Every capture holds the device's background (a UDP beacon to the
cloud every 10 s, each from a new port), the event burst 20 s in, and in half of the captures a one-off
flow. The plug's toggle is: the phone connects to the plug's TCP 9999, the plug asks DNS for its cloud
(`use1-api` or `euw1-api` of acme-plug.example, alternating) and opens TLS to the answer. The bulb's: the
phone sends an HTTP PUT to the bulb (a different query string each time), the bulb asks DNS for its broker
and connects to it on TCP 8883. A long "home" capture of the plug with two toggles 10 minutes apart is then
scanned for the learned signatures.
"""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from tests.conftest import require_tools

T0 = 1_700_100_000
GW_MAC, PHONE_MAC = "02:00:00:00:01:fe", "02:00:00:00:01:50"
GW4, PHONE4 = "192.168.1.1", "192.168.1.50"
DEVICES = {
    "plug": ("02:00:00:00:01:10", "192.168.1.10"),
    "bulb": ("02:00:00:00:01:11", "192.168.1.11"),
}
BEACON4, ONE_OFF4 = "52.1.2.3", "198.51.100.9"
CAPTURES = 4
TRAIN = 2


class Host:
    """A station of the hand-built network: its MAC and IPv4 address."""

    def __init__(self, mac: str, ip: str) -> None:
        self.mac, self.ip = mac, ip


def _udp(src: Host, dst: Host, sport: int, dport: int, payload: bytes = b"u" * 20):
    return (
        Ether(src=src.mac, dst=dst.mac) / IP(src=src.ip, dst=dst.ip) / UDP(sport=sport, dport=dport) / payload
    )


def _tcp_session(
    client: Host, server: Host, cport: int, sport: int, request: bytes, response: bytes, at: float
):
    """A whole TCP connection (handshake, one request and response, FIN both ways), 10 ms per packet."""

    def seg(out: bool, flags: str, payload: bytes = b""):
        a, b, pa, pb = (client, server, cport, sport) if out else (server, client, sport, cport)
        return (
            Ether(src=a.mac, dst=b.mac)
            / IP(src=a.ip, dst=b.ip)
            / TCP(sport=pa, dport=pb, flags=flags)
            / payload
        )

    steps = [
        seg(True, "S"),
        seg(False, "SA"),
        seg(True, "A"),
        seg(True, "PA", request),
        seg(False, "PA", response),
        seg(True, "FA"),
        seg(False, "FA"),
        seg(True, "A"),
    ]
    return [(at + 0.01 * i, p) for i, p in enumerate(steps)]


def _dns(device: Host, gateway: Host, name: str, address: str, sport: int, at: float):
    query = DNS(id=sport, qd=DNSQR(qname=name))
    answer = DNS(id=sport, qr=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, rdata=address, ttl=300))
    return [
        (at, _udp(device, gateway, sport, 53, query)),
        (at + 0.02, _udp(gateway, device, 53, sport, answer)),
    ]


def _toggle(device: str, i: int, at: float) -> list:
    """The event burst of one device, the i-th time (ports, names and addresses vary with i)."""
    me = Host(*DEVICES[device])
    phone = Host(PHONE_MAC, PHONE4)
    gateway = Host(GW_MAC, GW4)
    cloud = Host(GW_MAC, f"52.10.{i % 250}.{1 + (device == 'bulb')}")
    if device == "plug":
        name = f"{'use1' if i % 2 == 0 else 'euw1'}-api.acme-plug.example"
        burst = _tcp_session(phone, me, 40000 + i, 9999, b'{"relay":1}', b'{"ok":0}', at)
        burst += _dns(me, gateway, name, cloud.ip, 30000 + i, at + 0.2)
        burst += _tcp_session(me, cloud, 45000 + i, 443, b"\x16\x03\x01hello", b"\x16\x03\x03world", at + 0.3)
    else:
        request = f"PUT /api/light?nonce={i} HTTP/1.1\r\nHost: {me.ip}\r\n\r\n".encode()
        burst = _tcp_session(phone, me, 41000 + i, 80, request, b"HTTP/1.1 200 OK\r\n\r\n", at)
        burst += _dns(me, gateway, "mqtt.bulbco.example", cloud.ip, 31000 + i, at + 0.2)
        burst += _tcp_session(me, cloud, 46000 + i, 8883, b"\x10connect", b"\x20ack", at + 0.3)
    return burst


def _background(device: str, start: float, seconds: int, port_base: int) -> list:
    me = Host(*DEVICES[device])
    beacon = Host(GW_MAC, BEACON4)
    return [(start + t, _udp(me, beacon, port_base + t, 7000)) for t in range(0, seconds, 10)]


def _write(path, timed) -> None:
    packets = []
    for at, packet in sorted(timed, key=lambda t: t[0]):
        packet.time = T0 + at
        packets.append(packet)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrpcap(str(path), packets)


def _event_folder(root) -> None:
    lines = []
    for device, (_, ip) in DEVICES.items():
        lines += [f"{device}:", f"  ipv4: {ip}", "  device-type: test"]
        for i in range(CAPTURES):
            offset = 1000 * i + (0 if device == "plug" else 500)
            timed = _background(device, offset, 60, 20000 + 100 * i) + _toggle(
                device, i, offset + 20 + 0.5 * i
            )
            if i % 2 == 0:
                one_off = Host(GW_MAC, ONE_OFF4)
                timed.append((offset + 40, _udp(Host(*DEVICES[device]), one_off, 33333, 4444)))
            _write(root / device / "toggle" / f"{T0 + offset}.pcap", timed)
    (root / "devices.yaml").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def events(spark, config, tmp_path_factory):
    """Ingest the event folder and a long home capture (MAC map), build the flow models of both."""
    require_tools("tshark")
    from iotlake import pipeline

    root = tmp_path_factory.mktemp("events")
    _event_folder(root / "lab")
    pipeline.ingest(
        spark, config, "siglab", pipeline.plan_directory(config, "siglab", root / "lab"), progress=False
    )
    home = root / "home"
    # 20 minutes of the plug's background with toggles at 5 and 15 minutes, the 10th and 11th time
    timed = _background("plug", 0, 1200, 10000) + _toggle("plug", 10, 300) + _toggle("plug", 11, 900)
    _write(home / "day1.pcap", timed)
    (home / "macs.csv").write_text(f"device,mac\nplug,{DEVICES['plug'][0]}\n")
    plans = pipeline.plan_files(config, "sighome", "flat", [home / "day1.pcap"], home / "macs.csv", None)
    pipeline.ingest(spark, config, "sighome", plans, progress=False)
    pipeline.build(
        spark,
        config,
        ["siglab", "sighome"],
        only=pipeline.models_for(config, "flow_fingerprints", "flow_patterns"),
    )
    return root


def _signature(spark, config, device: str) -> list[tuple]:
    from iotlake.signatures import mining

    rows = mining.signatures(spark, config, "siglab").where(f"device = '{device}'").collect()
    return [
        (r["remote_key"], r["transport"], r["fixed_port"], r["device_role"], r["initiator"]) for r in rows
    ]


def test_learned_signatures_are_the_event_bursts_without_background(spark, config, events) -> None:
    from iotlake.signatures import mining

    report = mining.learn(spark, config, "siglab")
    assert report.events == 2
    plug = _signature(spark, config, "plug")
    assert sorted(plug) == sorted(
        [
            (PHONE4, "tcp", 9999, "server", "remote"),
            (GW4, "udp", 53, "client", "device"),
            ("acme-plug.example", "tcp", 443, "client", "device"),
        ]
    )
    assert [p[0] for p in plug] == [PHONE4, GW4, "acme-plug.example"], "elements in the order they start"
    bulb = _signature(spark, config, "bulb")
    assert sorted(bulb) == sorted(
        [
            (PHONE4, "tcp", 80, "server", "remote"),
            (GW4, "udp", 53, "client", "device"),
            ("bulbco.example", "tcp", 8883, "client", "device"),
        ]
    )
    fields = {
        (r["device"], r["fixed_port"]): r["app_fields"]
        for r in mining.signatures(spark, config, "siglab").collect()
    }
    assert fields[("plug", 53)] == "qtype=1 qname=acme-plug.example"
    assert fields[("bulb", 80)] == "method=PUT uri=/api/light", (
        "the query string is not part of the fingerprint"
    )
    assert all(BEACON4 not in str(s) and ONE_OFF4 not in str(s) for s in plug + bulb)


def test_detection_in_a_long_capture_finds_each_event_once(spark, config, events) -> None:
    from iotlake.signatures import mining

    mining.learn(spark, config, "siglab")
    found, _ = mining.detect(spark, config, "sighome", signatures_from="siglab")
    rows = mining.detections(spark, config, "sighome", "siglab").collect()
    assert found == 2
    assert [(r["device"], r["signature_device"], r["event"]) for r in rows] == [
        ("plug", "plug", "toggle")
    ] * 2
    # the phone's connection opens each burst: at 300 s and 900 s
    assert [round(r["detected_at"].timestamp() - T0, 2) for r in rows] == [300.0, 900.0]


def test_evaluation_counts_every_test_capture(spark, config, events) -> None:
    from iotlake.signatures import mining

    result = mining.evaluate(spark, config, "siglab", train=TRAIN)
    print("\n" + mining.evaluation_markdown(result.rows))
    by_device = {(r["device"], r["event"]): r for r in result.rows}
    assert set(by_device) == {("plug", "toggle"), ("bulb", "toggle")}
    for row in by_device.values():
        assert row["training_captures"] == TRAIN
        assert row["test_captures"] == CAPTURES - TRAIN
        assert row["negatives"] == CAPTURES, "all captures of the other device"
        assert (row["true_positives"], row["false_negatives"], row["false_positives"]) == (
            CAPTURES - TRAIN,
            0,
            0,
        )
        assert row["precision"] == 1.0 and row["recall"] == 1.0
