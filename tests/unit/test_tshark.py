"""The tshark export, editcap chunking and extraction as Spark tasks, on tiny scapy-built captures."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import struct
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import wrpcap, wrpcapng

from iotlake.capture.extract import CaptureSpec, extract_captures, landing_dir
from iotlake.capture.fields import COLUMNS, FIELDS
from iotlake.capture.tshark import (
    export_chunk,
    export_fields,
    is_truncation,
    sha256_file,
    split_capture,
    tshark_version,
)
from iotlake.errors import BadCaptureError, IotlakeError
from iotlake.lake.bronze import read_landing

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("tshark", "editcap", "gzip")),
    reason="needs tshark and editcap",
)

MAC_A, MAC_B = "aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"
T0 = 1_700_000_000


def _known_packets() -> list:
    """A TCP SYN, a DNS query and its two-answer response, a UDP datagram and an ARP request."""
    packets = [
        Ether(src=MAC_A, dst=MAC_B)
        / IP(src="10.0.0.1", dst="10.0.0.2", ttl=63)
        / TCP(sport=40000, dport=443, flags="S"),
        Ether(src=MAC_A, dst=MAC_B)
        / IP(src="10.0.0.1", dst="10.0.0.53")
        / UDP(sport=5000, dport=53)
        / DNS(id=0x1234, rd=1, qd=DNSQR(qname="cloud.example.com")),
        Ether(src=MAC_B, dst=MAC_A)
        / IP(src="10.0.0.53", dst="10.0.0.1")
        / UDP(sport=53, dport=5000)
        / DNS(
            id=0x1234,
            qr=1,
            qd=DNSQR(qname="cloud.example.com"),
            an=[
                DNSRR(rrname="cloud.example.com", rdata="1.2.3.4", ttl=60),
                DNSRR(rrname="cloud.example.com", rdata="5.6.7.8", ttl=30),
            ],
        ),
        Ether(src=MAC_A, dst=MAC_B)
        / IP(src="10.0.0.1", dst="10.0.0.9")
        / UDP(sport=6000, dport=7000)
        / (b"x" * 10),
        Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=MAC_A, psrc="10.0.0.1", pdst="10.0.0.2"),
    ]
    for i, packet in enumerate(packets):
        packet.time = T0 + i / 4
    return packets


def _many_packets(count: int) -> list:
    packets = [
        Ether(src=MAC_A, dst=MAC_B)
        / IP(src=f"10.0.{i // 200}.{i % 200 + 1}", dst="10.1.0.1")
        / (TCP(sport=30000 + i, dport=443, flags="S") if i % 3 == 0 else UDP(sport=30000 + i, dport=123))
        / (b"p" * (i % 17))
        for i in range(count)
    ]
    for i, packet in enumerate(packets):
        packet.time = T0 + i * 0.001
    return packets


def _rows(gz_file: Path) -> list[dict[str, str]]:
    """The landing TSV as dicts keyed by bronze column name (header checked against the catalog)."""
    lines = gzip.decompress(gz_file.read_bytes()).decode().splitlines()
    assert lines[0].split("\t") == [f.tshark for f in FIELDS]
    return [dict(zip(COLUMNS, line.split("\t"), strict=True)) for line in lines[1:]]


def _pick(row: dict[str, str], columns: str) -> tuple[str, ...]:
    return tuple(row[column] for column in columns.split())


@pytest.fixture
def known_capture(tmp_path: Path) -> Path:
    path = tmp_path / "known.pcap"
    wrpcap(str(path), _known_packets())
    return path


def test_tshark_version() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", tshark_version())


def test_sha256_file(known_capture: Path) -> None:
    assert sha256_file(known_capture) == hashlib.sha256(known_capture.read_bytes()).hexdigest()


def test_export_known_fields(known_capture: Path, tmp_path: Path) -> None:
    out = tmp_path / "land" / "part-00000.tsv.gz"
    result = export_fields(known_capture, out)
    assert (result.out_file, result.warnings, result.truncated, result.returncode) == (out, [], False, 0)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left behind
    rows = _rows(out)
    assert [r["frame_no"] for r in rows] == ["1", "2", "3", "4", "5"]
    syn, query, response, datagram, arp = rows
    assert syn["ts"] == f"{T0}.000000000"
    assert (syn["eth_src"], syn["eth_dst"], syn["eth_type"]) == (MAC_A, MAC_B, "0x0800")
    assert _pick(syn, "ip_src ip_dst ip_proto ip_ttl") == ("10.0.0.1", "10.0.0.2", "6", "63")
    assert (syn["tcp_srcport"], syn["tcp_dstport"], syn["tcp_flags"]) == ("40000", "443", "0x0002")
    assert syn["udp_srcport"] == ""
    assert syn["protocols"] == "eth:ethertype:ip:tcp"
    assert _pick(query, "dns_id dns_response dns_qry_name") == ("0x1234", "0", "cloud.example.com")
    assert (query["udp_srcport"], query["udp_dstport"], query["protocol"]) == ("5000", "53", "DNS")
    assert response["dns_response"] == "1"
    assert response["dns_a"] == "1.2.3.4,5.6.7.8"
    assert response["dns_resp_ttl"] == "60,30"
    assert response["ts"] == f"{T0}.500000000"
    assert (datagram["udp_dstport"], datagram["frame_len"]) == ("7000", str(len(_known_packets()[3])))
    assert (arp["arp_opcode"], arp["arp_src_mac"], arp["arp_dst_ip"]) == ("1", MAC_A, "10.0.0.2")


def test_truncated_capture_keeps_complete_packets(known_capture: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(known_capture.read_bytes()[:-5])  # the last packet loses its tail
    result = export_fields(cut, tmp_path / "cut.tsv.gz")
    assert result.truncated is True
    assert result.returncode != 0  # tshark 4.0 exits 2, yet wrote every complete packet
    assert len(result.warnings) == 1 and "cut short" in result.warnings[0]
    assert str(cut) in result.warnings[0]
    assert [r["frame_no"] for r in _rows(result.out_file)] == ["1", "2", "3", "4"]


def test_truncation_is_reported_under_the_source_name(known_capture: Path, tmp_path: Path) -> None:
    cut = tmp_path / "chunk_00003.pcap"
    cut.write_bytes(known_capture.read_bytes()[:-5])
    result = export_fields(cut, tmp_path / "cut.tsv.gz", source="/data/original.pcap")
    assert result.warnings == [
        'The file "/data/original.pcap" appears to have been cut short in the middle of a packet.'
    ]
    assert is_truncation(result.warnings[0])


def test_unreadable_file_is_one_line_error_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.pcap"
    bad.write_bytes(bytes(range(256)))
    out = tmp_path / "out" / "part-00000.tsv.gz"
    with pytest.raises(BadCaptureError) as info:
        export_fields(bad, out)
    assert "\n" not in str(info.value)
    assert info.value.where == str(bad)
    assert "tshark failed" in info.value.problem
    assert list(out.parent.iterdir()) == []


def _damage(capture: Path, packet: int) -> bytes:
    """The pcap bytes with record `packet` (0-based) claiming a 10 MB length: "damaged or corrupt" to tshark."""
    data = bytearray(capture.read_bytes())
    offset = 24
    for _ in range(packet):
        offset += 16 + struct.unpack("<I", data[offset + 8 : offset + 12])[0]
    data[offset + 8 : offset + 16] = struct.pack("<II", 10**7, 10**7)
    return bytes(data)


def test_damaged_record_keeps_the_rows_before_it(known_capture: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(_damage(known_capture, 3))
    result = export_fields(damaged, tmp_path / "damaged.tsv.gz")
    assert (result.truncated, result.returncode) == (True, 2)
    [warning] = result.warnings  # tshark's two stderr lines, joined
    assert "damaged or corrupt. (pcap: File has 10000000-byte packet" in warning
    assert [r["frame_no"] for r in _rows(result.out_file)] == ["1", "2", "3"]


def test_damaged_first_record_is_an_error(known_capture: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(_damage(known_capture, 0))
    with pytest.raises(BadCaptureError, match="damaged or corrupt"):
        export_fields(damaged, tmp_path / "damaged.tsv.gz")
    # editcap writes nothing to split (and exits 0): the original is the one chunk, and tshark judges it
    [chunk] = split_capture(damaged, tmp_path / "work", chunk_packets=2)
    assert (chunk.path, chunk.warnings) == (damaged, ())


def test_chunks_match_the_unsplit_export(tmp_path: Path) -> None:
    capture = tmp_path / "fifty.pcap"
    wrpcap(str(capture), _many_packets(50))
    chunks = split_capture(capture, tmp_path / "work", chunk_packets=20)
    assert [(c.index, c.frame_offset) for c in chunks] == [(0, 0), (1, 20), (2, 40)]
    assert all(c.path.exists() and c.path != capture and not c.warnings for c in chunks)

    keys = "frame_no ts frame_len eth_src eth_dst ip_src ip_dst tcp_srcport udp_srcport"
    whole = [_pick(row, keys) for row in _rows(export_fields(capture, tmp_path / "whole.tsv.gz").out_file)]
    pieces = []
    for chunk in chunks:
        for row in _rows(export_fields(chunk.path, tmp_path / f"part-{chunk.index}.tsv.gz").out_file):
            row["frame_no"] = str(int(row["frame_no"]) + chunk.frame_offset)
            pieces.append(_pick(row, keys))
    assert len(whole) == 50
    assert pieces == whole


def _tcp_across_boundary() -> list:
    """40 frames: a TCP segment (frame 15) retransmitted in frame 25, a server ACK (17) duplicated in 19 and 22;
    UDP filler between them. Split at 20 frames, frames 22 and 25 need the state of the first chunk."""
    client = Ether(src=MAC_A, dst=MAC_B) / IP(src="10.0.0.1", dst="10.1.0.1")
    server = Ether(src=MAC_B, dst=MAC_A) / IP(src="10.1.0.1", dst="10.0.0.1")
    special = {
        15: client / TCP(sport=40000, dport=443, flags="PA", seq=1000, ack=5000, window=500) / (b"d" * 100),
        17: server / TCP(sport=443, dport=40000, flags="A", seq=5000, ack=1000, window=700),
        19: server / TCP(sport=443, dport=40000, flags="A", seq=5000, ack=1000, window=700),
        22: server / TCP(sport=443, dport=40000, flags="A", seq=5000, ack=1000, window=700),
        25: client / TCP(sport=40000, dport=443, flags="PA", seq=1000, ack=5000, window=500) / (b"d" * 100),
    }
    packets = [special.get(n, client / UDP(sport=6000 + n, dport=7000) / (b"u" * n)) for n in range(1, 41)]
    for i, packet in enumerate(packets):
        packet.time = T0 + i * 0.5
    return packets


def _chunked_rows(chunks, tmp_path: Path, keys: str) -> list[tuple[str, ...]]:
    """The chunks' exports with capture frame numbers, as the bronze reader computes them."""
    rows = []
    for chunk in chunks:
        for row in _rows(export_chunk(chunk, tmp_path / f"part-{chunk.index}.tsv.gz").out_file):
            row["frame_no"] = str(int(row["frame_no"]) + chunk.frame_offset - len(chunk.lead))
            rows.append(_pick(row, keys))
    return rows


