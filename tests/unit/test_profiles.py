"""Profile exporters over hand-written signature rows: signature.csv, YAML profile, nftables rules, MUD file."""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from iotlake.errors import IotlakeError
from iotlake.signatures import profiles as P
from tests.conftest import shared_file

SCHEMA = json.loads((Path(__file__).parent / "data" / "mud.schema.json").read_text())
WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
PLUG_IP = "192.168.1.135"


def element(no: int, **values: Any) -> dict[str, Any]:
    """An `event_signatures` row with defaults for the columns a test does not care about."""
    row = {
        "dataset": "test",
        "device": "plug",
        "event": "toggle",
        "element_no": no,
        "elements": 3,
        "fingerprint": f"f{no}",
        "app_fields": None,
        "support": 1.0,
        "min_packets": 4,
        "max_packets": 10,
    }
    row.update(values)
    return row


# The lead's signature of the shared test traces (TP-Link plug toggled from the phone).
PLUG_ROWS = [
    element(
        1,
        remote="192.168.1.110",
        remote_key="192.168.1.110",
        scope="LAN",
        transport="tcp",
        application="tplink-smarthome",
        fixed_port=9999,
        device_role="server",
        initiator="remote",
    ),
    element(
        2,
        remote="192.168.1.1",
        remote_key="192.168.1.1",
        scope="LAN",
        transport="udp",
        application="dns",
        fixed_port=53,
        device_role="client",
        initiator="device",
        app_fields="qtype=1 qname=tplinkra.com",
        min_packets=2,
        max_packets=2,
    ),
    element(
        3,
        remote="use1-api.tplinkra.com",
        remote_key="tplinkra.com",
        scope="WAN",
        transport="tcp",
        application="https",
        fixed_port=443,
        device_role="client",
        initiator="device",
        max_packets=40,
    ),
]
EXPECTED_PLUG = [
    ["192.168.1.110", "", PLUG_IP, "9999", "TCP", ""],
    [PLUG_IP, "", "192.168.1.1", "53", "UDP", "DNS Question Record"],
    [PLUG_IP, "", "use1-api.tplinkra.com", "443", "TCP", ""],
]

# A second device: CoAP to a LAN peer of the same vendor, an HTTP request to the cloud, a one-way DHCP request.
HUB_ROWS = [
    element(
        1,
        device="hub",
        event="on",
        remote="192.168.1.50",
        remote_key="192.168.1.50",
        scope="LAN",
        transport="udp",
        application="coap",
        fixed_port=5683,
        device_role="client",
        initiator="device",
        app_fields="coap=0/1 coap_uri=light/state",
        min_packets=2,
    ),
    element(
        2,
        device="hub",
        event="on",
        remote="api.meethue.com",
        remote_key="meethue.com",
        scope="WAN",
        transport="tcp",
        application="http",
        fixed_port=80,
        device_role="client",
        initiator="device",
        app_fields="method=GET uri=/api/config",
    ),
    element(
        3,
        device="hub",
        event="on",
        remote="255.255.255.255",
        remote_key="255.255.255.255",
        scope="LAN",
        transport="udp",
        application="dhcp",
        fixed_port=67,
        device_role="client",
        initiator="device",
        app_fields="dhcp=3",
        min_packets=1,
        max_packets=1,
    ),
]
PATTERNS = [
    {
        "device": "plug",
        "capture": capture,
        "remote": "n-devs.tplinkcloud.com",
        "transport": "tcp",
        "application": "https",
        "server_port": 443,
        "periodic": periodic,
        "period_s": period,
        "flows": 10,
        "packets": 120,
    }
    for capture, periodic, period in (("c1", True, 60.0), ("c2", True, 61.0), ("c3", False, 300.0))
] + [
    {
        "device": "plug",
        "capture": "c1",
        "remote": "8.8.8.8",
        "transport": "udp",
        "application": "ntp",
        "server_port": 123,
        "periodic": False,
        "period_s": None,
        "flows": 1,
        "packets": 2,
    }
]

