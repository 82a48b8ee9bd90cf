"""Cross-dataset comparison views (sql/compare/) over the demo and a relabelled copy of its gold rows.

The copy (`demo_copy`) is the demo's devices and gold rows under another dataset name with every frame and
byte total doubled, so the dataset comparison knows its answer (ratio 2) without a second ingest; it is
removed again at the end of the module.
"""

from __future__ import annotations

import csv
import io

import pytest
from pyspark.sql import functions as F

from iotlake import compare
from iotlake.cli import main
from iotlake.config import Config
from iotlake.errors import IotlakeError
from iotlake.lake import tables
from iotlake.lake.writer import write_table

COPY = "demo_copy"
COPIED = ("devices", "volume_stats", "protocol_type_distribution", "endpoint_class_distribution")
DOUBLED = ("frames_total", "bytes_total")


@pytest.fixture(scope="module")
def lake(spark, config: Config, demo_lake):
    """The demo plus `demo_copy` (frame and byte totals doubled) in the tables the views read."""
    for name in COPIED:
        entry = tables.table(name)
        frame = (
            spark.read.format("delta").load(entry.path(config.lake_root)).where(F.col("dataset") == "demo")
        )
        frame = frame.withColumn("dataset", F.lit(COPY))
        frame = frame.withColumns({c: F.col(c) * 2 for c in DOUBLED if c in frame.columns})
        write_table(frame, entry, config.lake_root, {"dataset": COPY}, "test_compare")
    yield config
    for name in COPIED:
        entry = tables.table(name)
        empty = spark.read.format("delta").load(entry.path(config.lake_root)).limit(0)
        write_table(empty, entry, config.lake_root, {"dataset": COPY}, "test_compare")


def rows(frame) -> list[dict]:
    return [r.asDict() for r in frame.collect()]


def test_views_are_registered_for_sql(spark, lake: Config) -> None:
    found = compare.register_views(spark, lake.lake_root, lake.project_dir / "sql")
    assert [v.qualified for v in found] == [f"iotlake_compare.{n}" for n in compare.VIEWS]
    assert all(v.comment and v.grain for v in found)
    count = spark.sql("SELECT count(*) FROM iotlake_compare.models WHERE dataset = 'demo'").collect()[0][0]
    assert count > 0


def test_same_model_across_sites_side_by_side(spark, lake: Config) -> None:
    plugs = rows(compare.devices(spark, lake, kind="PLUG", profile="all"))
    demo = [r for r in plugs if r["dataset"] == "demo"]
    assert [(r["vendor"], r["site"], r["device"]) for r in demo] == [
        ("TP-Link", "home1", "plug"),
        ("TP-Link", "home2", "plug"),
    ]
    stats = spark.sql(
        "SELECT site, frames_total FROM iotlake.volume_stats WHERE dataset = 'demo' AND device = 'plug' "
        "AND capture = '*' AND profile = 'all' AND scope = 'ALL'"
    ).collect()
    assert {r["site"]: r["frames"] for r in demo} == {r["site"]: r["frames_total"] for r in stats}
    # the mean over every plug of every dataset is the reference: the ratios average to 1
    assert sum(r["frames_per_hour_vs_model"] for r in plugs) / len(plugs) == pytest.approx(1.0)
    for r in demo:
        mix = [r[c] for c in ("encrypted_share", "unencrypted_share", "discovery_share", "management_share")]
        assert sum(mix) + r["unknown_share"] == pytest.approx(1.0)
        parties = r["first_party_share"] + r["support_share"] + r["third_party_share"] + r["local_share"]
        assert parties == pytest.approx(1.0, abs=1e-9) or parties == 0
        assert 0 < r["wan_share"] < 1 and 0 < r["tx_share"] < 1 and r["hours"] > 1
    samsung = rows(compare.devices(spark, lake, vendor="samsung", profile="all"))
    assert {r["kind"] for r in samsung} == {"hub", "tv"}


def test_models_per_site_and_vendor(spark, lake: Config) -> None:
    found = rows(compare.models(spark, lake, vendor="Samsung", profile="all"))
    demo = {(r["kind"], r["site"]): r["devices"] for r in found if r["dataset"] == "demo"}
    assert demo == {
        ("*", "home1"): 2,
        ("*", "home2"): 1,
        ("hub", "home1"): 1,
        ("hub", "home2"): 1,
        ("tv", "home1"): 1,
    }
    assert found[0]["kind"] == "*"  # the vendor row first


def test_one_dataset_against_another(spark, lake: Config) -> None:
    found = rows(compare.dataset_pair(spark, lake, "demo", COPY, profile="all"))
    total = found[0]
    assert (total["vendor"], total["kind"]) == ("*", "*")
    assert total["devices_a"] == total["devices_b"] == 11
    assert total["frames_per_hour_ratio"] == pytest.approx(2.0)
    assert total["bytes_per_hour_ratio"] == pytest.approx(2.0)
    assert total["encrypted_share_a"] == pytest.approx(total["encrypted_share_b"])
    by_model = {(r["vendor"], r["kind"]): r for r in found}
    assert by_model[("Samsung", "*")]["devices_a"] == 3
    assert by_model[("TP-Link", "plug")]["sites_b"] == 2
    with pytest.raises(IotlakeError, match="unknown dataset 'nope'"):
        compare.dataset_pair(spark, lake, "demo", "nope", profile="all")


def test_cli_prints_csv(lake: Config, capsys) -> None:
    capsys.readouterr()
    args = ["compare", "datasets", "demo", COPY, "--profile", "all", "--vendor", "tp-link", "--format", "csv"]
    try:
        main([*args, "--conf", str(lake.conf_dir), "--lake", lake.lake_root])
    except SystemExit as exc:
        assert not exc.code
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["vendor"], r["kind"]) for r in table] == [("*", "*"), ("TP-Link", "*"), ("TP-Link", "plug")]
    assert float(table[2]["frames_per_hour_ratio"]) == pytest.approx(2.0)
