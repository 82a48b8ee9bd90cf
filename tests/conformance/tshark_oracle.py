"""Independent oracles computed with tshark's own statistics, never with iotlake code."""

from __future__ import annotations

import subprocess
from pathlib import Path


def capinfos_packets(path: Path) -> int:
    """Packet count as capinfos reports it."""
    out = subprocess.run(
        ["capinfos", "-M", "-c", "-T", "-r", str(path)], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip().split("\t")[-1])


def ethernet_endpoints(path: Path, display_filter: str | None = None) -> dict[str, dict[str, int]]:
    """`tshark -z endpoints,eth`: per MAC, frames and bytes in total, sent (tx) and received (rx)."""
    stat = "endpoints,eth" + (f",{display_filter}" if display_filter else "")
    out = subprocess.run(
        ["tshark", "-n", "-q", "-r", str(path), "-z", stat], capture_output=True, text=True, check=True
    ).stdout
    table: dict[str, dict[str, int]] = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) == 7 and cells[0].count(":") == 5:
            frames, size, tx_frames, tx_bytes, rx_frames, rx_bytes = map(int, cells[1:])
            table[cells[0]] = {
                "frames": frames,
                "bytes": size,
                "tx_frames": tx_frames,
                "tx_bytes": tx_bytes,
                "rx_frames": rx_frames,
                "rx_bytes": rx_bytes,
            }
    return table


def frames_matching(path: Path, display_filter: str) -> int:
    """Frames of the capture that match a display filter, counted from `tshark -Y`."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return len(out.split())


def is_group(mac: str) -> bool:
    """True for a multicast or broadcast MAC."""
    return int(mac[:2], 16) & 1 == 1


# Local ranges of DESIGN §6 (conf/iotlake.yaml defaults) as display filters. Written as chains of `==` rather
# than `in {…}` sets, whose elements tshark 4 separates with commas, which io,stat reads as column breaks.
LOCAL4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255")
LOCAL6 = ("fe80::/10", "fc00::/7", "ff00::/8")


def _local(side: str) -> str:
    clauses = [f"ip.{side} == {p}" for p in LOCAL4] + [f"ipv6.{side} == {p}" for p in LOCAL6]
    return "(" + " || ".join(clauses) + ")"


LAN = f"(eth.dst.ig == 1 || !(ip || ipv6) || ({_local('src')} && {_local('dst')}))"
# The passive profile of the reference (passive-mode-study §2.2), for a site without gateway IPs.
PASSIVE = (
    "((ip || ipv6) && !tcp.analysis.retransmission && !tcp.analysis.duplicate_ack"
    " && !tcp.analysis.ack_lost_segment && !dhcp && !dhcpv6 && !icmp && !icmpv6 && !igmp && !dns)"
)


def io_stat(path: Path, interval_s: int, filters: list[str]) -> dict[int, list[tuple[int, int]]]:
    """`tshark -z io,stat`: per interval start (seconds from the first frame), (frames, bytes) per filter.

    The filters go into one comma-separated argument, so they must not contain commas themselves.
    """
    stat = ",".join([f"io,stat,{interval_s}", *filters])
    out = subprocess.run(
        ["tshark", "-n", "-q", "-r", str(path), "-z", stat], capture_output=True, text=True, check=True
    ).stdout
    rows: dict[int, list[tuple[int, int]]] = {}
    for line in out.splitlines():
        if "<>" not in line:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        start = int(float(cells[0].split("<>")[0]))
        numbers = [int(c) for c in cells[1:]]
        rows[start] = list(zip(numbers[0::2], numbers[1::2], strict=True))
    return rows


def device_io_stat(path: Path, mac: str, profile_filter: str, interval_s: int = 3600) -> dict:
    """Per scope (ALL, LAN, WAN) and interval start: the six volume metrics of one MAC, from one tshark pass."""
    scopes = {"ALL": "frame", "LAN": LAN, "WAN": f"!{LAN}"}
    filters = []
    for scope_filter in scopes.values():
        base = f"({profile_filter}) && ({scope_filter})"
        filters += [
            f"eth.addr == {mac} && {base}",
            f"eth.src == {mac} && {base}",
            f"eth.dst == {mac} && !(eth.src == {mac}) && {base}",
        ]
    table = io_stat(path, interval_s, filters)
    result: dict[str, dict[int, tuple[int, ...]]] = {}
    for index, scope in enumerate(scopes):
        result[scope] = {
            start: tuple(v for pair in cells[3 * index : 3 * index + 3] for v in pair)
            for start, cells in table.items()
        }
    return result