PLUG = P.Device(
    "plug",
    mac="50:c7:bf:ed:0a:54",
    ipv4=PLUG_IP,
    network="192.168.1.0/24",
    vendor="TP-Link",
    gateways=("192.168.1.1",),
    peers={"192.168.1.110": P.Peer("phone", "Google")},
)
HUB = P.Device(
    "hub",
    mac="00:17:88:00:00:01",
    ipv4="192.168.1.20",
    vendor="Philips",
    gateways=("192.168.1.1",),
    peers={"192.168.1.50": P.Peer("lamp", "philips")},
)


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def plug_profile() -> P.DeviceProfile:
    return P.build_profile(PLUG, PLUG_ROWS, P.background_rows(PATTERNS))


def plug_mud() -> dict[str, Any]:
    return P.mud_document(plug_profile(), "https://mud.iotlake.invalid/test/plug.json", last_update=WHEN)


def hub_mud() -> dict[str, Any]:
    profile = P.build_profile(HUB, HUB_ROWS)
    return P.mud_document(profile, "https://mud.iotlake.invalid/test/hub.json", last_update=WHEN)


# --------------------------------------------------------------------------- signature.csv


def test_signature_csv_in_element_order() -> None:
    rows = parse_csv(P.signature_csv(PLUG_ROWS, PLUG_IP))
    assert rows[0] == P.CSV_HEADER
    assert rows[1:] == EXPECTED_PLUG


def test_signature_csv_matches_earlier_tool() -> None:
    """Same header and rows as the earlier tool's output on the shared traces. Its row order follows its
    reference capture's flows (first payload packet), ours the element order, so rows compare as a set."""
    expected = parse_csv(shared_file("signature-extraction/test/network/signature.csv").read_text())
    ours = parse_csv(P.signature_csv(PLUG_ROWS, PLUG_IP))
    assert ours[0] == expected[0]
    assert sorted(ours[1:]) == sorted(expected[1:])


def test_signature_csv_application_protocols_and_dhcp_ports() -> None:
    rows = parse_csv(P.signature_csv(list(reversed(HUB_ROWS)), HUB.ipv4))[1:]
    assert rows == [
        ["192.168.1.20", "", "192.168.1.50", "5683", "UDP", "CoAP"],
        ["192.168.1.20", "", "api.meethue.com", "80", "TCP", "HTTP Request"],
        ["192.168.1.20", "68", "255.255.255.255", "67", "UDP", "DHCP options"],
    ]


def test_signature_csv_without_device_address_writes_self() -> None:
    rows = parse_csv(P.signature_csv(PLUG_ROWS[:1], None))
    assert rows[1][2] == "self"


# --------------------------------------------------------------------------- YAML profile


def test_profile_yaml_structure() -> None:
    doc = yaml.safe_load(P.profile_yaml(plug_profile()))
    assert list(doc) == ["device-info", "single-policies", "interactions"]
    assert doc["device-info"] == {
        "name": "plug",
        "mac": "50:c7:bf:ed:0a:54",
        "ipv4": PLUG_IP,
        "network": "192.168.1.0/24",
    }
    policies = doc["single-policies"]
    toggle = doc["interactions"]["toggle"]
    assert len(toggle) == 3 and all(name in policies for name in toggle)

    lan, dns, cloud = (policies[name]["protocols"] for name in toggle)
    assert lan == {"ipv4": {"src": "phone", "dst": "self"}, "tcp": {"dst-port": 9999}}
    assert dns == {
        "ipv4": {"src": "self", "dst": "gateway"},
        "udp": {"dst-port": 53},
        "dns": {"qtype": "A", "domain-name": "$.tplinkra.com"},
    }
    assert cloud == {"ipv4": {"src": "self", "dst": "$.tplinkra.com"}, "tcp": {"dst-port": 443}}
    assert all(policies[name]["bidirectional"] is True for name in toggle)
    assert policies[toggle[2]]["stats"] == {"packet-count": 40}


