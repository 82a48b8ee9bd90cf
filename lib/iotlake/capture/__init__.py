"""Captures in: classify a file from its header, export it with one tshark pass, land gzipped TSV chunks.

`probe` rejects bad input before any work, `tshark` runs the export (and editcap splits large files), and
`extract` runs it all as Spark tasks and returns one manifest per capture. `fields` is the column contract.
"""

from iotlake.capture.extract import CaptureExtract, CaptureSpec, extract_captures, landing_dir
from iotlake.capture.fields import COLUMNS, FIELDS, Field, tshark_field_args
from iotlake.capture.probe import SUPPORTED_LINK_TYPES, CaptureProbe, probe
from iotlake.capture.tshark import (
    Chunk,
    ExportResult,
    export_fields,
    sha256_file,
    split_capture,
    tshark_version,
)

__all__ = [
    "COLUMNS",
    "FIELDS",
    "SUPPORTED_LINK_TYPES",
    "CaptureExtract",
    "CaptureProbe",
    "CaptureSpec",
    "Chunk",
    "ExportResult",
    "Field",
    "export_fields",
    "extract_captures",
    "landing_dir",
    "probe",
    "sha256_file",
    "split_capture",
    "tshark_field_args",
    "tshark_version",
]
