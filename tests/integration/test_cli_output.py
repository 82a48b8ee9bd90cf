"""--quiet, --json and the summary line, through the CLI in this process on the demo lake (no re-ingest)."""

from __future__ import annotations

import json

from pyspark.sql import functions as F

from iotlake.lake import tables
from iotlake.output import Mode, Output, Summary
from tests.integration.conftest import run_cli

# Two small gold models: rebuilding them leaves the demo lake's rows as they were.
MODELS = ("volume_stats", "traffic_distribution")


def build_args(*models: str) -> list[str]:
    return ["build", "--dataset", "demo", *[arg for model in models for arg in ("--model", model)]]


def demo_rows(spark, config, table: str) -> int:
    frame = spark.read.format("delta").load(tables.table(table).path(config.lake_root))
    return frame.where(F.col("dataset") == "demo").count()


def test_summary_line_and_json() -> None:
    summary = Summary("build", {"volume_stats": 25_000, "flows": 311}, 41.23, "dataset(s) demo", {"x": 1})
    assert (
        summary.line()
        == "build: 2 tables, 25,311 rows (volume_stats 25,000, flows 311) in 41.2s; dataset(s) demo"
    )
    assert json.loads(summary.to_json()) == {
        "command": "build",
        "ok": True,
        "seconds": 41.2,
        "tables": {"volume_stats": 25_000, "flows": 311},
        "x": 1,
    }
    many = Summary("ingest", {f"t{i}": 1 for i in range(10)}, 1.0)
    assert many.line().startswith("ingest: 10 tables, 10 rows (t0 1, ") and many.line().endswith(
        "t7 1, …) in 1.0s"
    )
    assert Summary("export volumes", note="wrote 3 files").line() == "export volumes: wrote 3 files in 0.0s"


def test_json_mode_writes_one_object_and_nothing_else(capsys) -> None:
    printer = Output("demo", Mode.JSON)
    printer.text("a note")
    printer.table([(1, 2)], ["a", "b"])
    printer.notice("a key was created")
    printer.finish({"packets": 3}, "done")
    printer.fail("too late: the summary is out")
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {
        "command": "demo",
        "ok": True,
        "seconds": 0.0,
        "tables": {"packets": 3},
    }
    assert captured.out.count("\n") == 1
    assert captured.err.strip() == "a key was created"


def test_build_json_counts_match_the_delta_tables(spark, config, demo_lake, capsys) -> None:
    capsys.readouterr()
    assert run_cli(config, *build_args(*MODELS), "--json") == 0
    captured = capsys.readouterr()
    [line] = captured.out.splitlines()  # one JSON object, alone on stdout
    found = json.loads(line)
    assert found["command"] == "build" and found["ok"] is True and found["seconds"] > 0
    assert found["tables"] == {table: demo_rows(spark, config, table) for table in MODELS}
    assert all(n > 0 for n in found["tables"].values())
    assert found["datasets"] == ["demo"]
    assert [(r["dataset"], r["table"]) for r in found["runs"]] == [("demo", t) for t in MODELS]
    assert "tables" not in captured.err  # no progress bar


def test_build_quiet_prints_exactly_the_summary_line(spark, config, demo_lake, capsys) -> None:
    capsys.readouterr()
    assert run_cli(config, *build_args("traffic_distribution"), "--quiet") == 0
    captured = capsys.readouterr()
    rows = demo_rows(spark, config, "traffic_distribution")
    [line] = captured.out.splitlines()
    assert line.startswith(f"build: 1 table, {rows:,} rows (traffic_distribution {rows:,}) in ")
    assert line.endswith("s; dataset(s) demo")
    assert "tables" not in captured.err


def test_build_normal_shows_table_progress_and_ends_with_the_summary(config, demo_lake, capsys) -> None:
    capsys.readouterr()
    assert run_cli(config, *build_args("traffic_distribution")) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert "models built" in captured.out and len(lines) > 3
    assert lines[-1].startswith("build: 1 table, ") and "(traffic_distribution " in lines[-1]
    assert "1/1 tables" in captured.err  # the progress bar, on stderr


def test_json_error_is_one_object_and_one_line(config, demo_lake, capsys) -> None:
    capsys.readouterr()
    assert run_cli(config, "build", "--dataset", "no_such_dataset", "--json") == 2
    captured = capsys.readouterr()
    [line] = captured.out.splitlines()
    found = json.loads(line)
    assert found["ok"] is False and found["command"] == "build"
    assert "unknown dataset 'no_such_dataset'" in found["error"]
    assert captured.err.strip().startswith("error: ") and captured.err.strip().count("\n") == 0


def test_data_commands_keep_stdout_for_the_data(config, demo_lake, capsys) -> None:
    capsys.readouterr()
    assert run_cli(config, "tables", "--json", "--quiet") == 0
    captured = capsys.readouterr()
    listed = json.loads(captured.out)  # the data, as before: a JSON array
    assert isinstance(listed, list) and any(t["table"] == "iotlake.packets" for t in listed)
    assert captured.err == ""  # --quiet: no summary line
    statement = "SELECT device FROM iotlake.devices WHERE dataset = 'demo' ORDER BY device"
    assert run_cli(config, "sql", "--format", "csv", statement) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("device\n")
    devices = len(captured.out.splitlines()) - 1
    assert captured.err.strip().splitlines()[-1].startswith(f"sql: 1 statement(s), {devices} row(s) in ")


def test_ingest_report_has_the_rows_written_per_table(demo_lake) -> None:
    # the ingest summary's tables: rows from each commit's metrics, no extra count
    assert set(demo_lake.rows) == {"packets", "captures", "devices", "sites", "site_prefixes", "site_rules"}
    assert demo_lake.rows["packets"] == demo_lake.packets > 0
    assert demo_lake.rows["captures"] == demo_lake.captures


def test_ingest_build_rebuilds_the_dataset_in_the_same_run(spark, config, tmp_path, capsys) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    # known contents: the plug sends three datagrams to a WAN address and gets one back
    plug, peer = "02:00:5e:00:00:01", "02:00:5e:00:00:fe"
    out = Ether(src=plug, dst=peer) / IP(src="192.168.7.10", dst="52.1.2.3") / UDP(sport=5000, dport=443)
    back = Ether(src=peer, dst=plug) / IP(src="52.1.2.3", dst="192.168.7.10") / UDP(sport=443, dport=5000)
    packets = [out, out, out, back]
    for i, packet in enumerate(packets):
        packet.time = 1_700_000_000 + i
    capture, macs = tmp_path / "cap.pcap", tmp_path / "macs.csv"
    wrpcap(str(capture), packets)
    macs.write_text(f"device,mac\nplug,{plug}\n")
    capsys.readouterr()

    volume_models = ("device_packets", "interval_volumes", "volume_stats")
    args = ["ingest", "one_run", str(capture), "--site", "s", "--macs", str(macs), "--build", "--json"]
    assert run_cli(config, *args, *[arg for name in volume_models for arg in ("--model", name)]) == 0

    found = json.loads(capsys.readouterr().out)
    assert found["ok"] is True and found["tables"]["packets"] == 4
    assert [(r["dataset"], r["table"]) for r in found["runs"]] == [
        ("one_run", name) for name in volume_models
    ]
    stats = spark.sql(
        "SELECT device, tx_frames_total, rx_frames_total FROM iotlake.volume_stats WHERE dataset = 'one_run' "
        "AND profile = 'all' AND scope = 'ALL' AND capture = '*'"
    ).collect()
    assert [tuple(r) for r in stats] == [("plug", 3, 1)]