def test_profile_background_policies() -> None:
    doc = P.profile_dict(plug_profile())
    background = [p for name, p in doc["single-policies"].items() if "period" in p.get("stats", {})]
    assert background == [
        {
            "protocols": {"ipv4": {"src": "self", "dst": "$.tplinkcloud.com"}, "tcp": {"dst-port": 443}},
            "bidirectional": True,
            "stats": {"period": "60.5s"},
        }
    ]
    # Not periodic anywhere: not a policy.
    assert not any("ntp" in name for name in doc["single-policies"])


def test_background_rows_aggregate_captures() -> None:
    rows = P.background_rows(PATTERNS)
    assert [(r["remote"], r["fixed_port"], r["period_s"], r["flows"]) for r in rows] == [
        ("n-devs.tplinkcloud.com", 443, 60.5, 30)
    ]


def test_profile_application_layers_and_one_way_flows() -> None:
    doc = P.profile_dict(P.build_profile(HUB, HUB_ROWS))
    coap, http, dhcp = (doc["single-policies"][n] for n in doc["interactions"]["on"])
    assert coap["protocols"]["ipv4"] == {"src": "self", "dst": "lamp"}
    assert coap["protocols"]["coap"] == {"type": "CON", "method": "GET", "uri": "/light/state"}
    assert http["protocols"]["http"] == {"method": "GET", "uri": "/api/config"}
    assert http["protocols"]["ipv4"]["dst"] == "$.meethue.com"
    assert dhcp["protocols"] == {
        "ipv4": {"src": "self", "dst": "broadcast"},
        "udp": {"src-port": 68, "dst-port": 67},
        "dhcp": {"type": "request", "client-mac": "self"},
    }
    assert "bidirectional" not in dhcp


def test_identical_flows_share_one_policy_across_events() -> None:
    off = [dict(row, event="off") for row in PLUG_ROWS]
    doc = P.profile_dict(P.build_profile(PLUG, PLUG_ROWS + off))
    assert doc["interactions"]["off"] == doc["interactions"]["toggle"]
    assert len(doc["single-policies"]) == 3


def test_exact_names_are_not_wildcards() -> None:
    row = dict(PLUG_ROWS[2], remote="tplinkra.com", remote_key="tplinkra.com")
    doc = P.profile_dict(P.build_profile(PLUG, [row]))
    (policy,) = doc["single-policies"].values()
    assert policy["protocols"]["ipv4"]["dst"] == "tplinkra.com"


def test_host_key_follows_sql() -> None:
    assert P.host_key("use1-api.tplinkra.com") == "tplinkra.com"
    assert P.host_key("tplinkra.com.") == "tplinkra.com"
    assert P.host_key("a.b.c.d") == "b.c.d"
    assert P.host_key("192.168.1.1") == "192.168.1.1"
    assert P.host_key("fe80::1") == "fe80::1"


# --------------------------------------------------------------------------- nftables


def test_firewall_rules() -> None:
    text = P.firewall_nft(plug_profile())
    assert text.startswith("#!/usr/sbin/nft -f\n")
    assert "table inet iotlake {" in text
    assert "    chain plug {" in text
    for rule in (
        "ip saddr 192.168.1.110 ip daddr 192.168.1.135 tcp dport 9999 accept",
        "ip saddr 192.168.1.135 ip daddr 192.168.1.110 tcp sport 9999 accept",
        "ip saddr 192.168.1.135 ip daddr 192.168.1.1 udp dport 53 accept",
        "ip saddr 192.168.1.1 ip daddr 192.168.1.135 udp sport 53 accept",
        "ip saddr 192.168.1.135 ip daddr @plug_tplinkra_com tcp dport 443 accept",
        "ip saddr @plug_tplinkra_com ip daddr 192.168.1.135 tcp sport 443 accept",
        "ip saddr 192.168.1.135 ip daddr @plug_tplinkcloud_com tcp dport 443 accept",
        "set plug_tplinkra_com {",
        "type filter hook forward priority filter; policy accept;",
        "ip daddr 192.168.1.135 jump plug",
    ):
        assert rule in text, rule
    chain = text[text.index("    chain plug {") :]
    chain = chain[: chain.index("\n    }")]
    assert chain.rstrip().endswith('log prefix "iotlake plug drop: " drop')
    assert text.count("{") == text.count("}")


