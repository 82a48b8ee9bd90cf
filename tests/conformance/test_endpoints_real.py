"""Endpoints on a real home capture: the TP-Link plug's cloud peers are named from the capture's own DNS answers
and classed First party under the shipped rules. Expected names come from tshark reading the same file."""

from __future__ import annotations

import subprocess

import pytest
from pyspark.sql import functions as F

from tests.conftest import require_tools, shared_file

PLUG = "50:c7:bf:33:1f:09"  # TP-Link OUI 50:c7:bf: the HS110 plug of the PingPong home capture


def tplink_answers(path) -> dict[str, str]:
    """Address → asked name, for answer-section A records about TP-Link cloud names, straight from tshark."""
    fields = ["dns.qry.name", "dns.count.answers", "dns.resp.type", "dns.a"]
    out = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(path),
            "-Y",
            'dns.flags.response == 1 && dns.qry.name contains "tplink"',
            "-T",
            "fields",
            *(a for f in fields for a in ("-e", f)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    answers = {}
    for line in out.splitlines():
        name, count, types, addresses = line.split("\t")
        in_answer_section = types.split(",")[: int(count)].count("1")  # A records come first, in order
        for address in addresses.split(",")[:in_answer_section]:
            answers[address] = name
    return answers


@pytest.mark.realdata
def test_tplink_plug_cloud_endpoints_are_named_by_dns_and_first_party(spark, config, tmp_path) -> None:
    require_tools("tshark")
    from iotlake import pipeline

    capture = shared_file("pingpong/wlan1.local.dns.pcap")
    macs = tmp_path / "macs.csv"
    macs.write_text(f"device,mac,vendor\nplug,{PLUG},TP-Link\n")
    plans = pipeline.plan_files(config, "pingpong-endpoints", "home", [capture], macs, None)
    pipeline.ingest(spark, config, "pingpong-endpoints", plans, progress=False)
    pipeline.build(spark, config, ["pingpong-endpoints"], only=pipeline.models_for(config, "endpoint_usage"))
    answers = tplink_answers(capture)
    rows = (
        spark.table("iotlake.endpoint_usage")
        .where("dataset = 'pingpong-endpoints' AND device = 'plug' AND profile = 'all'")
        .where(F.col("remote_ip").isin(list(answers)))
        .collect()
    )
    assert rows, "the plug talks to none of the addresses its DNS answers named"
    for row in rows:
        assert row["name"].endswith(("tplinkra.com", "tplinkcloud.com")), row
        assert row["name_source"] in ("dns", "sni", "dns_stale")
        assert row["class"] == "First", row
    assert {r["name"] for r in rows if r["name_source"].startswith("dns")} <= set(answers.values())


def certificate_names(path) -> dict[str, set[str]]:
    """Server address → SAN dNSNames of the certificates it sent, as tshark's x509 dissector reads them."""
    out = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(path),
            "-Y",
            "tls.handshake.certificate",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "ip.src",
            "-e",
            "x509ce.dNSName",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names: dict[str, set[str]] = {}
    for line in out.splitlines():
        server, _, dns_names = line.partition("\t")
        names.setdefault(server, set()).update(n.lower() for n in dns_names.split(",") if n)
    return names


@pytest.mark.realdata
def test_certificates_of_the_plug_cloud_match_tshark_and_its_sni(spark, config, tmp_path) -> None:
    require_tools("tshark")
    from iotlake import pipeline

    capture = shared_file("pingpong/wlan1.local.dns.pcap")
    macs = tmp_path / "macs.csv"
    macs.write_text(f"device,mac,vendor\nplug,{PLUG},TP-Link\n")
    plans = pipeline.plan_files(config, "pingpong-certs", "home", [capture], macs, None)
    pipeline.ingest(spark, config, "pingpong-certs", plans, progress=False)
    pipeline.build(spark, config, ["pingpong-certs"], only=["device_packets"])
    pipeline.enrich(spark, config, ["pingpong-certs"])
    expected = certificate_names(capture)
    rows = spark.table("iotlake.certificates").where("dataset = 'pingpong-certs' AND visible").collect()
    assert {r["server_ip"] for r in rows} == set(expected)
    for row in rows:
        # the leaf's SANs are among the names tshark read from the chain the server sent
        assert set(row["san_dns"]) <= expected[row["server_ip"]]
        if row["sni"] and row["sni"].endswith(".tplinkra.com"):
            assert row["subject_cn"] == "*.tplinkra.com" and row["sni_matches"] is True
