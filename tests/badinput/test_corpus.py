"""The bad-input corpus (issue 8, items 1 and 5): every case runs the real `iotlake` command.

Errors run it as a real process (exit status, the one line on stderr); cases that need Spark (valid ingests,
build and export) run the same entry point in the test run's warm Spark session, except one valid ingest
that also runs as a real process end to end.

Each case says up front what must happen. An error exits non-zero with ONE line that names the input (file
or name) and the problem, no Python or Java trace, and leaves every Delta table of the lake at its version.
Valid but unusual input (cut short, snap-length truncated, time going backwards, spaces in the path) ingests;
raw-IP and Linux cooked captures ingest with a MAC map that gives every device an IP, and their frames are
attributed to the devices by IP (the counts expected are those the capture was built with).
The inputs are built here with scapy and byte surgery; nothing binary is committed.
"""

from __future__ import annotations

import csv
import gzip
import re
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from scapy.layers.inet import IP
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Ether
from scapy.utils import wrpcap

from tests.badinput.conftest import (
    CAMERA,
    DATASET,
    PACKETS,
    PLUG,
    SITE,
    START,
    CorpusLake,
    Run,
    packets,
    pcap_records,
)


@dataclass
class Case:
    """What to run, and what must come of it: an error naming `where` and `problem`, or a valid ingest."""

    args: list[str] | None = None  # a whole command line (default: ingest `files` into the corpus site)
    files: list[Path] = field(default_factory=list)
    dataset: str = DATASET
    site: str = SITE
    macs: Path | None = None  # default: the corpus site's valid MAC map
    site_config: Path | None = None  # default: the corpus site's valid site config
    where: str = ""  # error: the file or name the line must contain
    problem: str = ""  # error: the words saying what is wrong
    check: Callable[..., None] | None = None  # valid: what must have been written (corpus, run[, spark])
    uses_spark: bool = False  # the check reads tables: it gets the test's Spark session too
    process: bool | None = None  # run as a real process; default: errors do, valid ingests run in-process

    @property
    def is_error(self) -> bool:
        return self.check is None

    @property
    def as_process(self) -> bool:
        return self.is_error if self.process is None else self.process


Builder = Callable[[Path, CorpusLake], Case]  # builds one input into a temporary folder