def test_firewall_one_way_flow_has_no_answer_rule() -> None:
    text = P.firewall_nft(P.build_profile(HUB, HUB_ROWS))
    assert "ip saddr 192.168.1.20 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept" in text
    assert "ip saddr 255.255.255.255" not in text


def test_firewall_needs_an_address() -> None:
    with pytest.raises(ValueError, match="no IPv4"):
        P.firewall_nft(P.build_profile(P.Device("mystery"), PLUG_ROWS))


# --------------------------------------------------------------------------- MUD


def check_references(doc: dict[str, Any]) -> None:
    """What the schema cannot say: policies name existing ACLs, names are unique."""
    acls = doc["ietf-access-control-list:acls"]["acl"]
    names = [acl["name"] for acl in acls]
    assert len(names) == len(set(names))
    mud = doc["ietf-mud:mud"]
    for key in ("from-device-policy", "to-device-policy"):
        for ref in mud[key]["access-lists"]["access-list"]:
            assert ref["name"] in names
    for acl in acls:
        aces = [ace["name"] for ace in acl["aces"]["ace"]]
        assert len(aces) == len(set(aces))


@pytest.mark.parametrize("make", [plug_mud, hub_mud], ids=["plug", "hub"])
def test_mud_validates(make: Callable[[], dict[str, Any]]) -> None:
    doc = make()
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)
    check_references(doc)
    assert json.loads(json.dumps(doc)) == doc


def test_mud_content() -> None:
    doc = plug_mud()
    mud = doc["ietf-mud:mud"]
    assert mud["mud-version"] == 1 and mud["is-supported"] is True
    assert mud["last-update"] == "2024-05-06T07:08:09+00:00"
    acls = {acl["name"]: acl for acl in doc["ietf-access-control-list:acls"]["acl"]}
    out = [ace["matches"] for ace in acls["mud-plug-v4fr"]["aces"]["ace"]]
    back = [ace["matches"] for ace in acls["mud-plug-v4to"]["aces"]["ace"]]
    assert {
        "ipv4": {"protocol": 6, "ietf-acldns:dst-dnsname": "use1-api.tplinkra.com"},
        "tcp": {
            "destination-port": {"operator": "eq", "port": 443},
            "ietf-mud:direction-initiated": "from-device",
        },
    } in out
    assert {
        "ipv4": {"protocol": 6, "ietf-acldns:src-dnsname": "use1-api.tplinkra.com"},
        "tcp": {
            "source-port": {"operator": "eq", "port": 443},
            "ietf-mud:direction-initiated": "from-device",
        },
    } in back
    assert {
        "ipv4": {"protocol": 6},
        "tcp": {
            "destination-port": {"operator": "eq", "port": 9999},
            "ietf-mud:direction-initiated": "to-device",
        },
        "ietf-mud:mud": {"local-networks": [None]},
    } in back


def test_mud_lan_peers_and_broadcast() -> None:
    acls = {acl["name"]: acl for acl in hub_mud()["ietf-access-control-list:acls"]["acl"]}
    out = [ace["matches"] for ace in acls["mud-hub-v4fr"]["aces"]["ace"]]
    assert {
        "ipv4": {"protocol": 17},
        "udp": {"destination-port": {"operator": "eq", "port": 5683}},
        "ietf-mud:mud": {"same-manufacturer": [None]},
    } in out
    assert {
        "ipv4": {"protocol": 17, "destination-ipv4-network": "255.255.255.255/32"},
        "udp": {
            "source-port": {"operator": "eq", "port": 68},
            "destination-port": {"operator": "eq", "port": 67},
        },
    } in out
    back = [ace["matches"] for ace in acls["mud-hub-v4to"]["aces"]["ace"]]
    assert not any("255.255.255.255/32" in json.dumps(m) for m in back)


