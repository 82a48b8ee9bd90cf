"""Pseudonymised contributions: no original MAC or local IP reaches the lake, and device counts are unchanged.

One contribution of a tiny scapy-built capture (plug and hub on a LAN: cloud traffic, LAN UDP, ARP, a DHCP
ack, an mDNS answer, IPv6 link-local multicast) goes through `iotlake contribute --pseudonymise --key-file`
with a key file that does not exist yet. The expressions themselves are checked on small frames: HMAC-SHA256
as Python's hmac computes it, the same key gives the same pseudonyms, another key other ones.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSRR
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from iotlake.config import Config
from iotlake.errors import IotlakeError
from iotlake.lake import tables
from iotlake.lake.bronze import _hex_bounds
from iotlake.models.runner import register_functions
from iotlake.quality import pseudonymise
from iotlake.quality.pseudonymise import Pseudonymiser, prefixes_of
from tests.conftest import REPO, require_tools
from tests.integration.conftest import run_cli

T0 = 1_700_100_000
DATASET = "contrib_pseudo"
PLUG, HUB, GW = "50:c7:bf:00:00:21", "d0:52:a8:00:00:24", "02:00:00:00:00:01"
PLUG4, HUB4, GW4, REMOTE4 = "192.168.1.21", "192.168.1.24", "192.168.1.1", "203.0.113.10"
HUB6 = "fe80::d252:a8ff:fe00:24"
BROADCAST = "ff:ff:ff:ff:ff:ff"
MACS = f"device,mac,ip,vendor,kind\nplug,{PLUG},{PLUG4},TP-Link,plug\nhub,{HUB},{HUB4},Samsung,hub\n"
ORIGINALS = [PLUG, HUB, GW, PLUG4, HUB4, HUB6]


def frames() -> list[Packet]:
    """The capture: every kind of frame that carries a MAC or a local IP in a catalog column."""
    out: list[Packet] = []
    for _ in range(3):
        out.append(
            Ether(src=PLUG, dst=GW) / IP(src=PLUG4, dst=REMOTE4) / UDP(sport=40000, dport=5683) / Raw(b"up")
        )
    for _ in range(2):
        out.append(
            Ether(src=GW, dst=PLUG) / IP(src=REMOTE4, dst=PLUG4) / UDP(sport=5683, dport=40000) / Raw(b"dn")
        )
    for _ in range(2):
        out.append(
            Ether(src=HUB, dst=PLUG) / IP(src=HUB4, dst=PLUG4) / UDP(sport=9999, dport=9999) / Raw(b"lan")
        )
    out.append(Ether(src=HUB, dst=BROADCAST) / ARP(op=1, hwsrc=HUB, psrc=HUB4, pdst=PLUG4))
    out.append(Ether(src=PLUG, dst=HUB) / ARP(op=2, hwsrc=PLUG, psrc=PLUG4, hwdst=HUB, pdst=HUB4))
    dhcp = BOOTP(op=2, yiaddr=PLUG4, chaddr=bytes.fromhex(PLUG.replace(":", "")))
    dhcp = dhcp / DHCP(options=[("message-type", "ack"), ("server_id", GW4), "end"])
    out.append(Ether(src=GW, dst=PLUG) / IP(src=GW4, dst=PLUG4) / UDP(sport=67, dport=68) / dhcp)
    answer = DNS(qr=1, aa=1, an=DNSRR(rrname="hub.local", type="A", rdata=HUB4, ttl=120))
    out.append(
        Ether(src=HUB, dst="01:00:5e:00:00:fb")
        / IP(src=HUB4, dst="224.0.0.251")
        / UDP(sport=5353, dport=5353)
        / answer
    )
    out.append(Ether(src=HUB, dst="33:33:00:00:00:01") / IPv6(src=HUB6, dst="ff02::1") / ICMPv6EchoRequest())
    for n, frame in enumerate(out):
        frame.time = T0 + n
    return out


def expected_counts(built: list[Packet]) -> dict[str, int]:
    """Frames per device as the MAC attribution counts them: the device's MAC is the source or destination."""
    return {
        name: sum(1 for f in built if mac in (f[Ether].src, f[Ether].dst))
        for name, mac in (("plug", PLUG), ("hub", HUB))
    }


