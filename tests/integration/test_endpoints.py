"""Endpoints of the demo dataset against the generator's ground truth: names, classes and owners."""

from __future__ import annotations

import pytest

from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def enriched(spark, config, demo_lake):
    """Owners from the offline data (no network here), then the endpoint models rebuilt over them."""
    from iotlake import pipeline

    report = pipeline.enrich(spark, config, ["demo"])
    pipeline.build(spark, config, ["demo"], only=list(pipeline.ENDPOINT_MODELS))
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


# The Encrypted server ports of the reference taxonomy (§5): https and secure MQTT.
ENCRYPTED = {("tcp", 443), ("tcp", 8883)}


def _truth_endpoints(truth: dict):
    for site, site_truth in truth["sites"].items():
        for capture, capture_truth in site_truth["captures"].items():
            for device, device_truth in capture_truth["devices"].items():
                for endpoint in device_truth["endpoints"]:
                    yield site, capture, device, endpoint


def test_encrypted_traffic_and_its_first_party_share_equal_the_truth(spark, enriched, truth) -> None:
    """`own` semantics: the Encrypted category holds exactly the truth's TLS endpoints' frames (443, 8883)."""
    expected: dict[tuple, list[int]] = {}
    for site, capture, device, endpoint in _truth_endpoints(truth):
        if (endpoint["transport"], endpoint["port"]) in ENCRYPTED:
            totals = expected.setdefault((site, capture, device), [0, 0])
            totals[0] += endpoint["frames"]
            totals[1] += endpoint["frames"] if endpoint["class"] == "First" else 0
    rows = (
        spark.table("iotlake.endpoint_protocol_distribution")
        .where("dataset = 'demo' AND profile = 'all' AND semantics = 'own' AND category = 'Encrypted'")
        .where("capture <> '*'")
        .collect()
    )
    got = {
        (r["site"], r["capture"], r["device"]): [
            r["packets_overall"],
            round(r["packets_overall"] * r["packets_pct_first"]),
        ]
        for r in rows
    }
    assert got == expected


def test_pms_semantics_count_an_endpoint_once_per_protocol(spark, enriched) -> None:
    """An endpoint's whole traffic goes to each category of each protocol it used, so pms >= own per category."""
    rows = (
        spark.table("iotlake.endpoint_protocol_distribution")
        .where("dataset = 'demo' AND capture = '*'")
        .collect()
    )
    by_key = {(r["site"], r["device"], r["profile"], r["category"], r["semantics"]): r for r in rows}
    compared = 0
    for (site, device, profile, category, semantics), row in by_key.items():
        own = by_key.get((site, device, profile, category, "own"))
        if semantics == "pms" and own is not None:
            assert row["packets_overall"] >= own["packets_overall"]
            compared += 1
    assert compared > 0


def test_manual_override_wins_over_rules_and_is_named(spark, config, enriched, truth) -> None:
    """`iotlake label` semantics: an IP override and a host override (a parent domain) decide the class."""
    from iotlake import pipeline
    from iotlake.enrich import overrides

    named = [(s, c, d, e) for s, c, d, e in _truth_endpoints(truth) if e["name"] and e["class"] != "Third"]
    site, capture, device, by_ip = named[0]
    other = next(e for s, c, d, e in named if (s, c) == (site, capture) and e["ip"] != by_ip["ip"])
    parent = other["name"].split(".", 1)[1]
    rows = [
        overrides.make_override(by_ip["ip"], None, "Third", "demo", device, note="test"),
        overrides.make_override(None, parent, "Third", note="test"),
    ]
    pipeline.add_overrides(spark, config, rows)
    try:
        pipeline.build(spark, config, ["demo"], only=["endpoint_usage"])
        got = {
            (r["device"], r["remote_ip"]): (r["class"], r["class_rule"])
            for r in spark.table("iotlake.endpoint_usage")
            .where(f"dataset = 'demo' AND site = '{site}' AND capture = '{capture}' AND profile = 'all'")
            .collect()
        }
        assert got[(device, by_ip["ip"])] == ("Third", f"override ip {by_ip['ip']}")
        host_rows = {v for (d, ip), v in got.items() if ip == other["ip"]}
        assert host_rows == {("Third", f"override host {parent}")}
        assert sorted(o.value for o in pipeline.list_overrides(spark, config)) == sorted(
            [by_ip["ip"], parent]
        )
    finally:
        assert pipeline.remove_overrides(spark, config, rows) == 2
        pipeline.build(spark, config, ["demo"], only=["endpoint_usage"])


PMS_ENDPOINTS = SHARED_DATA / "passive-mode-study/data/endpoints"
# reference passive-mode-study §6.4: the curated header, with its leading spaces
CURATED_HEADER = (
    "IP,Type, Cert Owner, Cert Location, WHOIS Owner, WHOIS Location, ASN Owner, ASN Location, Original Hostname, "
    "Modified Hostname, IP Geolocation, Cert Geolocations, Packets, Bytes, TxPackets, TxBytes, RxPackets, RxBytes"
)


def test_endpoint_exports_have_the_earlier_headers_and_the_true_types(
    spark, config, enriched, truth, tmp_path
):
    from iotlake import pipeline

    report = pipeline.export_endpoints(spark, config, "demo", "all", tmp_path)
    expected_rows = 0
    for site, capture, device, endpoint in _truth_endpoints(truth):
        path = tmp_path / f"{site}-{capture}-split-{device}-endpoints.csv"
        lines = path.read_text().splitlines()
        assert lines[0] == CURATED_HEADER
        row = next(line.split(",") for line in lines[1:] if line.startswith(endpoint["ip"] + ","))
        assert row[1] == endpoint["class"]
        assert (int(row[-6]), int(row[-5])) == (endpoint["frames"], endpoint["bytes"])
        expected_rows += 1
    assert expected_rows and report.files >= 3
    for name in (
        "endpoint_type_distribution",
        "local_endpoint_distribution",
        "endpoint_protocol_distribution",
    ):
        header = (tmp_path / f"{name}.csv").read_text().splitlines()[0]
        if PMS_ENDPOINTS.is_dir():
            assert header == (PMS_ENDPOINTS / f"{name}.csv").read_text().splitlines()[0].strip()
        assert (
            len(header.split(","))
            == {"endpoint_type": 31, "local_endpoint": 14, "endpoint_protocol": 32}[name.rsplit("_", 1)[0]]
        )
