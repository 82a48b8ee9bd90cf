"""Classify a capture file from its header before any work: pcap or pcapng, link types, size.

Only the file header (and, for pcapng, the blocks before the first packet) is read, with no subprocess, so a
bad input is rejected with a one-line error before tshark runs or anything is written. tshark itself is no
judge here: 4.0 reads a text file as "MP4 media" and an empty file as an ERF capture, both with exit code 0.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from iotlake.errors import BadCaptureError

if TYPE_CHECKING:
    from iotlake.config import Device

# Link types the lake can dissect into its columns. Adding one is a line (and, without Ethernet addresses, a
# member of IP_ATTRIBUTED_LINK_TYPES).
SUPPORTED_LINK_TYPES: dict[int, str] = {
    1: "Ethernet",
    101: "raw IP",
    113: "Linux cooked",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked v2",
}

# Supported link types whose frames have no Ethernet source and destination (raw IP; Linux cooked headers name
# only the sender): their frames are attributed to devices by IP, so every device of the MAC map needs an ip.
IP_ATTRIBUTED_LINK_TYPES = frozenset({101, 113, 228, 229, 276})

# Unsupported link types whose frames carry no MAC address (null/loopback, BSD raw IP).
NO_MAC_LINK_TYPES = frozenset({0, 12, 14, 108})

# Names of common LINKTYPE_* numbers (https://www.tcpdump.org/linktypes.html), for error messages.
LINK_TYPE_NAMES: dict[int, str] = {
    0: "NULL",
    1: "ETHERNET",
    6: "IEEE802_5",
    9: "PPP",
    101: "RAW",
    104: "C_HDLC",
    105: "IEEE802_11",
    108: "LOOP",
    113: "LINUX_SLL",
    119: "IEEE802_11_PRISM",
    127: "IEEE802_11_RADIOTAP",
    163: "IEEE802_11_AVS",
    187: "BLUETOOTH_HCI_H4",
    189: "USB_LINUX",
    192: "PPI",
    195: "IEEE802_15_4_WITHFCS",
    201: "BLUETOOTH_HCI_H4_WITH_PHDR",
    215: "IEEE802_15_4_NONASK_PHY",
    220: "USB_LINUX_MMAPPED",
    228: "IPV4",
    229: "IPV6",
    230: "IEEE802_15_4_NOFCS",
    249: "USBPCAP",
    251: "BLUETOOTH_LE_LL",
    253: "NETLINK",
    256: "BLUETOOTH_LE_LL_WITH_PHDR",
    263: "NORDIC_BLE",
    276: "LINUX_SLL2",
    283: "IEEE802_15_4_TAP",
}

Format = Literal["pcap", "pcapng"]

# The first 4 bytes of a pcap file (microsecond, nanosecond or modified magic) and the byte order they imply.
_PCAP_MAGIC: dict[bytes, str] = {
    b"\xa1\xb2\xc3\xd4": ">",  # microseconds
    b"\xd4\xc3\xb2\xa1": "<",
    b"\xa1\xb2\x3c\x4d": ">",  # nanoseconds
    b"\x4d\x3c\xb2\xa1": "<",
    b"\xa1\xb2\xcd\x34": ">",  # Kuznetzov's modified pcap
    b"\x34\xcd\xb2\xa1": "<",
}
_PCAP_HEADER = 24
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_PCAPNG_IDB = 1
_PCAPNG_PACKET_BLOCKS = {2, 3, 6}  # obsolete Packet Block, Simple Packet Block, Enhanced Packet Block
_PCAPNG_MAX_BLOCKS = 100_000  # blocks scanned before the first packet; real files have a handful
_COMPRESSED = {
    b"\x1f\x8b": "gzip-compressed, decompress it first",
    b"\x28\xb5\x2f\xfd": "zstd-compressed, decompress it first",
    b"\xfd7zXZ": "xz-compressed, decompress it first",
    b"BZh": "bzip2-compressed, decompress it first",
    b"PK\x03\x04": "a zip archive, extract it first",
}


@dataclass
class CaptureProbe:
    """What the header of a capture file says: its format, link types and size."""

    path: Path
    format: Format
    link_types: list[int] = field(default_factory=list)
    size_bytes: int = 0


def link_type_label(link_type: int) -> str:
    """`LINKTYPE_ETHERNET (1)` for messages, or the bare number when it has no known name."""
    name = LINK_TYPE_NAMES.get(link_type)
    return f"LINKTYPE_{name} ({link_type})" if name else str(link_type)


def supported_label() -> str:
    """The supported link types, e.g. `Ethernet (1)`."""
    return ", ".join(f"{name} ({number})" for number, name in sorted(SUPPORTED_LINK_TYPES.items()))


def probe(path: Path, devices: Sequence[Device] | None = None) -> CaptureProbe:
    """Read the header of `path` and classify it, or raise BadCaptureError with a one-line problem.

    With the site's `devices`, also check that they can be attributed in it (see `check_attribution`).
    """
    path = Path(path)
    if not path.exists():
        raise BadCaptureError(path, "no such file")
    if path.is_dir():
        raise BadCaptureError(path, "is a directory, not a capture file")
    try:
        size = path.stat().st_size
        if size == 0:
            raise BadCaptureError(path, "empty file (0 bytes)")
        with path.open("rb") as handle:
            head = handle.read(4)
            if head in _PCAP_MAGIC:
                if size < _PCAP_HEADER:
                    raise BadCaptureError(
                        path,
                        f"header cut short: the pcap file header needs {_PCAP_HEADER} bytes, the file has {size}",
                    )
                result = CaptureProbe(path, "pcap", _pcap_link_types(path, handle, _PCAP_MAGIC[head]), size)
            elif head == _PCAPNG_SHB:
                result = CaptureProbe(path, "pcapng", _pcapng_link_types(path, handle, size), size)
            else:
                handle.seek(0)
                raise BadCaptureError(path, f"not a pcap/pcapng capture ({_describe_start(handle.read(16))})")
    except OSError as exc:
        raise BadCaptureError(path, f"cannot read: {exc.strerror or exc}") from exc
    _check_link_types(result)
    if devices is not None:
        check_attribution(result, devices)
    return result


def check_attribution(result: CaptureProbe, devices: Sequence[Device]) -> None:
    """Raise when the capture's frames have no Ethernet addresses and a device of the map has no IP.

    Such frames (raw IP, Linux cooked) are attributed by IP alone; a device without one would silently get none.
    """
    ip_only = [lt for lt in dict.fromkeys(result.link_types) if lt in IP_ATTRIBUTED_LINK_TYPES]
    missing = [d.device for d in devices if not d.ip]
    if not ip_only or not missing:
        return
    names = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    raise BadCaptureError(
        result.path,
        f"{link_type_label(ip_only[0])} frames have no Ethernet addresses, so devices are attributed by IP: "
        f"the MAC map needs an ip column with an address for {names}",
    )


def _describe_start(head: bytes) -> str:
    """A one-line hint of what a non-capture file starts with."""
    for magic, hint in _COMPRESSED.items():
        if head.startswith(magic):
            return f"starts with {magic.hex(' ')}: {hint}"
    text = head.decode("utf-8", errors="replace")
    if all(c.isprintable() or c in "\t\r\n" for c in text):
        return f"starts with text {text!r}"
    return f"starts with bytes {head.hex(' ')}"


def _read_exact(path: Path, handle: BinaryIO, count: int, what: str) -> bytes:
    data = handle.read(count)
    if len(data) < count:
        raise BadCaptureError(
            path, f"header cut short: {what} ends at byte {handle.tell()}, the end of the file"
        )
    return data


def _pcap_link_types(path: Path, handle: BinaryIO, order: str) -> list[int]:
    rest = _read_exact(path, handle, _PCAP_HEADER - 4, "the 24-byte pcap file header")
    # version major/minor (2+2), thiszone (4), sigfigs (4), snaplen (4), link type + FCS info (4)
    network = struct.unpack(order + "HHiIII", rest)[5]
    return [network & 0xFFFF]  # the upper bits carry FCS information, not the link type


def _pcapng_link_types(path: Path, handle: BinaryIO, size: int) -> list[int]:
    """Link types of every Interface Description Block before the first packet block (all sections)."""
    link_types: list[int] = []
    offset = 0
    order = "<"
    for _ in range(_PCAPNG_MAX_BLOCKS):
        handle.seek(offset)
        head = handle.read(8)
        if not head:
            break  # a section without packets: valid, if empty
        if len(head) < 8:
            raise BadCaptureError(path, f"header cut short: pcapng block at byte {offset} is incomplete")
        if head[:4] == _PCAPNG_SHB:
            magic = _read_exact(path, handle, 4, "the pcapng section header")
            if struct.unpack("<I", magic)[0] == _PCAPNG_BYTE_ORDER_MAGIC:
                order = "<"
            elif struct.unpack(">I", magic)[0] == _PCAPNG_BYTE_ORDER_MAGIC:
                order = ">"
            else:
                raise BadCaptureError(
                    path, f"corrupt pcapng section header at byte {offset} (bad byte order)"
                )
        block_type, length = struct.unpack(order + "II", head)
        if block_type in _PCAPNG_PACKET_BLOCKS:
            break
        if length < 12 or length % 4:
            raise BadCaptureError(path, f"corrupt pcapng block at byte {offset} (length {length})")
        if offset + length > size:
            raise BadCaptureError(
                path,
                f"header cut short: pcapng block at byte {offset} needs {length} bytes, {size - offset} left",
            )
        if block_type == _PCAPNG_IDB:
            body = _read_exact(path, handle, 2, "the pcapng interface description")
            link_types.append(struct.unpack(order + "H", body)[0])
        offset += length
    return link_types


def _check_link_types(result: CaptureProbe) -> None:
    unsupported = [lt for lt in dict.fromkeys(result.link_types) if lt not in SUPPORTED_LINK_TYPES]
    distinct = list(dict.fromkeys(result.link_types))
    if not unsupported and len(distinct) > 1:
        # One link type per capture keeps attribution (by MAC or by IP) and `captures.link_types` per file.
        raise BadCaptureError(
            result.path,
            f"interfaces have different link types ({', '.join(link_type_label(lt) for lt in distinct)}); "
            "split the capture by interface (one link type per file)",
        )
    if not unsupported:
        return
    supported = f"supported: {supported_label()}"
    if len(distinct) > 1:
        raise BadCaptureError(
            result.path,
            f"interfaces have different link types ({', '.join(link_type_label(lt) for lt in distinct)}); "
            f"unsupported: {', '.join(link_type_label(lt) for lt in unsupported)}; {supported}",
        )
    reason = ""
    if unsupported[0] in NO_MAC_LINK_TYPES:
        reason = ": its frames carry no MAC address, so the MAC map cannot attribute them to devices"
    raise BadCaptureError(
        result.path, f"unsupported link type {link_type_label(unsupported[0])}{reason}; {supported}"
    )
