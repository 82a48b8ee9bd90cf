"""The disk-space check before extraction: one line naming the landing zone, before anything is written."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest

from iotlake.capture import extract
from iotlake.errors import IotlakeError

Usage = namedtuple("Usage", "total used free")


def test_enough_space_passes(tmp_path) -> None:
    capture = tmp_path / "a.pcap"
    capture.write_bytes(b"\0" * 1000)
    extract.check_disk_space(tmp_path, [capture], chunk_bytes=10_000)


def test_too_little_space_is_one_line_naming_the_landing_zone(tmp_path, monkeypatch) -> None:
    capture = tmp_path / "big.pcap"
    capture.write_bytes(b"\0" * 400_000)
    # a disk with 300 kB free: the split copy (400 kB) alone does not fit
    monkeypatch.setattr(shutil, "disk_usage", lambda _: Usage(10**9, 10**9 - 300_000, 300_000))
    with pytest.raises(IotlakeError) as error:
        extract.check_disk_space(tmp_path, [capture], chunk_bytes=100_000)
    message = str(error.value)
    assert str(tmp_path) in message and "not enough disk space" in message and "\n" not in message
