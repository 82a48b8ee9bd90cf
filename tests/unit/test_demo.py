"""The demo-dataset generator: deterministic output, and its truth.json checked against capinfos and tshark."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from iotlake.capture.demo import _l4_frame, _Nic, generate_demo

CAPTURES = [(site, cap) for site in ("home1", "home2") for cap in ("capture1", "capture2")]
LOCAL_V4 = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
)
LOCAL_V6 = ("fe80::/10", "fc00::/7", "ff00::/8")
# Dissector fields that must show up in every capture (the application protocols the lake extracts).
DISSECTED = (
    "tls.handshake.extensions_server_name",
    "dns.cname",
    "ssdp",
    "mdns",
    "coap.opt.uri_path",
    "ntp",
    "http.request.method==GET",
)


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not on PATH")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    return out, generate_demo(out)


def _macs(out: Path, site: str) -> dict[str, str]:
    with (out / site / "macs.csv").open(encoding="utf-8") as fh:
        return {row["device"]: row["mac"] for row in csv.DictReader(fh)}


def _lan_filter(mac: str, prefixes: list[str]) -> str:
    """The LAN definition as a display filter: group destination, non-IP, or both ends local."""

    def local(side: str) -> str:
        nets = [f"ip.{side}=={n}" for n in LOCAL_V4] + [f"ipv6.{side}=={n}" for n in (*LOCAL_V6, *prefixes)]
        return "(" + " || ".join(nets) + ")"

    return f"eth.addr=={mac} && (eth.dst.ig==1 || !(ip || ipv6) || ({local('src')} && {local('dst')}))"


def _columns(out: Path, site: str) -> dict[str, str]:
    """io,stat columns for one site: per device ALL/TX/RX/LAN, plus retransmissions and dissector checks."""
    prefixes = yaml.safe_load((out / site / "site.yaml").read_text())["local_prefixes"]
    cols = {}
    for device, mac in _macs(out, site).items():
        cols[f"{device}/ALL"] = f"eth.addr=={mac}"
        cols[f"{device}/TX"] = f"eth.src=={mac}"
        cols[f"{device}/RX"] = f"eth.dst=={mac}"
        cols[f"{device}/LAN"] = _lan_filter(mac, prefixes)
    cols["retransmissions"] = "tcp.analysis.retransmission"
    cols.update({f: f for f in DISSECTED})
    return cols


@pytest.fixture(scope="module")
def iostat(demo: tuple[Path, dict[str, Any]]) -> dict[tuple[str, str], dict[str, tuple[int, int]]]:
    """One `tshark -z io,stat,0,…` pass per capture (run in parallel): column → (frames, bytes)."""
    _need("tshark")
    out, _ = demo
    procs = {}
    for site, cap in CAPTURES:
        cols = _columns(out, site)
        assert not any("," in f for f in cols.values())
        cmd = [
            "tshark",
            "-n",
            "-r",
            str(out / site / f"{cap}.pcap"),
            "-q",
            "-z",
            "io,stat,0," + ",".join(cols.values()),
        ]
        procs[site, cap] = (
            list(cols),
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True),
        )
    result = {}
    for key, (names, proc) in procs.items():
        stdout, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        row = next(line for line in stdout.splitlines() if "<>" in line)
        numbers = [int(cell) for cell in row.split("|")[2:] if cell.strip()]
        assert len(numbers) == 2 * len(names), row
        result[key] = {name: (numbers[2 * i], numbers[2 * i + 1]) for i, name in enumerate(names)}
    return result


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout(demo: tuple[Path, dict[str, Any]]) -> None:
    out, truth = demo
    per_site = ("site.yaml", "macs.csv", "capture1.pcap", "capture2.pcap")
    expected = {"truth.json"} | {f"{site}/{name}" for site in ("home1", "home2") for name in per_site}
    assert set(_files(out)) == expected
    assert json.loads((out / "truth.json").read_text()) == truth
    for site, site_truth in truth["sites"].items():
        conf = yaml.safe_load((out / site / "site.yaml").read_text())
        assert conf["gateway_ips"] == site_truth["gateway_ips"]
        assert conf["local_prefixes"] == site_truth["local_prefixes"]
        assert set(conf["endpoint_rules"]["first_party"]) <= {
            d["vendor"] for d in site_truth["devices"].values()
        }
        macs = _macs(out, site)
        assert 5 <= len(macs) <= 6
        assert macs == {name: d["mac"] for name, d in site_truth["devices"].items()}
        assert all(re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac) for mac in macs.values())
    assert sum((out / s / f"{c}.pcap").stat().st_size for s, c in CAPTURES) < 5_000_000


def test_same_seed_gives_identical_files(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, truth = demo
    again = generate_demo(tmp_path, seed=7)
    assert again == truth
    assert _files(tmp_path) == _files(out)


def test_truth_is_self_consistent(demo: tuple[Path, dict[str, Any]]) -> None:
    _, truth = demo
    for site, cap in CAPTURES:
        capture = truth["sites"][site]["captures"][cap]
        assert 2.5 * 3600 <= capture["last_ts"] - capture["first_ts"] <= 3.5 * 3600
        assert capture["first_ts"] % 3600 != 0  # hour-aligned and first-packet-aligned intervals differ
        for device, d in capture["devices"].items():
            for profile in ("all", "passive"):
                totals, rows = d["totals"][profile], d["intervals"][profile]
                for metric in ("frames", "bytes", "tx_frames", "rx_bytes"):
                    assert totals["ALL"][metric] == totals["LAN"][metric] + totals["WAN"][metric]
                    for scope in ("ALL", "LAN", "WAN"):
                        assert sum(r[metric] for r in rows[scope]) == totals[scope][metric], (device, profile)
                # hour-aligned rows from the device's first to its last hour, the same for every scope
                starts = [r["start"] for r in rows["ALL"]]
                assert starts == list(range(int(capture["first_ts"]) // 3600 * 3600, starts[-1] + 1, 3600))
                assert all([r["start"] for r in rows[scope]] == starts for scope in ("LAN", "WAN"))
            assert d["totals"]["passive"]["ALL"]["frames"] < d["totals"]["all"]["ALL"]["frames"]
            assert sum(d["protocols"].values()) == d["totals"]["all"]["ALL"]["frames"]
            for event in d["events"]:
                assert capture["first_ts"] <= event["ts"] <= capture["last_ts"]
        devices = capture["devices"]
        # frames between two mapped devices count for both
        assert devices["hub"]["protocols"]["coap"] == devices["bulb"]["protocols"]["coap"] > 0
        assert [e["event"] for e in devices["plug"]["events"]] == ["plug_on"] * 3
        assert {e["name"] for e in devices["plug"]["endpoints"]} == {"devs.tplinkcloud.example", None}
        assert any(e["ip"].startswith("2600:") for e in devices["speaker"]["endpoints"])


def test_a_device_switched_off_for_an_hour_gets_a_zero_row(demo: tuple[Path, dict[str, Any]]) -> None:
    _, truth = demo
    rows = truth["sites"]["home1"]["captures"]["capture2"]["devices"]["tv"]["intervals"]["all"]["ALL"]
    assert [r["frames"] == 0 for r in rows] == [False, True, False, False]


def test_packet_counts_match_capinfos(demo: tuple[Path, dict[str, Any]]) -> None:
    _need("capinfos")
    out, truth = demo
    files = [str(out / site / f"{cap}.pcap") for site, cap in CAPTURES]
    report = subprocess.run(
        ["capinfos", "-c", "-M", *files], capture_output=True, text=True, check=True
    ).stdout
    counts = [int(n) for n in re.findall(r"Number of packets:\s+(\d+)", report)]
    assert counts == [truth["sites"][site]["captures"][cap]["packets"] for site, cap in CAPTURES]


@pytest.mark.parametrize(("site", "cap"), CAPTURES)
def test_device_volumes_match_tshark(
    demo: tuple[Path, dict[str, Any]],
    iostat: dict[tuple[str, str], dict[str, tuple[int, int]]],
    site: str,
    cap: str,
) -> None:
    _, truth = demo
    stat = iostat[site, cap]
    for device, d in truth["sites"][site]["captures"][cap]["devices"].items():
        got = d["totals"]["all"]
        assert stat[f"{device}/ALL"] == (got["ALL"]["frames"], got["ALL"]["bytes"]), device
        assert stat[f"{device}/TX"] == (got["ALL"]["tx_frames"], got["ALL"]["tx_bytes"]), device
        assert stat[f"{device}/RX"] == (got["ALL"]["rx_frames"], got["ALL"]["rx_bytes"]), device
        assert stat[f"{device}/LAN"] == (got["LAN"]["frames"], got["LAN"]["bytes"]), device
        assert got["LAN"]["frames"] > 0 and got["WAN"]["frames"] > 0


def test_lan_frames_match_a_display_filter(demo: tuple[Path, dict[str, Any]]) -> None:
    """The same LAN check as a plain `tshark -Y` count, for two devices that talk to each other."""
    _need("tshark")
    out, truth = demo
    prefixes = truth["sites"]["home1"]["local_prefixes"]
    for device in ("hub", "bulb"):
        mac = _macs(out, "home1")[device]
        cmd = ["tshark", "-n", "-r", str(out / "home1" / "capture1.pcap"), "-Y", _lan_filter(mac, prefixes)]
        lines = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
        assert (
            len(lines)
            == truth["sites"]["home1"]["captures"]["capture1"]["devices"][device]["totals"]["all"]["LAN"][
                "frames"
            ]
        )


@pytest.mark.parametrize(("site", "cap"), CAPTURES)
def test_tshark_flags_exactly_the_injected_retransmissions(
    demo: tuple[Path, dict[str, Any]],
    iostat: dict[tuple[str, str], dict[str, tuple[int, int]]],
    site: str,
    cap: str,
) -> None:
    _, truth = demo
    injected = truth["sites"][site]["captures"][cap]["retransmissions"]
    assert injected > 0
    assert iostat[site, cap]["retransmissions"][0] == injected


@pytest.mark.parametrize(("site", "cap"), CAPTURES)
def test_tshark_dissects_the_application_protocols(
    iostat: dict[tuple[str, str], dict[str, tuple[int, int]]], site: str, cap: str
) -> None:
    missing = [f for f in DISSECTED if iostat[site, cap][f][0] == 0]
    assert not missing


@pytest.mark.parametrize("v6", [False, True])
def test_fast_l4_framing_equals_scapy(v6: bool) -> None:
    """The TCP/UDP bulk is framed by hand for speed; it must be byte-identical to scapy's layers."""
    src_ip, dst_ip = ("fd12::1", "2600:1f18::5") if v6 else ("192.168.1.21", "52.71.18.204")
    src, dst = _Nic("50:c7:bf:00:00:01", src_ip), _Nic("c4:ad:34:00:00:01", dst_ip)
    l3 = IPv6(src=src_ip, dst=dst_ip, hlim=64) if v6 else IP(src=src_ip, dst=dst_ip, ttl=64, id=4242)
    payload = b"\x17\x03\x03\x00\x04abcde"
    tcp = TCP(sport=40001, dport=443, seq=123456, ack=654321, flags="PA", window=502)
    expected = bytes(Ether(src=src.mac, dst=dst.mac) / l3 / tcp / Raw(payload))
    head = bytes(TCP(sport=40001, dport=443, seq=123456, ack=654321, flags="PA", window=502, chksum=0))
    assert _l4_frame(src, dst, 6, head + payload, 64, 4242) == expected
    expected = bytes(Ether(src=src.mac, dst=dst.mac) / l3 / UDP(sport=5353, dport=5353) / Raw(payload))
    head = bytes(UDP(sport=5353, dport=5353, len=8 + len(payload), chksum=0))
    assert _l4_frame(src, dst, 17, head + payload, 64, 4242) == expected
