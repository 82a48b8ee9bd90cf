"""The bad-input corpus: dataset `corpus` in the test run's lake, written by the real CLI from a tiny scapy
capture; each case runs the CLI as a real process or, when it needs Spark, in the test run's session."""

from __future__ import annotations

import io
import os
import re
import struct
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from tests.conftest import REPO, require_tools

IOTLAKE = Path(sys.executable).with_name("iotlake")
DATASET = "corpus"
SITE = "home1"
PLUG, CAMERA, ROUTER = "aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02", "aa:bb:cc:00:00:fe"
START = 1_700_000_000
PACKETS = 12
_JAVA_FRAME = re.compile(r"^\s+at [\w$.]+\(|^Exception in thread|^Caused by: ")


@dataclass(frozen=True)
class Run:
    """One CLI run: its exit status and output."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def last_error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def assert_no_trace(self) -> None:
        assert "Traceback (most recent call last)" not in self.stderr, self.stderr
        java = [line for line in self.stderr.splitlines() if _JAVA_FRAME.search(line)]
        assert not java, self.stderr


@dataclass(frozen=True)
class CorpusLake:
    """The module's lake and the site's valid inputs: a MAC map, a site config and a capture."""

    root: Path
    lake: Path
    macs: Path
    site_config: Path
    capture: Path

    def iotlake(self, *args: str, process: bool = True) -> Run:
        """Run `iotlake ARGS` on this lake: as a real process (exit status, stdout and stderr of the command),
        or with `process=False` through the same entry point in this process, whose Spark session is warm
        (a new process pays a cold JVM: 15-40 s for a 12-packet ingest)."""
        command = [*args, "--conf", str(REPO / "conf"), "--lake", str(self.lake)]
        if not process:
            return _in_process(command)
        env = {k: v for k, v in os.environ.items() if k not in {"IOTLAKE_LAKE", "IOTLAKE_CONF"}}
        result = subprocess.run(
            [str(IOTLAKE), *command],
            capture_output=True,
            text=True,
            cwd=self.root,
            env=env,
            timeout=600,
            check=False,
        )
        return Run(tuple(args), result.returncode, result.stdout, result.stderr)

    def ingest(
        self,
        *files: Path | str,
        dataset: str = DATASET,
        site: str = SITE,
        macs: Path | None = None,
        site_config: Path | None = None,
        process: bool = True,
    ) -> Run:
        """`iotlake ingest DATASET FILES --site SITE --macs … --site-config … --quiet` (default: the valid ones)."""
        return self.iotlake(
            "ingest",
            dataset,
            *map(str, files),
            "--site",
            site,
            "--macs",
            str(macs or self.macs),
            "--site-config",
            str(site_config or self.site_config),
            "--quiet",
            process=process,
        )

    def versions(self) -> dict[str, int]:
        """The latest Delta version of every table under the lake."""
        found = {}
        for log in sorted(self.lake.rglob("_delta_log")):
            commits = [int(p.stem) for p in log.glob("*.json") if p.stem.isdigit()]
            found[str(log.parent.relative_to(self.lake))] = max(commits, default=-1)
        return found


def _in_process(command: list[str]) -> Run:
    """`iotlake.cli.main(command)` with its stdout and stderr captured and its exit status."""
    from iotlake.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(command)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return Run(tuple(command), code, out.getvalue(), err.getvalue())


def packets(count: int = PACKETS) -> list[Packet]:
    """Frames between the site's devices and a remote server, one a second (times may be reordered)."""
    frames = []
    for i in range(count):
        device = PLUG if i % 2 == 0 else CAMERA
        host = f"192.168.1.{10 + i % 2}"
        if i % 3 == 2:  # a reply
            frame = Ether(src=ROUTER, dst=device) / IP(src="93.184.216.34", dst=host)
            frame = frame / UDP(sport=123, dport=40000 + i)
        else:
            frame = Ether(src=device, dst=ROUTER) / IP(src=host, dst="93.184.216.34")
            frame = frame / UDP(sport=40000 + i, dport=123)
        frame = frame / Raw(bytes(range(48)) * 3)
        frame.time = START + i
        frames.append(frame)
    return frames


def pcap_records(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of every record (16-byte header + data) of a little-endian pcap file."""
    data = path.read_bytes()
    offset, records = 24, []
    while offset + 16 <= len(data):
        caplen = struct.unpack("<I", data[offset + 8 : offset + 12])[0]
        records.append((offset, 16 + caplen))
        offset += 16 + caplen
    return records


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, spark, config) -> CorpusLake:
    """The test run's lake holding one ingested capture of dataset `corpus`, site `home1`, for the corpus to
    leave alone. In-process runs use the test run's session (`spark` starts it first) and its lake, whose
    tables that session has registered as `iotlake.<name>`."""
    require_tools("tshark")
    assert IOTLAKE.is_file(), f"the iotlake command is not installed next to {sys.executable}"
    root = tmp_path_factory.mktemp("badinput")
    macs = root / "macs.csv"
    macs.write_text(f"device,mac,ip,vendor\nplug,{PLUG},192.168.1.10,Acme\ncamera,{CAMERA},,Acme\n")
    site_config = root / "site.yaml"
    site_config.write_text("local_prefixes: [198.51.100.0/24]\ngateway_ips: [192.168.1.1]\n")
    capture = root / "base.pcap"
    wrpcap(str(capture), packets())
    lake = CorpusLake(root, Path(config.lake_root), macs, site_config, capture)
    run = lake.ingest(capture, process=False)
    assert run.code == 0, run.stderr
    assert lake.versions(), "the setup ingest wrote no Delta table"
    return lake
