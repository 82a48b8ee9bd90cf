"""Endpoints of the demo dataset against the generator's ground truth: names, classes and owners."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def enriched(spark, config, demo_lake):
    """Owners from the offline data (no network here), then the endpoint models rebuilt over them."""
    from iotlake import pipeline

    report = pipeline.enrich(spark, config, ["demo"])
    pipeline.build(spark, config, ["demo"], only=["endpoint_usage", "endpoint_class_distribution"])
    return report


def test_every_remote_endpoint_has_the_true_name_and_class(spark, enriched, truth) -> None:
    rows = {
        (r["site"], r["capture"], r["device"], r["remote_ip"]): r
        for r in spark.table("iotlake.endpoint_usage")
        .where("dataset = 'demo' AND profile = 'all' AND scope = 'WAN'")
        .collect()
    }
    expected = {}
    for site, site_truth in truth["sites"].items():
        for capture, capture_truth in site_truth["captures"].items():
            for device, device_truth in capture_truth["devices"].items():
                for endpoint in device_truth["endpoints"]:
                    expected[(site, capture, device, endpoint["ip"])] = (endpoint["name"], endpoint["class"])
    assert {key: (r["name"], r["class"]) for key, r in rows.items()} == expected


def test_no_endpoint_is_unclassified_and_local_peers_are_named(spark, enriched) -> None:
    classes = {
        r["class"]
        for r in spark.table("iotlake.endpoint_usage")
        .where("dataset = 'demo'")
        .select("class")
        .distinct()
        .collect()
    }
    assert None not in classes
    assert {"First", "Support", "Local Multicast", "Local (hub)", "Local (bulb)"} <= classes


def test_offline_owner_data_fills_the_demo_public_addresses(spark, enriched) -> None:
    assert enriched.requested > 0 and enriched.unknown == 0
    assert not enriched.rdap_reachable  # this machine has no WHOIS; the run completed anyway
    unnamed = (
        spark.table("iotlake.endpoint_usage")
        .where("dataset = 'demo' AND scope = 'WAN' AND as_name IS NULL")
        .count()
    )
    assert unnamed == 0


def test_class_shares_add_up(spark, enriched) -> None:
    for r in spark.table("iotlake.endpoint_class_distribution").where("dataset = 'demo'").collect():
        for metric in ("packets", "bytes", "tx_packets", "tx_bytes", "rx_packets", "rx_bytes"):
            if r[f"{metric}_overall"]:
                shares = sum(r[f"{metric}_pct_{c}"] for c in ("first", "support", "third", "local"))
                assert shares == pytest.approx(1.0)
