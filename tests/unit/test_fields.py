"""The field catalog against the installed tshark: every field exists, columns are clean, the header matches."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from iotlake.capture.fields import COLUMNS, FIELDS, by_column, tshark_field_args
from iotlake.capture.tshark import export_fields

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")


@pytest.fixture(scope="module")
def tshark_fields() -> set[str]:
    """Every field name `tshark -G fields` knows (third column of the `F` rows)."""
    output = subprocess.run(["tshark", "-G", "fields"], capture_output=True, text=True, check=True).stdout
    return {line.split("\t")[2] for line in output.splitlines() if line.startswith("F\t")}


def test_every_catalog_field_exists_in_tshark(tshark_fields: set[str]) -> None:
    # `_ws.col.*` are column fields: valid with -e, but not listed by -G fields.
    missing = [
        f.tshark for f in FIELDS if not f.tshark.startswith("_ws.col.") and f.tshark not in tshark_fields
    ]
    assert missing == []


def test_columns_are_unique_snake_case() -> None:
    assert len(set(COLUMNS)) == len(COLUMNS)
    assert len({f.tshark for f in FIELDS}) == len(FIELDS)
    bad = [c for c in COLUMNS if not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", c)]
    assert bad == []
    assert by_column("frame_no").tshark == "frame.number"


def test_field_args_follow_the_catalog() -> None:
    args = tshark_field_args()
    assert args[0::2] == ["-e"] * len(FIELDS)
    assert args[1::2] == [f.tshark for f in FIELDS]


def test_one_tshark_run_has_one_column_per_field_in_catalog_order(tmp_path: Path) -> None:
    capture = tmp_path / "small.pcap"
    packets = [
        Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=443, flags="S"),
        Ether()
        / IP(src="10.0.0.1", dst="10.0.0.53")
        / UDP(sport=5000, dport=53)
        / DNS(qd=DNSQR(qname="a.example")),
    ]
    wrpcap(str(capture), packets)
    result = export_fields(capture, tmp_path / "out.tsv.gz")
    assert result.returncode == 0
    assert result.warnings == []  # "Some fields aren't valid" would land here (and fail the export)
    lines = gzip.decompress(result.out_file.read_bytes()).decode().splitlines()
    assert lines[0].split("\t") == [f.tshark for f in FIELDS]
    assert len(lines) == 3
    assert all(len(line.split("\t")) == len(FIELDS) for line in lines)
