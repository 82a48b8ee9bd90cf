"""Benchmark inputs: one ~10 MB block of ten devices, replicated in time to ~100 MB and ~1 GB.

The block merges, on one common start time, the four demo captures (`generate_demo`) and four real captures
from `../shared/data` (the three labeled-iot week-long captures and pingpong's `wlan1.local.dns.pcap`). Device
MACs are rewritten so exactly ten devices appear: the demo's second site maps its five devices onto the first
site's kinds, and each real capture brings one device. Larger inputs are copies of the block shifted by a whole
number of days and concatenated (`mergecap -a`), so the file grows while the device set stays. Each copy also
maps TCP ports from 32768 up onto other ports of that range, so its connections are new ones to tshark: a
copy of a segment is not a retransmission of the segment eight days earlier, as it would be with the same
ports and sequence numbers.

The block and its copies are rewritten by a streaming pcap reader/writer (never scapy), the copies two at a
time in worker processes; mergecap concatenates them. Everything lands in `bench/work/`.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from iotlake.capture.demo import generate_demo

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LABELED = SHARED_DATA / "labeled-iot-captures"
PINGPONG = SHARED_DATA / "pingpong" / "wlan1.local.dns.pcap"

# Every seed capture is shifted to start here (2021-03-01T00:00:00Z, near the labeled captures' own dates).
BLOCK_START_S = 1_614_556_800
DAY_S = 86_400
# Bump when the way inputs are built changes, so stale files under bench/work are rebuilt.
INPUT_VERSION = 2

# Named sizes: how many copies of the block each input holds.
SIZES: dict[str, int] = {"10MB": 1, "100MB": 10, "1GB": 100}

# The ten devices of every benchmark input: locally administered MACs, one per device.
DEVICES: tuple[str, ...] = (
    "plug",
    "camera",
    "speaker",
    "hub",
    "bulb",
    "tv",
    "blink-cam",
    "lockly-hub",
    "schlage-lock",
    "tplink-plug",
)
# Real captures and the MAC of their one device (the labeled captures' devices.csv; the plug of wlan1).
REAL_SEEDS: dict[str, tuple[Path, str]] = {
    "blink-cam": (LABELED / "blink-cam-01.pcap", "f4:b8:5e:ff:2b:1b"),
    "lockly-hub": (LABELED / "lockly-hub-01.pcap", "24:6f:28:d9:a7:64"),
    "schlage-lock": (LABELED / "schlage-lock-01.pcap", "78:db:2f:db:43:48"),
    "tplink-plug": (PINGPONG, "50:c7:bf:33:1f:09"),
}
# Gateways of the real captures' home networks (192.168.1.1 in both sources).
REAL_GATEWAYS: tuple[str, ...] = ("192.168.1.1",)

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": "<",  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": ">",
    b"\x4d\x3c\xb2\xa1": "<",  # nanoseconds
    b"\xa1\xb2\x3c\x4d": ">",
}
_NANO_MAGIC = {b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}


def bench_mac(index: int) -> str:
    """The MAC of benchmark device `index` (locally administered, unicast)."""
    return f"02:1b:e4:00:00:{index:02x}"


@dataclass(frozen=True)
class BenchInput:
    """One benchmark input: the capture, its MAC map and site config, and its size."""

    name: str
    pcap: Path
    macs: Path
    site: Path
    bytes: int
    packets: int
    devices: dict[str, str]
    gateway_ips: tuple[str, ...]
    local_prefixes: tuple[str, ...]


def _records(path: Path) -> Iterator[tuple[int, int, int, bytes]]:
    """Stream (seconds, sub-seconds in µs, original length, data) from a classic pcap file."""
    with path.open("rb") as fh:
        header = fh.read(24)
        magic = header[:4]
        if magic not in _PCAP_MAGIC:
            raise ValueError(f"{path}: not a classic pcap file (magic {magic.hex()})")
        order = _PCAP_MAGIC[magic]
        nano = magic in _NANO_MAGIC
        record = struct.Struct(order + "IIII")
        while head := fh.read(16):
            if len(head) < 16:
                return
            sec, sub, incl, orig = record.unpack(head)
            data = fh.read(incl)
            if len(data) < incl:
                return
            yield sec, sub // 1000 if nano else sub, orig, data


# TCP ports from EPHEMERAL_PORTS up move by PORT_STEP (odd, so no two copies of a port coincide) per copy.
EPHEMERAL_PORTS = 32_768
PORT_STEP = 7_919


def _tcp_port_offset(data: bytes) -> int | None:
    """Where the TCP header of an Ethernet frame starts (IPv4 first fragment or IPv6 without extension headers)."""
    offset, ethertype = 14, int.from_bytes(data[12:14], "big")
    if ethertype == 0x8100:  # one VLAN tag
        offset, ethertype = 18, int.from_bytes(data[16:18], "big")
    if ethertype == 0x0800 and len(data) >= offset + 20:
        fragment = int.from_bytes(data[offset + 6 : offset + 8], "big") & 0x1FFF
        if data[offset + 9] == 6 and fragment == 0:
            return offset + (data[offset] & 0x0F) * 4
    elif ethertype == 0x86DD and len(data) >= offset + 40 and data[offset + 6] == 6:
        return offset + 40
    return None


def _shift_ports(data: bytes, copy: int) -> bytes:
    """The frame with its TCP ports >= EPHEMERAL_PORTS moved by `copy`·PORT_STEP within that range."""
    at = _tcp_port_offset(data)
    if at is None or len(data) < at + 4:
        return data
    ports = []
    for port in struct.unpack_from(">HH", data, at):
        if port >= EPHEMERAL_PORTS:
            port = EPHEMERAL_PORTS + (port - EPHEMERAL_PORTS + copy * PORT_STEP) % EPHEMERAL_PORTS
        ports.append(port)
    return data[:at] + struct.pack(">HH", *ports) + data[at + 4 :]


def rewrite_pcap(
    source: Path, target: Path, shift_us: int, macs: dict[str, str] | None = None, copy: int = 0
) -> int:
    """Copy a classic pcap to `target` (µs, little-endian, Ethernet), timestamps shifted, MACs replaced.

    A MAC is replaced wherever its six bytes occur in a frame (Ethernet header, ARP, DHCP chaddr), so devices
    keep their identity in every protocol the lake reads; copy k > 0 has its TCP ports shifted (`_shift_ports`;
    checksums are left as they are, tshark does not verify them). Returns the packets written.
    """
    pairs = [
        (bytes.fromhex(a.replace(":", "")), bytes.fromhex(b.replace(":", "")))
        for a, b in (macs or {}).items()
    ]
    record = struct.Struct("<IIII")
    count = 0
    with target.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262_144, 1))
        for sec, usec, orig, data in _records(source):
            for old, new in pairs:
                if old in data:
                    data = data.replace(old, new)
            if copy:
                data = _shift_ports(data, copy)
            ts = sec * 1_000_000 + usec + shift_us
            out.write(record.pack(ts // 1_000_000, ts % 1_000_000, len(data), orig))
            out.write(data)
            count += 1
    return count


def _first_ts_us(path: Path) -> int:
    for sec, usec, _, _ in _records(path):
        return sec * 1_000_000 + usec
    raise ValueError(f"{path}: no packets")


def _last_ts_us(path: Path) -> int:
    last = None
    for sec, usec, _, _ in _records(path):
        last = sec * 1_000_000 + usec
    if last is None:
        raise ValueError(f"{path}: no packets")
    return last


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed (exit {result.returncode}): {result.stderr.strip()}")


def _count_packets(path: Path) -> int:
    return sum(1 for _ in _records(path))


def build_block(work: Path) -> tuple[Path, int, dict[str, str], list[str], list[str]]:
    """The 10 MB block: seeds rewritten onto ten devices and one start time, merged in time order.

    Returns the block, its span in whole days, the device MACs, the gateway IPs and the local prefixes.
    """
    seeds = work / "seeds"
    demo_dir = seeds / "demo"
    if not (demo_dir / "truth.json").exists():
        generate_demo(demo_dir)
    devices = {name: bench_mac(i) for i, name in enumerate(DEVICES)}
    gateways: list[str] = list(REAL_GATEWAYS)
    prefixes: list[str] = []
    jobs: list[tuple[Path, dict[str, str]]] = []
    for site_dir in sorted(p for p in demo_dir.iterdir() if p.is_dir()):
        with (site_dir / "macs.csv").open(encoding="utf-8") as fh:
            rows = [line.strip().split(",") for line in fh.readlines()[1:] if line.strip()]
        mapping = {mac: devices[name] for name, mac, *_ in rows}
        site_conf = yaml.safe_load((site_dir / "site.yaml").read_text(encoding="utf-8"))
        gateways += [ip for ip in site_conf["gateway_ips"] if ip not in gateways]
        prefixes += site_conf["local_prefixes"]
        jobs += [(pcap, mapping) for pcap in sorted(site_dir.glob("*.pcap"))]
    for name, (pcap, mac) in REAL_SEEDS.items():
        if not pcap.exists():
            raise FileNotFoundError(f"{pcap}: the real captures of ../shared/data are needed for the inputs")
        jobs.append((pcap, {mac: devices[name]}))
    parts = []
    span_us = 0
    for i, (pcap, mapping) in enumerate(jobs):
        part = seeds / f"part-{i:02d}.pcap"
        first = _first_ts_us(pcap)
        rewrite_pcap(pcap, part, BLOCK_START_S * 1_000_000 - first, mapping)
        span_us = max(span_us, _last_ts_us(pcap) - first)
        parts.append(part)
    block = work / "block.pcap"
    _run(["mergecap", "-F", "pcap", "-w", str(block), *map(str, parts)])
    for part in parts:
        part.unlink()
    span_days = math.floor(span_us / 1_000_000 / DAY_S) + 1
    return block, span_days, devices, gateways, prefixes


def build_inputs(work: Path, sizes: list[str]) -> dict[str, BenchInput]:
    """Build (or reuse) the inputs of the named sizes under `work`; returns them by size name."""
    work.mkdir(parents=True, exist_ok=True)
    meta_file = work / "inputs.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    block = work / "block.pcap"
    if meta.get("version") != INPUT_VERSION or not block.exists():
        shutil.rmtree(work / "seeds", ignore_errors=True)
        block, span_days, devices, gateways, prefixes = build_block(work)
        meta = {
            "version": INPUT_VERSION,
            "span_days": span_days,
            "devices": devices,
            "gateway_ips": gateways,
            "local_prefixes": prefixes,
            "sizes": {},
        }
        meta_file.write_text(json.dumps(meta, indent=2))
    devices = meta["devices"]
    macs = work / "macs.csv"
    macs.write_text("device,mac\n" + "".join(f"{n},{m}\n" for n, m in devices.items()), encoding="utf-8")
    site = work / "site.yaml"
    site.write_text(
        yaml.safe_dump({"gateway_ips": meta["gateway_ips"], "local_prefixes": meta["local_prefixes"]}),
        encoding="utf-8",
    )
    result: dict[str, BenchInput] = {}
    for size in sizes:
        copies = SIZES[size]
        pcap = work / f"bench-{size}.pcap"
        known = meta["sizes"].get(size)
        if not (pcap.exists() and known and known["bytes"] == pcap.stat().st_size):
            _replicate(block, pcap, copies, meta["span_days"] * DAY_S)
            known = {"bytes": pcap.stat().st_size, "packets": _count_packets(pcap)}
            meta["sizes"][size] = known
            meta_file.write_text(json.dumps(meta, indent=2))
        result[size] = BenchInput(
            name=size,
            pcap=pcap,
            macs=macs,
            site=site,
            bytes=known["bytes"],
            packets=known["packets"],
            devices=dict(devices),
            gateway_ips=tuple(meta["gateway_ips"]),
            local_prefixes=tuple(meta["local_prefixes"]),
        )
    return result


def _replicate(block: Path, target: Path, copies: int, step_s: int) -> None:
    """`copies` copies of the block, copy k shifted by k·step_s and its TCP ports moved, concatenated."""
    if copies == 1:
        shutil.copyfile(block, target)
        return
    tmp = target.parent / f".{target.stem}-copies"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    parts = [tmp / f"copy-{k:04d}.pcap" for k in range(copies)]
    try:
        with ProcessPoolExecutor(2) as pool:
            jobs = [
                pool.submit(rewrite_pcap, block, part, k * step_s * 1_000_000, None, k)
                for k, part in enumerate(parts)
            ]
            for job in jobs:
                job.result()
        _run(["mergecap", "-a", "-F", "pcap", "-w", str(target), *map(str, parts)])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
