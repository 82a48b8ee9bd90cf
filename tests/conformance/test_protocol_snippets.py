"""Protocol labels on one-protocol snippets of real devices (../shared/data/protocol-snippets/traces).

The expected label of each trace is written by hand from what tshark shows for it (`tshark -r FILE`): the
application protocol it dissects, or, for ARP, ICMP and IGMP, no application label but the protocol above IP
(or ARP itself). The network and transport layers of each frame, the frame count and the ports come from
tshark reading the same file, never from iotlake.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from tests.conformance.tshark_oracle import is_group
from tests.conftest import SHARED_DATA, require_tools

TRACES = SHARED_DATA / "protocol-snippets" / "traces"
DATASET = "snippets"


@dataclass(frozen=True)
class Expected:
    """A trace's label, by hand: the application label of every frame (None: none) and its `protocol`."""

    application: str | None
    protocol: str | None  # None: an unlisted-port UDP label `udp:<port>`, checked against the frame's ports


SNIPPETS = {
    "arp.pcap": Expected(None, "arp"),
    "arp-2.pcap": Expected(None, "arp"),
    "coap.pcap": Expected("coap", "coap"),  # CoAP over IPv6 (frames 1-6) and IPv4 (7-8)
    "dhcp.pcap": Expected("dhcp", "dhcp"),
    "dns.pcap": Expected("dns", "dns"),
    "http.pcap": Expected("http", "http"),  # one TCP connection: handshake, GET, 200 OK, FIN
    "icmp.pcap": Expected(None, "icmp"),
    "igmpv2.pcap": Expected(None, "igmp"),
    "igmpv3.pcap": Expected(None, "igmp"),
    "mdns.pcap": Expected("mdns", "mdns"),
    "mdns-multi.pcap": Expected("mdns", "mdns"),
    "mdns-responses.pcap": Expected("mdns", "mdns"),
    "udp-stream.pcap": Expected(None, None),  # UDP tshark dissects nothing in, to unlisted ports
}


def tshark_frames(path: Path) -> list[dict[str, str]]:
    """Per frame: protocol chain, MACs and ports, from tshark."""
    fields = [
        "frame.protocols",
        "eth.src",
        "eth.dst",
        "udp.srcport",
        "udp.dstport",
        "tcp.srcport",
        "tcp.dstport",
    ]
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", *(a for f in fields for a in ("-e", f))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [dict(zip(fields, line.split("\t"), strict=True)) for line in out.splitlines()]


@pytest.fixture(scope="module")
def snippet_labels(spark, config, tmp_path_factory) -> dict[str, dict[int, object]]:
    """Ingest every trace present into one dataset, build packet_protocols; rows by capture and frame."""
    require_tools("tshark")
    if not TRACES.is_dir():
        pytest.skip(f"real data not present: {TRACES}")
    files = sorted(p for p in TRACES.glob("*.pcap") if p.name in SNIPPETS)
    if not files:
        pytest.skip(f"no protocol snippets in {TRACES}")
    from iotlake import pipeline

    macs = sorted(
        {mac for path in files for f in tshark_frames(path) for mac in (f["eth.src"], f["eth.dst"])} - {""},
    )
    macs_file = tmp_path_factory.mktemp("snippets") / "macs.csv"
    macs_file.write_text(
        "device,mac\n" + "".join(f"d{i},{mac}\n" for i, mac in enumerate(m for m in macs if not is_group(m)))
    )
    plans = pipeline.plan_files(config, DATASET, "snippets", files, macs_file, None)
    pipeline.ingest(spark, config, DATASET, plans, progress=False)
    pipeline.build(spark, config, [DATASET], only=["packet_protocols"])
    rows = spark.table("iotlake.packet_protocols").where(F.col("dataset") == DATASET).collect()
    labels: dict[str, dict[int, object]] = {}
    for row in rows:
        labels.setdefault(row["capture"], {})[row["frame_no"]] = row
    return labels


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_snippet_label(snippet_labels, name) -> None:
    path = TRACES / name
    if not path.exists():
        pytest.skip(f"real data not present: {path}")
    expected = SNIPPETS[name]
    frames = tshark_frames(path)
    rows = snippet_labels[name.removesuffix(".pcap")]
    assert sorted(rows) == list(range(1, len(frames) + 1))
    for number, frame in enumerate(frames, start=1):
        row = rows[number]
        chain = frame["frame.protocols"].split(":")
        network = "ipv6" if "ipv6" in chain else "ip" if "ip" in chain else None
        transport = "tcp" if "tcp" in chain else "udp" if "udp" in chain else None
        assert (row["network"], row["transport"]) == (network, transport), (name, number, row)
        if expected.protocol is None:  # no dissector, no listed port: named after one of its ports
            ports = {frame["udp.srcport"], frame["udp.dstport"]}
            assert row["application"] in {f"udp:{p}" for p in ports}, (name, number, row)
            assert row["label_rule"] == "server_port" and row["protocol"] == row["application"]
            continue
        assert row["application"] == expected.application, (name, number, row)
        assert row["protocol"] == expected.protocol, (name, number, row)
        if expected.application is None:
            assert row["label_rule"] == "not_application", (name, number, row)
        else:
            assert expected.application in chain or number in _undissected(frames), (name, number, chain)


def _undissected(frames: list[dict[str, str]]) -> set[int]:
    """Frames of a TCP connection that carry no payload tshark names (handshake, bare ACKs, retransmissions):
    they take the connection's label."""
    return {i for i, f in enumerate(frames, start=1) if f["frame.protocols"].split(":")[-1] == "tcp"}