def test_chunk_lead_in_keeps_tcp_analysis_of_one_pass(tmp_path: Path) -> None:
    capture = tmp_path / "tcp.pcap"
    wrpcap(str(capture), _tcp_across_boundary())
    keys = "frame_no ts frame_len tcp_retransmission tcp_duplicate_ack tcp_ack_lost_segment udp_srcport"
    whole = [_pick(r, keys) for r in _rows(export_fields(capture, tmp_path / "whole.tsv.gz").out_file)]
    flagged = {int(r[0]): (bool(r[3]), bool(r[4])) for r in whole if r[3] or r[4]}
    assert flagged == {19: (False, True), 22: (False, True), 25: (True, False)}  # as the capture was built

    chunks = split_capture(capture, tmp_path / "lead", chunk_packets=20, lead_in=8)
    assert [(c.frame_offset, c.lead, c.previous) for c in chunks] == [
        (0, range(0), None),
        (20, range(13, 21), chunks[0].path),
    ]
    assert _chunked_rows(chunks, tmp_path, keys) == whole

    # Without a lead-in the second chunk starts tshark's analysis afresh: frames 22 and 25 lose their flags.
    bare = _chunked_rows(split_capture(capture, tmp_path / "bare", chunk_packets=20), tmp_path, keys)
    assert [frame for frame, *_ in whole if (frame, *_) not in bare] == ["22", "25"]


