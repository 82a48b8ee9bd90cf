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