def write_contribution(folder: Path) -> list[Packet]:
    built = frames()
    (folder / "home").mkdir(parents=True)
    (folder / "home" / "macs.csv").write_text(MACS)
    (folder / "home" / "site.yaml").write_text(yaml.safe_dump({"gateway_ips": [GW4]}))
    wrpcap(str(folder / "home" / "lan.pcap"), built)
    manifest = {
        "dataset": DATASET,
        "contributor": "Test Lab <lab@example.org>",
        "licence": "CC-BY-4.0",
        "source": "https://example.org/pseudo",
        "sites": [
            {
                "name": "home",
                "macs": "home/macs.csv",
                "site_config": "home/site.yaml",
                "captures": [{"file": "home/lan.pcap"}],
            }
        ],
    }
    (folder / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return built


@pytest.fixture(scope="module")
def contributed(spark, project: Config, tmp_path_factory: pytest.TempPathFactory):
    """The contribution, through the CLI with a key file that does not exist yet; returns (frames, key file, out)."""
    require_tools("tshark", "capinfos")
    folder = tmp_path_factory.mktemp("contrib_pseudo")
    built = write_contribution(folder)
    key_file = tmp_path_factory.mktemp("secrets") / "iotlake.key"
    capture = pytest.MonkeyPatch()
    from iotlake import cli

    lines: list[str] = []
    capture.setattr(cli.console, "print", lambda text, **_: lines.append(str(text)))
    try:
        code = run_cli(
            project, "contribute", str(folder), "--quiet", "--pseudonymise", "--key-file", str(key_file)
        )
    finally:
        capture.undo()
    assert code == 0, lines
    return built, key_file, "\n".join(lines)


def rows_text(spark, project: Config, table: str) -> list[str]:
    frame = spark.read.format("delta").load(tables.table(table).path(project.lake_root))
    frame = frame.where(F.col("dataset") == DATASET)
    return [r[0] for r in frame.select(F.to_json(F.struct(*frame.columns))).collect()]


def occurs(value: str, text: str) -> bool:
    """`value` as a whole address in `text` (not a prefix of a longer number or address)."""
    return re.search(rf"(?<![0-9a-f:.]){re.escape(value)}(?![0-9a-f])", text, re.IGNORECASE) is not None


def test_no_original_address_remains(spark, project: Config, contributed) -> None:
    _, key_file, out = contributed
    assert "created a new pseudonymisation key" in out and str(key_file) in out
    assert "pseudonymised" in out
    assert key_file.stat().st_mode & 0o077 == 0
    assert not str(key_file.resolve()).startswith(str(Path(project.lake_root).resolve()))
    for table in ("packets", "devices", "device_packets", "device_addresses"):
        rows = rows_text(spark, project, table)
        assert rows, table
        for row in rows:
            leaked = [v for v in ORIGINALS if occurs(v, row)]
            assert not leaked, (table, leaked, row)
    root = Path(project.lake_root)
    assert not (root / "_staging" / DATASET).exists()
    packets = rows_text(spark, project, "packets")
    assert any(occurs(GW4, r) for r in packets)  # the gateway stays as it is
    assert any(occurs(BROADCAST, r) for r in packets) and any(occurs("224.0.0.251", r) for r in packets)


def test_device_counts_and_scopes_unchanged(spark, project: Config, contributed) -> None:
    built, _, _ = contributed
    found = spark.sql(
        "SELECT device, count(*) AS n, count_if(scope = 'WAN') AS wan FROM iotlake.device_packets "
        "WHERE dataset = :d GROUP BY device",
        args={"d": DATASET},
    ).collect()
    assert {r["device"]: r["n"] for r in found} == expected_counts(built)
    wan = sum(1 for f in built if IP in f and REMOTE4 in (f[IP].src, f[IP].dst))
    assert sum(r["wan"] for r in found) == wan  # LAN/WAN scope survives: only the cloud frames are WAN
    devices = spark.sql(
        "SELECT device, mac, ip, is_group_mac(mac) AS g FROM iotlake.devices WHERE dataset = :d",
        args={"d": DATASET},
    ).collect()
    for row in devices:
        assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", row["mac"]) and not row["g"]
        assert int(row["mac"][:2], 16) & 0x02  # locally administered
        assert ipaddress.ip_address(row["ip"]) in ipaddress.ip_network("192.168.0.0/16")


def test_pseudonyms_follow_the_key(spark, project: Config, contributed, tmp_path: Path) -> None:
    _, key_file, _ = contributed
    key = pseudonymise.load_key(key_file)
    register_functions(spark, REPO / "sql")
    rows = []
    for kind, prefix in (("local", "192.168.0.0/16"), ("local", "fe80::/10"), ("gateway", GW4)):
        network = ipaddress.ip_network(prefix)
        rows.append(("home", kind, str(network), *_hex_bounds(network)))
    prefixes = prefixes_of(rows)
    values = [("mac", PLUG), ("ip", PLUG4), ("mac", HUB), ("ip", HUB6)]
    addresses = spark.createDataFrame(
        [(k, "home", v) for k, v in values], "kind string, site string, value string"
    )

    def apply(secret: bytes) -> list[tuple[str, str]]:
        found = {
            r["value"]: r["pseudonym"] for r in Pseudonymiser(secret, prefixes).mapping(addresses).collect()
        }
        return [(found[PLUG], found[PLUG4]), (found[HUB], found[HUB6])]

    first, again, other = apply(key), apply(bytes(key)), apply(b"another key of sixteen+ bytes")
    assert first == again
    assert all(
        a != b
        for pair_a, pair_b in zip(first, other, strict=True)
        for a, b in zip(pair_a, pair_b, strict=True)
    )
    # The lake holds exactly these pseudonyms: the gate used the key file's key.
    devices = spark.sql(
        "SELECT device, mac, ip FROM iotlake.devices WHERE dataset = :d ORDER BY device DESC",
        args={"d": DATASET},
    ).collect()
    assert (devices[0]["mac"], devices[0]["ip"]) == first[0]
    assert devices[1]["mac"] == first[1][0]
    # HMAC-SHA256 of the expressions is the standard one.
    h = spark.range(1).select(Pseudonymiser(key, prefixes).hmac_hex(F.lit("mac:" + PLUG))).collect()[0][0]
    assert h == hmac.new(key, ("mac:" + PLUG).encode(), hashlib.sha256).hexdigest()


def test_key_file_rules(project: Config, tmp_path: Path) -> None:
    with pytest.raises(IotlakeError, match="outside the lake"):
        pseudonymise.prepare_key(Path(project.lake_root) / "key", project.lake_root)
    bad = tmp_path / "bad.key"
    bad.write_text("not hex\n")
    with pytest.raises(IotlakeError, match=r"bad\.key: not a key file"):
        pseudonymise.load_key(bad)
    created = tmp_path / "sub" / "new.key"
    key, made = pseudonymise.prepare_key(created, project.lake_root)
    assert made and len(key) == pseudonymise.KEY_BYTES
    assert pseudonymise.prepare_key(created, project.lake_root) == (key, False)
    assert json.dumps(created.read_text()).count(key.hex()) == 1
