"""Import the published Passive-Mode-Study data files and re-derive its summary tables (reference §7).

The exact tables match exactly (1e-6 relative); every other deviation is one the reference explains: per-capture
protocol files edited after the summary (4 MACs, Litokam's `http`) and Excel's 3-digit rounding.
"""

from __future__ import annotations

import pytest

from iotlake.imports import reproduce
from iotlake.imports.reproduce import CAUSE_EDITED, CAUSE_EXCEL, TableComparison
from tests.conftest import shared_file

DATASET = "pms_published"


@pytest.fixture(scope="module")
def reproduced(spark, config):
    folder = shared_file("passive-mode-study/data/1hour-stats/overall-combined-stats.csv").parents[2]
    yield reproduce.reproduce_pms(spark, config, DATASET, folder, reimport=True)
    # leave the session lake as other tests expect it: no rows of the imported dataset
    from iotlake.lake import tables
    from iotlake.lake.writer import write_table

    for name in ("interval_volumes", "protocol_usage", "endpoint_usage", "devices"):
        entry = tables.table(name)
        empty = spark.read.format("delta").load(entry.path(config.lake_root)).limit(0)
        write_table(empty, entry, config.lake_root, {"dataset": DATASET}, job="test_cleanup")


def _table(result: reproduce.Reproduction, name: str) -> TableComparison:
    (found,) = [t for t in result.tables if t.file.endswith(f"/{name}")]
    return found


def test_import_keeps_the_quirks(reproduced) -> None:
    report = reproduced.imported
    assert report is not None
    assert report.files == {"1hour-stats": 162, "protocols": 194, "endpoints": 54}
    assert report.flagged == 8  # the `*` rows of reference §6.3, kept and flagged
    assert report.aliases == {("FR", "Capture2", "TPLink"): "TP2ndLink"}


def test_imported_dataset_is_not_rebuilt_from_packets(spark, config, reproduced) -> None:
    from iotlake import pipeline

    assert DATASET not in pipeline.datasets_in_lake(spark, config)


@pytest.mark.parametrize(
    "name",
    [
        "overall-combined-stats.csv",
        "FR-Combined-unique-protos-per-mac.csv",
        "US2-unique-protos-per-mac.csv",
    ],
)
def test_exact_tables(reproduced, name: str) -> None:
    table = _table(reproduced, name)
    assert table.cells > 0 and table.matches == table.cells and not table.deviations


def test_distribution_differs_only_in_four_excel_rounded_cells(reproduced) -> None:
    table = _table(reproduced, "overall-combined-distribution.csv")
    assert table.cells == 27 * 34
    assert {(d.key, d.column, d.cause) for d in table.deviations} == {
        ("DreamGlass Air (US1)", "LanRxPacketPct", CAUSE_EXCEL),
        ("DreamGlass Air (US1)", "LanRxBytePct", CAUSE_EXCEL),
        ("Litokam Camera (US1)", "LanRxPacketPct", CAUSE_EXCEL),
        ("Litokam Camera (US1)", "LanRxBytePct", CAUSE_EXCEL),
    }


def test_proto_distributions_differ_only_for_the_four_edited_macs(reproduced) -> None:
    table = _table(reproduced, "All-proto-distributions.csv")
    assert table.cells == 87 * 11
    assert {d.key.split(" / ")[0] for d in table.deviations} == set(reproduce.EDITED_AFTER_SUMMARY)
    assert {d.cause for d in table.deviations} == {CAUSE_EDITED}
    # the other 25 MACs match exactly
    assert table.matches == table.cells - len(table.deviations)


@pytest.mark.parametrize("name", ["All-unique-protos-per-mac.csv", "US1-Combined-unique-protos-per-mac.csv"])
def test_unique_protocols_differ_only_by_litokams_http(reproduced, name: str) -> None:
    table = _table(reproduced, name)
    assert {(d.key, d.column, d.cause) for d in table.deviations} == {
        ("90:31:4B:71:B2:7B / ALL", "Application", CAUSE_EDITED),
        ("90:31:4B:71:B2:7B / LAN", "Application", CAUSE_EDITED),
    }
    for d in table.deviations:
        assert set(d.reproduced.split(",")) - set(d.published.split(",")) == {"http"}


@pytest.mark.parametrize(
    ("name", "cells"),
    [
        ("endpoint_type_distribution.csv", 27 * 30),
        ("local_endpoint_distribution.csv", 66 * 12),
        ("endpoint_protocol_distribution.csv", 108 * 30),
    ],
)
def test_endpoint_tables_with_per_capture_semantics(reproduced, name: str, cells: int) -> None:
    """Every cell matches at the file's printed precision, except Excel's 3-digit cells."""
    table = _table(reproduced, name)
    assert table.cells == cells
    assert {d.cause for d in table.deviations} <= {CAUSE_EXCEL}
    assert all(d.column != "*" for d in table.deviations)  # no missing or extra rows


def test_no_unexplained_deviation(reproduced) -> None:
    assert [
        d for t in reproduced.tables for d in t.deviations if d.cause == reproduce.CAUSE_UNEXPLAINED
    ] == []
