"""The benchmark's replicated inputs: each copy's TCP connections are new to tshark, not retransmissions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from bench.inputs import _replicate

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("tshark", "mergecap")), reason="needs tshark and mergecap"
)

T0 = 1_614_556_800
DAY_S = 86_400
FIELDS = [f"-e{f}" for f in ("frame.time_epoch", "tcp.srcport", "tcp.dstport", "tcp.analysis.retransmission")]


def _conversation() -> list:
    """A device (port 40000) sends two segments to port 443 and gets them ACKed."""
    out = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="192.168.1.20", dst="8.8.8.8")
    back = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IP(src="8.8.8.8", dst="192.168.1.20")
    packets = [
        out / TCP(sport=40000, dport=443, flags="PA", seq=100, ack=900) / (b"a" * 50),
        back / TCP(sport=443, dport=40000, flags="A", seq=900, ack=150),
        out / TCP(sport=40000, dport=443, flags="PA", seq=150, ack=900) / (b"b" * 50),
        back / TCP(sport=443, dport=40000, flags="A", seq=900, ack=200),
    ]
    for i, packet in enumerate(packets):
        packet.time = T0 + i
    return packets


def _tcp(path: Path) -> list[tuple[str, ...]]:
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=,", *FIELDS],
        capture_output=True,
        text=True,
        check=True,
    )
    return [tuple(line.split(",")) for line in out.stdout.splitlines()]


def test_copies_are_new_connections(tmp_path: Path) -> None:
    block, target = tmp_path / "block.pcap", tmp_path / "three.pcap"
    wrpcap(str(block), _conversation())

    _replicate(block, target, copies=3, step_s=8 * DAY_S)

    rows = _tcp(target)
    assert len(rows) == 12
    # copy k starts 8·k days later; its device port 40000 moved by k·7919 within 32768..65535; 443 stays
    starts = [int(float(rows[4 * k][0])) for k in range(3)]
    assert starts == [T0, T0 + 8 * DAY_S, T0 + 16 * DAY_S]
    ports = [sorted({(r[1], r[2]) for r in rows[4 * k : 4 * k + 4]}) for k in range(3)]
    assert ports == [
        [("40000", "443"), ("443", "40000")],
        [("443", "47919"), ("47919", "443")],
        [("443", "55838"), ("55838", "443")],
    ]
    assert [r[3] for r in rows] == [""] * 12  # tshark sees no retransmission

    # the same copies with their ports kept: tshark flags every data segment of copies 1 and 2
    same = tmp_path / "same.pcap"
    subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", str(same), str(block), str(block)], check=True)
    assert [r[3] for r in _tcp(same)] == [""] * 4 + ["1", "", "1", ""]
