"""Quirks of the Passive-Mode-Study data files, on tiny hand-written CSV text (no Spark)."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotlake.errors import IotlakeError
from iotlake.imports import pms
from iotlake.imports.reproduce import at_printed_precision, close, excel_rounded

STATS = "Device,StartTime,Frames,Bytes,TxFrames,TxBytes,RxFrames,RxBytes\r\nEchoDot5 (US1-1),0,10,1000,6,600,4,400\r\n\r\nEchoDot5 (US1-1),3600,0,0,0,0,0,0\r\n"
PROTOCOLS = (
    "MAC,WAN/LAN,Protocol,IP,TotalPackets,TotalBytes,TxPackets,TxBytes,RxPackets,RxBytes\n"
    "D4:F5:47:82:0E:C6,ALL,mdns,192.168.1.113*,45801,8621599,0,0,45801,8621599\n"
    "D4:F5:47:82:0E:C6,ALL,mdns,224.0.0.251*,45801,8621599,45801,8621599,0,0\n"
    "D4:F5:47:82:0E:C6,ALL,ntp,216.239.35.0,148,13320,74,6660,74,6660\n"
)
TAIL = " Cert Owner, Cert Location, WHOIS Owner, WHOIS Location, ASN Owner, ASN Location, Original Hostname, Modified Hostname, IP Geolocation, Cert Geolocations, Packets, Bytes, TxPackets, TxBytes, RxPackets, RxBytes"
WAN_ROW = '107.22.14.153,First,None,None,None,None,"AMAZON-AES, US",US,a.example,a.example,None,None,1064,684959,435,96278,629,588681'
LAN_ROW = "192.168.1.106,Local (Hue Bridge),Local,Local,Local,Local,Local,Local,N/A,N/A,Local,Local,10,1000,6,600,4,400"


def test_stats_crlf_bom_and_blank_lines() -> None:
    rows = pms.parse_stats("\ufeff" + STATS, "x-stats.csv")
    assert [(r.start, r.frames, r.tx_bytes, r.rx_frames) for r in rows] == [(0, 10, 600, 4), (3600, 0, 0, 0)]


def test_stats_bad_count_names_file_and_line() -> None:
    with pytest.raises(IotlakeError, match=r"x-stats\.csv:2: column Frames: expected an integer"):
        pms.parse_stats(
            "Device,StartTime,Frames,Bytes,TxFrames,TxBytes,RxFrames,RxBytes\nA,0,ten,1,1,1,1,1\n",
            "x-stats.csv",
        )


def test_protocol_star_rows_are_kept_and_flagged() -> None:
    rows = pms.parse_protocols(PROTOCOLS, "p.csv")
    assert [(r.remote_ip, r.flagged) for r in rows] == [
        ("192.168.1.113", True),
        ("224.0.0.251", True),
        ("216.239.35.0", False),
    ]
    assert rows[2].tx_packets == 74 and rows[0].mac == "d4:f5:47:82:0e:c6"


@pytest.mark.parametrize(
    "header",
    [f"IP,Type,{TAIL}", f"IP,,{TAIL}"],
    ids=["Type", "empty Type title"],
)
def test_endpoint_header_variants_and_sides(header: str) -> None:
    text = "\r\n".join([header, WAN_ROW, LAN_ROW, WAN_ROW.replace("First", "Third")]) + "\r\n"
    rows = {r.remote_ip: r for r in pms.parse_endpoints(text, "e.csv")}
    wan = rows["107.22.14.153"]
    # two rows of one address are summed and the first Type kept; the file's Tx is the device's Rx
    assert (wan.type, wan.packets, wan.tx_packets, wan.rx_packets) == ("First", 2128, 1258, 870)
    assert not wan.local and wan.attributes["ASN Owner"] == "AMAZON-AES, US"
    assert rows["192.168.1.106"].local and rows["192.168.1.106"].type == "Local (Hue Bridge)"


def test_raw_endpoint_file_without_type() -> None:
    raw = (
        f"IP,{TAIL}\n"
        + '100.21.15.118,"None","None","None","None","AMAZON-02, US","US",h,h,None,None,7,70,3,30,4,40\n'
    )
    (row,) = pms.parse_endpoints(raw, "raw.csv")
    assert row.type is None and row.attributes["Cert Owner"] is None and row.tx_packets == 4


def test_file_names_sites_captures_and_scopes() -> None:
    f = pms.classify("1hour-stats", Path("FR-Capture2-trimmed-filtered-split-TP2ndLink-LAN-stats.csv"))
    assert f is not None and (f.site, f.capture, f.device, f.scope) == ("FR", "Capture2", "TP2ndLink", "LAN")
    f = pms.classify(
        "protocols", Path("US1-Home-Full-trimmed-filtered-with-DNS-split-TPLink-ipv6-protocols-WAN.csv")
    )
    assert f is not None and (f.site, f.capture, f.device, f.ip_version, f.scope) == (
        "US1",
        "Home-Full",
        "TPLink",
        6,
        "WAN",
    )
    f = pms.classify(
        "endpoints", Path("US2-RoboRock-Alone-trimmed-filtered-with-DNS-split-Roborock-endpoints.csv")
    )
    assert f is not None and (f.site, f.capture, f.device) == ("US2", "RoboRock-Alone", "Roborock")
    assert pms.classify("1hour-stats", Path("FR-trimmed-filtered-split-combined-DLink-stats.csv")) is None
    assert pms.classify("protocols", Path("All-proto-distributions.csv")) is None


def test_second_unit_names() -> None:
    assert pms.second_unit("TPLink", {"TP2ndLink", "TPLinkLight"}) == "TP2ndLink"
    assert pms.second_unit("MaxcioSmartStrip", {"Maxcio2ndSmartStrip"}) == "Maxcio2ndSmartStrip"
    assert pms.second_unit("TPLink", {"TPLinkLight"}) is None


def test_plan_folder_with_space_combined_and_second_unit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "macs").mkdir()
    (tmp_path / "macs" / "FR-MACs.txt").write_text("TPLink,1C:3B:F3:8D:29:4A\nTP2ndLink,1C:3B:F3:8D:26:DA\n")
    for folder, name in [
        ("1hour-stats/Auxillary Captures/FR-2", "FR-Capture2-trimmed-filtered-split-TP2ndLink-stats.csv"),
        ("1hour-stats/FR-Combined", "FR-trimmed-filtered-split-combined-TPLink-stats.csv"),
        ("endpoints/Auxillary Captures", "FR-Capture2-trimmed-filtered-with-DNS-split-TPLink-endpoints.csv"),
    ]:
        (data / folder).mkdir(parents=True, exist_ok=True)
        (data / folder / name).write_text(STATS)
    (data / "1hour-stats" / "overall-combined-stats.csv").write_text("Device\n")
    plan = pms.plan_import(tmp_path)
    assert sorted((f.family, f.device) for f in plan.files) == [
        ("1hour-stats", "TP2ndLink"),
        ("endpoints", "TP2ndLink"),
    ]
    assert plan.aliases == {("FR", "Capture2", "TPLink"): "TP2ndLink"}
    assert len(plan.skipped) == 2


def test_unknown_device_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "macs").mkdir()
    (tmp_path / "macs" / "FR-MACs.txt").write_text("TPLink,1C:3B:F3:8D:29:4A\n")
    folder = tmp_path / "data" / "1hour-stats" / "FR-Capture1"
    folder.mkdir(parents=True)
    (folder / "FR-Capture1-trimmed-filtered-split-Ghost-stats.csv").write_text(STATS)
    with pytest.raises(
        IotlakeError, match=r"Ghost-stats\.csv: device 'Ghost' is not in the MAC map of site FR"
    ):
        pms.plan_import(tmp_path)


def test_number_comparison_rules() -> None:
    assert close(0.887984197, 0.88798419712)
    assert excel_rounded("6.68E-05") and not excel_rounded("1.76618E-05") and not excel_rounded("0.000130196")
    assert at_printed_precision("1.76618E-05", 1.7661828934478576e-05)
    assert at_printed_precision("0.000130196", 0.0001301963191227315)
    assert not at_printed_precision("6.68E-05", 6.67829803574559e-05)  # Excel's 3 digits are a deviation