def test_small_file_is_its_own_chunk(known_capture: Path, tmp_path: Path) -> None:
    chunks = split_capture(known_capture, tmp_path / "work", 20, chunk_bytes=known_capture.stat().st_size)
    assert [(c.path, c.index, c.frame_offset) for c in chunks] == [(known_capture, 0, 0)]
    assert not (tmp_path / "work").exists()


def test_splitting_a_cut_capture_flags_the_last_chunk(known_capture: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(known_capture.read_bytes()[:-5])
    chunks = split_capture(cut, tmp_path / "work", chunk_packets=3)  # editcap exits 0 but says "cut short"
    assert [(c.frame_offset, c.truncated) for c in chunks] == [(0, False), (3, True)]
    assert "cut short" in chunks[-1].warnings[0]


# ---------------------------------------------------------------------------------------------- Spark


def test_extract_captures(spark, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    large, small, cut = (inputs / name for name in ("l.pcapng", "s.pcap", "cut.pcap"))
    wrpcapng(str(large), _many_packets(50))
    wrpcap(str(small), _known_packets())
    cut.write_bytes(small.read_bytes()[:-5])  # (a split capture's cut is reported by editcap: tested above)
    specs = [CaptureSpec("ds", "home", p.stem, p) for p in (large, small, cut)]
    landing = tmp_path / "landing"
    stale = landing_dir(landing, specs[1]) / "part-00009.tsv.gz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    chunk_bytes = small.stat().st_size + 1  # split the large capture only

    extracts = extract_captures(
        spark, specs, landing, chunk_bytes, chunk_packets=20, progress=True, lead_in=5
    )

    assert [e.capture for e in extracts] == ["l", "s", "cut"]
    shown = capsys.readouterr().err  # one progress bar per file, counting its chunks, on stderr
    assert "home/l" in shown and "3/3 chunks" in shown and "home/cut" in shown
    for extract, path in zip(extracts, (large, small, cut), strict=True):
        assert extract.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert (extract.path, extract.bytes, extract.link_types) == (str(path), path.stat().st_size, [1])
        assert extract.tshark_version == tshark_version()
        assert extract.extracted_at.endswith("+00:00")
        assert json.loads(json.dumps(extract.to_dict())) == extract.to_dict()
    large_x, small_x, cut_x = extracts
    assert [e.format for e in extracts] == ["pcapng", "pcap", "pcap"]
    assert [e.truncated for e in extracts] == [False, False, True]
    assert large_x.warnings == small_x.warnings == []
    assert cut_x.warnings == [f'The file "{cut}" appears to have been cut short in the middle of a packet.']

    folder = landing_dir(landing, specs[0]).absolute()
    # chunks 1 and 2 are read after 5 lead-in frames, which their TSV's frame numbers count
    assert large_x.chunks == [
        {"file": str(folder / f"part-0000{i}.tsv.gz"), "frame_offset": 20 * i - 5 * (i > 0)} for i in range(3)
    ]

    def rows(extract) -> list[int]:
        return [len(_rows(Path(c["file"]))) for c in extract.chunks]

    assert (rows(large_x), rows(small_x), rows(cut_x)) == ([20, 20, 10], [5], [4])
    # bronze numbers the frames of the capture: frame n of _many_packets was sent from port 30000 + n - 1
    read = read_landing(spark, [large_x]).selectExpr("frame_no", "coalesce(tcp_srcport, udp_srcport)")
    assert sorted(map(tuple, read.collect())) == [(n, 30000 + n - 1) for n in range(1, 51)]
    assert sorted(p.name for p in stale.parent.iterdir()) == ["part-00000.tsv.gz"]  # the stale part is gone
    assert sorted(p.name for p in landing.iterdir()) == ["dataset=ds"]  # split workdir removed


def test_extract_probes_everything_before_writing(spark, known_capture: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_text("not a capture\n")
    specs = [CaptureSpec("ds", "s", "good", known_capture), CaptureSpec("ds", "s", "bad", bad)]
    with pytest.raises(BadCaptureError, match=r"bad\.pcap: not a pcap/pcapng capture"):
        extract_captures(spark, specs, tmp_path / "landing", 0, 10, progress=False)
    assert not (tmp_path / "landing").exists()
    with pytest.raises(IotlakeError, match="also the name of"):
        extract_captures(spark, [specs[0], specs[0]], tmp_path / "landing", 0, 10, progress=False)
