"""The one tshark pass per capture (or chunk), splitting large captures with editcap, and tshark's version.

`export_fields` runs `tshark -T fields` with every catalog field and pipes its stdout straight into `gzip -1`:
two processes, no Python loop over rows, so a file of millions of packets costs the driver nothing.

tshark 4.0 facts this module relies on (see tests/unit/test_tshark.py):
- a capture cut in the middle of a packet exits 2 after printing every complete packet, with
  `The file "…" appears to have been cut short in the middle of a packet.` on stderr;
- editcap reports the same message for a cut input but exits 0, writing the complete packets;
- editcap writes pcapng by default (nanosecond timestamps and link types are kept);
- `Running as user "root" and group "root". This could be dangerous.` goes to stderr on every run.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from iotlake.capture.fields import AGGREGATOR, tshark_field_args
from iotlake.errors import BadCaptureError, IotlakeError

TSHARK = "tshark"
EDITCAP = "editcap"
MERGECAP = "mergecap"
GZIP = "gzip"

# Options of the one export pass: fields, a header row, tabs, every occurrence joined by the aggregator.
EXPORT_OPTIONS: tuple[str, ...] = (
    "-T", "fields",
    "-E", "header=y",
    "-E", "separator=/t",
    "-E", "occurrence=a",
    "-E", f"aggregator={AGGREGATOR}",
    "-E", "quote=n",
)  # fmt: skip

# stderr lines that say nothing about the capture.
_NOISE = (re.compile(r'^Running as user "root" and group "root"'),)
# A capture that ends inside a packet: never an error, the rows read are kept.
_CUT_SHORT = re.compile(r"cut short in the middle of a packet", re.IGNORECASE)
# Reading stopped before the end of the file (cut short, or a broken record further on).
_STOPPED = re.compile(r"cut short in the middle of a packet|appears to be damaged or corrupt", re.IGNORECASE)
_CHUNK_NAME = re.compile(r"^chunk_(\d+)_")
_BUFFER = 1024 * 1024


@dataclass(frozen=True)
class Chunk:
    """One piece of a capture for one tshark run; frame numbers in it start after `frame_offset` frames.

    `lead` are frame numbers of the `previous` chunk that tshark reads first and does not export, so its
    stateful analysis (TCP retransmissions, duplicate ACKs, reassembly) sees what precedes the chunk.
    """

    path: Path
    index: int
    frame_offset: int
    # editcap's messages about the input (e.g. a cut-short capture), attached to the last chunk.
    warnings: tuple[str, ...] = ()
    truncated: bool = False
    previous: Path | None = None
    lead: range = range(0)


@dataclass
class ExportResult:
    """What one tshark export wrote: the gzipped TSV, tshark's warnings, and whether the input was cut short."""

    out_file: Path
    warnings: list[str] = field(default_factory=list)
    truncated: bool = False
    returncode: int = 0


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise IotlakeError(
            tool, "not found on PATH; install Wireshark's command-line tools (apt install tshark)"
        )
    return found


@cache
def tshark_version() -> str:
    """The installed tshark's version, e.g. `4.0.17`, recorded in every capture manifest."""
    result = subprocess.run([_require(TSHARK), "-v"], capture_output=True, text=True, check=False)
    first = (result.stdout or result.stderr).strip().splitlines()[:1]
    match = re.search(r"\b(\d+\.\d+\.\d+)\b", first[0]) if first else None
    if result.returncode != 0 or match is None:
        raise IotlakeError(TSHARK, f"cannot read the version from `tshark -v` (exit {result.returncode})")
    return match.group(1)


def clean_messages(stderr: str, rename: dict[str, str] | None = None) -> list[str]:
    """tshark/editcap stderr as one-line messages: noise dropped, `tshark: ` prefixes and temp paths removed.

    A message starts with `tshark: `/`editcap: `; the lines after it (the invalid fields, the reason in
    parentheses after "damaged or corrupt") are joined to it.
    """
    messages: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line or any(p.search(line) for p in _NOISE):
            continue
        prefixed = re.match(r"^(tshark|editcap): ", line)
        line = line[prefixed.end() :] if prefixed else line
        for old, new in (rename or {}).items():
            line = line.replace(old, new)
        if messages and not prefixed:
            messages[-1] += " " + line
        else:
            messages.append(line)
    return messages


def is_truncation(message: str) -> bool:
    """True for tshark/editcap messages saying reading stopped before the end (cut short, damaged record)."""
    return bool(_STOPPED.search(message))


