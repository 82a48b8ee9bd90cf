"""probe(): pcap/pcapng headers in both byte orders, and one-line errors for everything that is not ingestible."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import CookedLinux, Ether
from scapy.utils import PcapWriter, wrpcap, wrpcapng

from iotlake.capture.probe import SUPPORTED_LINK_TYPES, CaptureProbe, probe
from iotlake.errors import BadCaptureError


def _packets(count: int = 3) -> list:
    packets = [
        Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000 + i, dport=53) for i in range(count)
    ]
    for i, packet in enumerate(packets):
        packet.time = 1_700_000_000 + i
    return packets


def _block(order: str, block_type: int, body: bytes) -> bytes:
    """One pcapng block: type, total length, body (padded to 4 bytes), total length again."""
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def _pcapng(order: str, link_types: list[int], packets: int = 1) -> bytes:
    """A minimal pcapng: a section header, one IDB per link type, and `packets` enhanced packet blocks."""
    shb = _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    idbs = b"".join(_block(order, 1, struct.pack(order + "HHI", lt, 0, 65535)) for lt in link_types)
    payload = bytes(_packets(1)[0])
    epb = _block(order, 6, struct.pack(order + "IIIII", 0, 0, 0, len(payload), len(payload)) + payload)
    return shb + idbs + epb * packets


def _error(path: Path) -> str:
    with pytest.raises(BadCaptureError) as info:
        probe(path)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    assert info.value.where == str(path)
    return info.value.problem


def test_supported_link_types_are_ethernet_raw_ip_and_linux_cooked() -> None:
    assert set(SUPPORTED_LINK_TYPES) == {1, 101, 113, 228, 229, 276}


def test_pcap_little_endian(tmp_path: Path) -> None:
    path = tmp_path / "le.pcap"
    wrpcap(str(path), _packets())
    assert probe(path) == CaptureProbe(path, "pcap", [1], path.stat().st_size)


def test_pcap_big_endian(tmp_path: Path) -> None:
    path = tmp_path / "be.pcap"
    with PcapWriter(str(path), endianness=">", sync=True) as writer:
        writer.write(_packets())
    assert path.read_bytes()[:4] == b"\xa1\xb2\xc3\xd4"
    assert probe(path).link_types == [1]


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcap_nanosecond_magic(tmp_path: Path, order: str) -> None:
    path = tmp_path / "ns.pcap"
    with PcapWriter(str(path), nano=True, endianness=order, sync=True) as writer:
        writer.write(_packets())
    assert struct.unpack(order + "I", path.read_bytes()[:4])[0] == 0xA1B23C4D
    result = probe(path)
    assert (result.format, result.link_types) == ("pcap", [1])


def test_pcapng_from_scapy(tmp_path: Path) -> None:
    path = tmp_path / "capture.pcapng"
    wrpcapng(str(path), _packets())
    result = probe(path)
    assert (result.format, result.link_types, result.size_bytes) == ("pcapng", [1], path.stat().st_size)


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_both_byte_orders_and_every_interface(tmp_path: Path, order: str) -> None:
    path = tmp_path / "two-eth.pcapng"
    path.write_bytes(_pcapng(order, [1, 1]))
    assert probe(path).link_types == [1, 1]


def test_pcapng_without_packets_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "empty-section.pcapng"
    path.write_bytes(_pcapng("<", [1], packets=0))
    assert probe(path).link_types == [1]


def test_missing_file(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.pcap") == "no such file"


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.pcap"
    folder.mkdir()
    assert "directory" in _error(folder)


def test_text_file_named_pcap(tmp_path: Path) -> None:
    path = tmp_path / "notes.pcap"
    path.write_text("hello, this is not a capture\nsecond line\n")
    problem = _error(path)
    assert problem.startswith("not a pcap/pcapng capture (starts with")
    assert "hello" in problem


def test_gzipped_capture_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "capture.pcap.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 20)
    assert "gzip" in _error(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.touch()
    assert _error(path) == "empty file (0 bytes)"


def test_ten_byte_pcap_is_cut_short(tmp_path: Path) -> None:
    full = tmp_path / "full.pcap"
    wrpcap(str(full), _packets())
    path = tmp_path / "ten.pcap"
    path.write_bytes(full.read_bytes()[:10])
    problem = _error(path)
    assert problem.startswith("header cut short")
    assert "10" in problem


def test_pcapng_cut_inside_an_interface_block(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcapng"
    path.write_bytes(_pcapng("<", [1])[:40])
    assert _error(path).startswith("header cut short")


def test_linux_cooked_is_supported(tmp_path: Path) -> None:
    path = tmp_path / "cooked.pcap"
    wrpcap(str(path), [CookedLinux() / IP() / UDP()], linktype=113)
    assert probe(path).link_types == [113]


def test_unknown_link_type_number(tmp_path: Path) -> None:
    path = tmp_path / "odd.pcapng"
    path.write_bytes(_pcapng(">", [4242]))
    assert _error(path).startswith("unsupported link type 4242")


def test_pcapng_interfaces_with_different_link_types(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(_pcapng("<", [1, 113]))
    problem = _error(path)
    assert "different link types" in problem
    assert "LINKTYPE_ETHERNET (1)" in problem
    assert "LINKTYPE_LINUX_SLL (113)" in problem
    assert "one link type per file" in problem