def _pcapng_block(block_type: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", block_type, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def _ingested(run: Run) -> tuple[int, int]:
    text = " ".join(run.stdout.split())
    match = re.search(r"ingested (\d+) capture\(s\), (\d+) packets", text)
    assert match, run.stdout
    return int(match.group(1)), int(match.group(2))


def _landing_rows(corpus: CorpusLake, capture: str, dataset: str = DATASET) -> list[dict[str, str]]:
    folder = corpus.lake / "_landing" / f"dataset={dataset}" / f"site={SITE}" / f"capture={capture}"
    parts = sorted(folder.glob("part-*.tsv.gz"))
    assert parts, f"no landing files in {folder}"
    rows: list[dict[str, str]] = []
    for part in parts:
        with gzip.open(part, "rt") as handle:
            rows += csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
    return rows


# --- the capture files ---------------------------------------------------------------------------------


def text_named_pcap(tmp: Path, corpus: CorpusLake) -> Case:
    path = tmp / "notes.pcap"
    path.write_text("device inventory, not a capture\n")
    return Case(files=[path], where=path.name, problem="not a pcap")


def empty_file(tmp: Path, corpus: CorpusLake) -> Case:
    path = tmp / "empty.pcap"
    path.write_bytes(b"")
    return Case(files=[path], where=path.name, problem="empty")


def cut_mid_packet(tmp: Path, corpus: CorpusLake) -> Case:
    full = tmp / "full.pcap"
    wrpcap(str(full), packets())
    offset, length = pcap_records(full)[7]
    path = tmp / "cut.pcap"
    path.write_bytes(full.read_bytes()[: offset + length // 2])

    def check(corpus: CorpusLake, run: Run) -> None:
        assert _ingested(run) == (1, 7)
        assert "truncated: cut" in " ".join(run.stdout.split())
        assert len(_landing_rows(corpus, "cut")) == 7

    return Case(files=[path], check=check, process=True)  # the valid ingest that runs as a real process


def pcapng_two_link_types(tmp: Path, corpus: CorpusLake) -> Case:
    shb = _pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idbs = b"".join(_pcapng_block(1, struct.pack("<HHI", lt, 0, 65535)) for lt in (1, 101))
    epbs = b""
    for interface, frame in ((0, bytes(packets(1)[0])), (1, bytes(packets(1)[0][IP]))):
        header = struct.pack("<IIIII", interface, 0, 0, len(frame), len(frame))
        epbs += _pcapng_block(6, header + frame)
    path = tmp / "two-interfaces.pcapng"
    path.write_bytes(shb + idbs + epbs)
    return Case(files=[path], where=path.name, problem="different link types")


# The corpus devices with their addresses (packets() gives the plug .10 and the camera .11).
IP_MACS = f"device,mac,ip,vendor\nplug,{PLUG},192.168.1.10,Acme\ncamera,{CAMERA},192.168.1.11,Acme\n"


def _device_frames() -> Counter[tuple[str, str]]:
    """(device, direction) frame counts of `packets()`, from how it builds them: even frames are the plug's,
    odd ones the camera's, and every third frame is the server's reply to the device."""
    return Counter(("plug" if i % 2 == 0 else "camera", "rx" if i % 3 == 2 else "tx") for i in range(PACKETS))


def _attributed_by_ip(capture: str) -> Callable[[CorpusLake, Run, SparkSession], None]:
    """The check of a capture without Ethernet addresses: ingested whole, and its frames the devices' by IP."""

    def check(corpus: CorpusLake, run: Run, spark: SparkSession) -> None:
        assert _ingested(run) == (1, PACKETS)
        build = corpus.iotlake("build", "--dataset", DATASET, "--model", "device_packets", process=False)
        assert build.code == 0, build.stderr
        rows = (
            spark.read.format("delta")
            .load(str(corpus.lake / "silver" / "device_packets"))
            .where((F.col("dataset") == DATASET) & (F.col("capture") == capture))
            .select("device", "direction", "attribution")
            .collect()
        )
        assert Counter((r.device, r.direction) for r in rows) == _device_frames()
        assert {r.attribution for r in rows} == {"ip"}

    return check


def raw_ip(link_type: int) -> Builder:
    def build(tmp: Path, corpus: CorpusLake) -> Case:
        path = tmp / f"raw-ip-{link_type}.pcap"
        wrpcap(str(path), [frame[IP] for frame in packets()], linktype=link_type)
        macs = _macs(tmp, "macs-ip.csv", IP_MACS)
        return Case(files=[path], macs=macs, check=_attributed_by_ip(path.stem), uses_spark=True)

    return build


def raw_ip_without_ips(tmp: Path, corpus: CorpusLake) -> Case:
    """A raw-IP capture with a map that has no IP for the camera: its frames could not be attributed."""
    path = tmp / "raw-no-ips.pcap"
    wrpcap(str(path), [frame[IP] for frame in packets()], linktype=101)
    return Case(files=[path], where=path.name, problem="the MAC map needs an ip column")


def linux_cooked(link_type: int) -> Builder:
    def build(tmp: Path, corpus: CorpusLake) -> Case:
        path = tmp / f"cooked-{link_type}.pcap"
        header = CookedLinux if link_type == 113 else CookedLinuxV2
        frames = []
        for frame in packets():
            sender = bytes.fromhex(frame[Ether].src.replace(":", "")) + b"\0\0"
            outgoing = frame[Ether].src in (PLUG, CAMERA)
            cooked = header(pkttype=4 if outgoing else 0, lladdrtype=1, lladdrlen=6, src=sender) / frame[IP]
            cooked.time = frame.time
            frames.append(cooked)
        wrpcap(str(path), frames, linktype=link_type)
        macs = _macs(tmp, "macs-ip.csv", IP_MACS)
        return Case(files=[path], macs=macs, check=_attributed_by_ip(path.stem), uses_spark=True)

    return build


def snaplen_truncated(tmp: Path, corpus: CorpusLake) -> Case:
    """Frames captured with a 64-byte snap length: valid, wire lengths kept, fewer bytes captured."""
    snaplen = 64
    frames = [bytes(frame) for frame in packets()]
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1)
    for i, frame in enumerate(frames):
        data += struct.pack("<IIII", START + i, 0, min(len(frame), snaplen), len(frame)) + frame[:snaplen]
    path = tmp / "snaplen64.pcap"
    path.write_bytes(data)

    def check(corpus: CorpusLake, run: Run) -> None:
        assert _ingested(run) == (1, PACKETS)
        assert "truncated" not in run.stdout
        rows = _landing_rows(corpus, "snaplen64")
        assert [int(r["frame.len"]) for r in rows] == [len(f) for f in frames]
        assert {int(r["frame.cap_len"]) for r in rows} == {snaplen}

    return Case(files=[path], check=check)


def time_goes_backwards(tmp: Path, corpus: CorpusLake) -> Case:
    frames = packets()
    for i, frame in enumerate(frames):
        frame.time = START + (len(frames) - i) * 10 if i % 4 else START - i
    path = tmp / "backwards.pcap"
    wrpcap(str(path), frames)

    def check(corpus: CorpusLake, run: Run) -> None:
        assert _ingested(run) == (1, PACKETS)
        rows = _landing_rows(corpus, "backwards")
        assert [int(r["frame.number"]) for r in rows] == list(range(1, PACKETS + 1))
        assert [round(float(r["frame.time_epoch"])) for r in rows] == [round(float(f.time)) for f in frames]

    return Case(files=[path], check=check)


def spaces_in_path(tmp: Path, corpus: CorpusLake) -> Case:
    folder = tmp / "my captures" / "living room"
    folder.mkdir(parents=True)
    path = folder / "evening capture.pcap"
    wrpcap(str(path), packets())

    def check(corpus: CorpusLake, run: Run) -> None:
        assert _ingested(run) == (1, PACKETS)
        assert len(_landing_rows(corpus, "evening_capture")) == PACKETS

    return Case(files=[path], check=check)


def odd_capture_name(tmp: Path, corpus: CorpusLake) -> Case:
    """Quotes, unicode and `..` in a capture's file name: the capture is named after it, made safe."""
    path = tmp / "..café 'kitchen' \"2\"..pcap"
    wrpcap(str(path), packets())

    def check(corpus: CorpusLake, run: Run) -> None:
        assert _ingested(run) == (1, PACKETS)
        site = corpus.lake / "_landing" / f"dataset={DATASET}" / f"site={SITE}"
        assert (site / "capture=caf___kitchen___2").is_dir(), sorted(p.name for p in site.iterdir())
        assert len(_landing_rows(corpus, "caf___kitchen___2")) == PACKETS

    return Case(files=[path], check=check)


# --- MAC maps and site configs -------------------------------------------------------------------------


def _macs(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def mac_malformed(tmp: Path, corpus: CorpusLake) -> Case:
    path = _macs(tmp, "macs-bad.csv", f"device,mac,ip\nplug,{PLUG},192.168.1.10\ncamera,aa:bb:cc:00:00:zz,\n")
    return Case(files=[corpus.capture], macs=path, where=f"{path.name}:3", problem="malformed MAC")


def mac_duplicate_device(tmp: Path, corpus: CorpusLake) -> Case:
    path = _macs(tmp, "macs-dupname.csv", f"device,mac\nplug,{PLUG}\nplug,{CAMERA}\n")
    return Case(
        files=[corpus.capture],
        macs=path,
        where=f"{path.name}:3",
        problem="duplicate device name",
    )


def mac_duplicate_mac(tmp: Path, corpus: CorpusLake) -> Case:
    # The same MAC in another spelling (upper case, dashes) is still the same device address.
    path = _macs(
        tmp, "macs-dupmac.csv", f"device,mac\nplug,{PLUG}\ncamera,{PLUG.upper().replace(':', '-')}\n"
    )
    return Case(files=[corpus.capture], macs=path, where=f"{path.name}:3", problem="duplicate MAC")


def site_invalid_prefix(tmp: Path, corpus: CorpusLake) -> Case:
    path = tmp / "site-bad.yaml"
    path.write_text("local_prefixes:\n  - 198.51.100.0/24\n  - 10.20.30.0/33\n")
    return Case(files=[corpus.capture], site_config=path, where=path.name, problem="invalid prefix")


# --- names ---------------------------------------------------------------------------------------------


def bad_name(kind: str, value: str) -> Builder:
    def build(tmp: Path, corpus: CorpusLake) -> Case:
        case = Case(files=[corpus.capture], where=value, problem=f"invalid {kind} name")
        setattr(case, kind, value)
        return case

    return build


def build_bad_name(tmp: Path, corpus: CorpusLake) -> Case:
    return Case(args=["build", "--dataset", "../corpus"], where="../corpus", problem="invalid dataset name")


def build_unknown_dataset(tmp: Path, corpus: CorpusLake) -> Case:
    """Looking the dataset up in the lake starts Spark: in-process (so does the export below)."""
    return Case(
        args=["build", "--dataset", "no_such_dataset"],
        where="no_such_dataset",
        problem="unknown dataset",
        process=False,
    )


def export_unknown_dataset(tmp: Path, corpus: CorpusLake) -> Case:
    out = tmp / "export"
    args = ["export", "volumes", "--dataset", "no_such_dataset", "--out", str(out)]
    return Case(args=args, where="no_such_dataset", problem="unknown dataset", process=False)


# The corpus table, one case a row: the input (built by its function) -> the expected outcome.
CORPUS = [
    pytest.param(text_named_pcap, id="text file named .pcap -> error"),
    pytest.param(empty_file, id="empty file -> error"),
    pytest.param(cut_mid_packet, id="cut in the middle of a packet -> ingests, flagged truncated"),
    pytest.param(pcapng_two_link_types, id="pcapng, two interfaces of different link types -> error"),
    pytest.param(raw_ip(101), id="raw IP (LINKTYPE_RAW 101), map with IPs -> ingests, attributed by IP"),
    # The other raw and cooked link types run in make test-heavy here (two CLI runs each); in make test,
    # tests/integration/test_ip_attribution.py covers them in-process with exact per-device counts.
    pytest.param(
        raw_ip(228),
        id="raw IPv4 (LINKTYPE_IPV4 228), map with IPs -> ingests, attributed by IP",
        marks=pytest.mark.heavy,
    ),
    pytest.param(raw_ip_without_ips, id="raw IP, a device without IP in the map -> error"),
    pytest.param(snaplen_truncated, id="snap-length truncated frames -> ingests"),
    pytest.param(
        linux_cooked(113),
        id="Linux cooked (SLL 113), map with IPs -> ingests, attributed by IP",
        marks=pytest.mark.heavy,
    ),
    pytest.param(
        linux_cooked(276),
        id="Linux cooked v2 (SLL2 276), map with IPs -> ingests, attributed by IP",
        marks=pytest.mark.heavy,
    ),
    pytest.param(time_goes_backwards, id="timestamps going backwards -> ingests"),
    pytest.param(spaces_in_path, id="capture path with spaces -> ingests"),
    pytest.param(odd_capture_name, id="capture file name with .., quotes, unicode -> ingests, safe name"),
    pytest.param(mac_malformed, id="MAC map, malformed MAC -> error"),
    pytest.param(mac_duplicate_device, id="MAC map, duplicate device name -> error"),
    pytest.param(mac_duplicate_mac, id="MAC map, duplicate MAC -> error"),
    pytest.param(site_invalid_prefix, id="site config, invalid prefix -> error"),
    pytest.param(bad_name("dataset", "../escape"), id="dataset name with ../ -> error"),
    pytest.param(bad_name("dataset", "my dataset"), id="dataset name with a space -> error"),
    pytest.param(bad_name("site", 'home"1'), id="site name with a quote -> error"),
    pytest.param(bad_name("site", "wohnküche"), id="site name with unicode -> error"),
    pytest.param(bad_name("site", "lab[/]"), id="site name with rich markup -> error"),
    pytest.param(build_bad_name, id="build --dataset ../corpus -> error"),
    pytest.param(build_unknown_dataset, id="build --dataset unknown -> error"),
    pytest.param(export_unknown_dataset, id="export volumes --dataset unknown -> error"),
]


@pytest.mark.parametrize("builder", CORPUS)
def test_corpus(corpus: CorpusLake, tmp_path: Path, builder: Builder, request: pytest.FixtureRequest) -> None:
    case = builder(tmp_path, corpus)
    before = corpus.versions()
    if case.args is not None:
        run = corpus.iotlake(*case.args, process=case.as_process)
    else:
        run = corpus.ingest(
            *case.files,
            dataset=case.dataset,
            site=case.site,
            macs=case.macs or corpus.macs,
            site_config=case.site_config or corpus.site_config,
            process=case.as_process,
        )
    after = corpus.versions()
    run.assert_no_trace()
    if case.is_error:
        line = run.last_error_line
        assert run.code != 0, run.stdout + run.stderr
        assert line.startswith("error: "), run.stderr
        assert case.where in line, line
        assert case.problem in line, line
        assert after == before, "the failed command changed the lake"
    else:
        assert run.code == 0, run.stderr
        assert case.check is not None
        case.check(corpus, run, *([request.getfixturevalue("spark")] if case.uses_spark else []))
        assert after["bronze/packets"] == before["bronze/packets"] + 1