def split_capture(
    path: Path, workdir: Path, chunk_packets: int, chunk_bytes: int = 0, lead_in: int = 0
) -> list[Chunk]:
    """Chunks of `chunk_packets` frames (editcap -c) when the file is larger than `chunk_bytes`, else the file.

    Every chunk after the first has a lead-in of the previous chunk's last `lead_in` frames (see
    `export_chunk`), so tshark's TCP analysis of its frames matches one pass over the whole file unless a
    segment's original lies more than `lead_in` frames back. tcp.stream and udp.stream restart in each chunk.
    """
    path = Path(path)
    if chunk_packets < 1 or lead_in < 0:
        raise ValueError(
            f"chunk_packets must be positive and lead_in not negative: {chunk_packets}, {lead_in}"
        )
    if path.stat().st_size <= chunk_bytes:
        return [Chunk(path, 0, 0)]
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="split-", dir=workdir))  # only this run's chunk files in it
    command = [
        _require(EDITCAP),
        "-F",
        "pcapng",
        "-c",
        str(chunk_packets),
        str(path),
        str(workdir / "chunk.pcapng"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    messages = clean_messages(result.stderr)
    if result.returncode != 0:
        raise BadCaptureError(
            path, f"editcap failed (exit {result.returncode}): {'; '.join(messages) or 'no message'}"
        )
    files: list[tuple[int, Path]] = []
    for file in workdir.iterdir():
        match = _CHUNK_NAME.match(file.name)
        if match:
            files.append((int(match.group(1)), file))
    files.sort()
    if [i for i, _ in files] != list(range(len(files))):
        raise IotlakeError(workdir, f"editcap wrote unexpected chunk files: {[f.name for _, f in files]}")
    if len(files) <= 1:  # nothing to split (few packets read): tshark reads, and judges, the original
        shutil.rmtree(workdir, ignore_errors=True)
        return [Chunk(path, 0, 0)]
    lead = range(max(1, chunk_packets - lead_in + 1), chunk_packets + 1) if lead_in else range(0)
    chunks = [
        Chunk(
            file,
            i,
            i * chunk_packets,
            previous=files[i - 1][1] if i and lead else None,
            lead=lead if i else range(0),
        )
        for i, file in files
    ]
    # editcap exits 0 even when the input is cut short or damaged: its message flags the last chunk.
    if messages:
        chunks[-1] = replace(
            chunks[-1], warnings=tuple(messages), truncated=any(map(is_truncation, messages))
        )
    return chunks


def export_chunk(chunk: Chunk, out_file: Path, source: str | Path | None = None) -> ExportResult:
    """`export_fields` of one chunk; a chunk with a lead-in is read after its lead-in frames, which are not exported.

    The lead-in (editcap -r of the previous chunk) and the chunk are concatenated with `mergecap -a` into a
    file next to the chunk, removed afterwards; the TSV's frame numbers then count the lead-in too.
    """
    if chunk.previous is None or not chunk.lead:
        return export_fields(chunk.path, out_file, source)
    with tempfile.TemporaryDirectory(prefix="lead-", dir=Path(chunk.path).parent) as tmp:
        lead, merged = Path(tmp) / "lead.pcapng", Path(tmp) / "merged.pcapng"
        frames = f"{chunk.lead.start}-{chunk.lead.stop - 1}"
        _run_tool(
            [_require(EDITCAP), "-F", "pcapng", "-r", str(chunk.previous), str(lead), frames], chunk.path
        )
        _run_tool(
            [_require(MERGECAP), "-F", "pcapng", "-a", "-w", str(merged), str(lead), str(chunk.path)],
            chunk.path,
        )
        return export_fields(merged, out_file, source if source is not None else chunk.path, len(chunk.lead))


def _run_tool(command: list[str], where: Path) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        problem = "; ".join(clean_messages(result.stderr)) or "no message"
        raise IotlakeError(where, f"{Path(command[0]).name} failed (exit {result.returncode}): {problem}")


def export_fields(
    chunk_path: Path, out_file: Path, source: str | Path | None = None, skip_frames: int = 0
) -> ExportResult:
    """Run the one tshark pass over `chunk_path`, gzipping its TSV into `out_file` (renamed into place at the end).

    The first `skip_frames` frames are analysed but not exported (a chunk's lead-in). A cut-short capture keeps
    the rows tshark wrote (truncated=True, the message in warnings); any other failure without rows raises
    BadCaptureError naming `source` (the original capture; default `chunk_path`).
    """
    chunk_path = Path(chunk_path).absolute()
    out_file = Path(out_file)
    where = str(source) if source is not None else str(chunk_path)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.{os.getpid()}.tmp")
    tshark = [_require(TSHARK), "-n", "-r", str(chunk_path), *EXPORT_OPTIONS, *tshark_field_args()]
    if skip_frames:  # a display filter only selects what is printed: every frame is still dissected, in order
        tshark += ["-Y", f"frame.number > {skip_frames}"]
    try:
        with tmp.open("wb") as sink, tempfile.TemporaryFile() as errors:
            reader = subprocess.Popen(tshark, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
            assert reader.stdout is not None
            try:
                packer = subprocess.Popen(
                    [_require(GZIP), "-1", "-c"], stdin=reader.stdout, stdout=sink, stderr=subprocess.PIPE
                )
            finally:
                reader.stdout.close()  # gzip holds the pipe now; tshark gets SIGPIPE if gzip dies
            gzip_errors = packer.communicate()[1].decode(errors="replace").strip()
            returncode = reader.wait()
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
        if packer.returncode != 0:
            raise IotlakeError(
                out_file, f"gzip failed (exit {packer.returncode}): {gzip_errors or 'no message'}"
            )
        warnings = clean_messages(stderr, {str(chunk_path): where} if source is not None else None)
        cut_short = any(_CUT_SHORT.search(message) for message in warnings)
        if returncode != 0 and not cut_short:
            if not _has_rows(tmp):
                problem = "; ".join(warnings) or "no message"
                raise BadCaptureError(where, f"tshark failed (exit {returncode}): {problem}")
            if not warnings:
                warnings.append(f"tshark stopped early (exit {returncode}); the rows read are kept")
        # A cut-short file exits 2 after its complete packets; other failures after some rows keep them too.
        truncated = cut_short or returncode != 0
        tmp.replace(out_file)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(out_file, warnings, truncated, returncode)


def _has_rows(gz_file: Path) -> bool:
    """True when the gzipped TSV has a row after its header."""
    try:
        with gzip.open(gz_file, "rb") as handle:
            handle.readline()
            return bool(handle.readline())
    except (OSError, EOFError):
        return False


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks, so a capture is identified by its content."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(_BUFFER):
            digest.update(block)
    return digest.hexdigest()
