"""The SQL shell's text handling: statements, iotlake references, position-preserving rewrites, --as-of."""

from __future__ import annotations

import pytest

from iotlake import query
from iotlake.errors import IotlakeError


def test_split_statements_ignores_semicolons_in_strings_and_comments() -> None:
    text = "SELECT ';' AS a; -- one; two\nSELECT `x;y` FROM t /* ; */;\n  ;"
    assert query.split_statements(text) == ["SELECT ';' AS a", "-- one; two\nSELECT `x;y` FROM t /* ; */"]


def test_is_complete_needs_a_final_semicolon_outside_comments() -> None:
    assert query.is_complete("SELECT 1;\n")
    assert query.is_complete("SELECT 1; -- done")
    assert not query.is_complete("SELECT ';'")
    assert not query.is_complete("SELECT 1 -- ;")


def test_references_find_tables_not_strings_or_columns() -> None:
    text = (
        "SELECT iotlake.devices.device, 'iotlake.packets' FROM iotlake.devices "
        "JOIN `iotlake`.`captures` c -- iotlake.sites\n JOIN spark_catalog.iotlake.flows f JOIN other.iotlake.x"
    )
    found = [(r.table, text[r.start : r.end]) for r in query.references(text)]
    assert found == [
        ("devices", "iotlake.devices"),
        ("devices", "iotlake.devices"),
        ("captures", "`iotlake`.`captures`"),
        ("flows", "spark_catalog.iotlake.flows"),
    ]
    assert [r.table for r in query.references(text, known={"flows"})] == ["flows"]


def test_rewrite_keeps_every_position() -> None:
    text = "SELECT nosuch FROM `iotlake`.`devices` WHERE x = 1"
    rewritten = query.rewrite(text, query.references(text))
    assert len(rewritten) == len(text)
    assert rewritten.index("WHERE") == text.index("WHERE")
    assert "iotlake_devices" in rewritten


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", query.AsOf(None, version=3)),
        ("volume_stats=12", query.AsOf("volume_stats", version=12)),
        ("2026-01-31", query.AsOf(None, timestamp="2026-01-31 00:00:00")),
        ("2026-01-31T12:00:00+01:00", query.AsOf(None, timestamp="2026-01-31 11:00:00")),
        ("packets=2026-01-31 10:00", query.AsOf("packets", timestamp="2026-01-31 10:00:00")),
    ],
)
def test_parse_as_of(value: str, expected: query.AsOf) -> None:
    assert query.parse_as_of(value) == expected


def test_parse_as_of_rejects_other_text_in_one_line() -> None:
    with pytest.raises(IotlakeError, match=r"^--as-of: 'yesterday' is neither"):
        query.parse_as_of("yesterday")


def test_scope_prefers_a_table_s_own_point() -> None:
    scope = query.make_scope(["5", "packets=2"], "demo")
    assert scope.point("packets") == query.AsOf("packets", version=2)
    assert scope.point("devices") == query.AsOf(None, version=5)
    with pytest.raises(IotlakeError, match="invalid dataset name"):
        query.make_scope(None, "no way")