def _ace(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["ietf-access-control-list:acls"]["acl"][0]["aces"]["ace"][0]


def _set(path: list[str], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


BROKEN: dict[str, Callable[[dict[str, Any]], None]] = {
    "no mud-url": lambda d: d["ietf-mud:mud"].pop("mud-url"),
    "no is-supported": lambda d: d["ietf-mud:mud"].pop("is-supported"),
    "no acls": lambda d: d.pop("ietf-access-control-list:acls"),
    "mud-version 2": _set(["ietf-mud:mud", "mud-version"], 2),
    "http mud-url": _set(["ietf-mud:mud", "mud-url"], "http://example.com/plug.json"),
    "bad last-update": _set(["ietf-mud:mud", "last-update"], "2024-05-06 07:08"),
    "cache-validity 200": _set(["ietf-mud:mud", "cache-validity"], 200),
    "long systeminfo": _set(["ietf-mud:mud", "systeminfo"], "x" * 61),
    "unknown mud leaf": _set(["ietf-mud:mud", "vendor"], "TP-Link"),
    "bad acl type": lambda d: d["ietf-access-control-list:acls"]["acl"][0].update(type="ip-acl-type"),
    "acl without aces": lambda d: d["ietf-access-control-list:acls"]["acl"][0].pop("aces"),
    "forwarding allow": lambda d: _ace(d)["actions"].update(forwarding="allow"),
    "no actions": lambda d: _ace(d).pop("actions"),
    "port as string": lambda d: _ace(d)["matches"]["tcp"]["source-port"].update(port="9999"),
    "port out of range": lambda d: _ace(d)["matches"]["tcp"]["source-port"].update(port=70000),
    "bad operator": lambda d: _ace(d)["matches"]["tcp"]["source-port"].update(operator="equals"),
    "bad direction": lambda d: _ace(d)["matches"]["tcp"].update({"ietf-mud:direction-initiated": "both"}),
    "ipv4 and ipv6": lambda d: _ace(d)["matches"].update(ipv6={"protocol": 6}),
    "tcp and udp": lambda d: _ace(d)["matches"].update(udp={}),
    "protocol 300": lambda d: _ace(d)["matches"]["ipv4"].update(protocol=300),
    "bad prefix": lambda d: _ace(d)["matches"]["ipv4"].update(
        {"destination-ipv4-network": "192.168.1.300/32"}
    ),
    "name and network": lambda d: _ace(d)["matches"]["ipv4"].update(
        {"destination-ipv4-network": "1.2.3.4/32", "ietf-acldns:dst-dnsname": "a.example.com"}
    ),
    "local-networks true": lambda d: _ace(d)["matches"].update({"ietf-mud:mud": {"local-networks": True}}),
    "long ace name": lambda d: _ace(d).update(name="n" * 65),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_mud_schema_rejects(name: str) -> None:
    doc = copy.deepcopy(plug_mud())
    BROKEN[name](doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)


# --------------------------------------------------------------------------- files


def test_write_device_files(tmp_path: Path) -> None:
    rows = PLUG_ROWS + [dict(r, event="off") for r in PLUG_ROWS]
    files = P.write_device(PLUG, rows, PATTERNS, ["all"], tmp_path, last_update=WHEN)
    folder = tmp_path / "plug"
    assert sorted(p.name for p in files) == [
        "firewall.nft",
        "plug.mud.json",
        "profile.yaml",
        "signature-off.csv",
        "signature-toggle.csv",
    ]
    assert all(p.parent == folder for p in files)
    assert parse_csv((folder / "signature-toggle.csv").read_text())[1:] == EXPECTED_PLUG
    jsonschema.validate(json.loads((folder / "plug.mud.json").read_text()), SCHEMA)


def test_write_device_some_formats_and_no_address(tmp_path: Path) -> None:
    files = P.write_device(P.Device("mystery"), PLUG_ROWS, [], ["yaml", "nft"], tmp_path)
    assert [p.name for p in files] == ["profile.yaml"]


def test_unknown_format() -> None:
    with pytest.raises(IotlakeError, match="pdf"):
        P.check_formats(["csv", "pdf"])
