"""`iotlake sql` and the catalog on the demo lake: comments, time travel, dataset scope, errors, output."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime

import pytest

from iotlake import catalog, query
from iotlake.lake.tables import Table
from iotlake.lake.writer import write_table
from tests.conftest import REPO

pytestmark = pytest.mark.spark
SQL_DIR = REPO / "sql"
PROBE = Table("query_probe", "gold", ("dataset",), "one row per probe value (test table)")


@pytest.fixture(scope="module")
def session(spark, config, demo_lake) -> query.Session:
    return query.open_session(spark, config.lake_root, SQL_DIR)


@pytest.fixture(scope="module")
def probe(spark, tmp_path_factory: pytest.TempPathFactory):
    """A small table in its own lake, written twice: v0 = 3 demo + 2 other rows, then demo replaced by 1 row."""
    root = str(tmp_path_factory.mktemp("probe_lake"))
    first = spark.createDataFrame(
        [("demo", 1), ("demo", 2), ("demo", 3), ("other", 4), ("other", 5)], "dataset string, n int"
    )
    v0 = write_table(first, PROBE, root, {"dataset": ["demo", "other"]}, job="test")
    time.sleep(1.5)
    between = datetime.now(UTC).replace(tzinfo=None)
    time.sleep(1.5)
    v1 = write_table(
        spark.createDataFrame([("demo", 9)], "dataset string, n int"),
        PROBE,
        root,
        {"dataset": "demo"},
        job="test",
    )
    yield root, v0, v1, between
    spark.sql(f"DROP TABLE IF EXISTS {PROBE.qualified}")


def _count(spark, root: str, scope: query.Scope) -> tuple[int, dict[str, int]]:
    result = query.Session(spark, root, [PROBE], scope).run(f"SELECT count(*) AS n FROM {PROBE.qualified}")
    return result.rows[0][0], result.versions


def test_time_travel_reads_the_old_version(spark, probe) -> None:
    root, v0, v1, between = probe
    assert _count(spark, root, query.Scope()) == (3, {"query_probe": v1})
    assert _count(spark, root, query.make_scope([str(v0)])) == (5, {"query_probe": v0})
    assert _count(spark, root, query.make_scope([f"query_probe={between.isoformat()}"]))[0] == 5


def test_dataset_scope_filters_every_table_read(spark, probe) -> None:
    root, v0, _, _ = probe
    assert _count(spark, root, query.make_scope(None, "other"))[0] == 2
    assert _count(spark, root, query.make_scope([str(v0)], "demo"))[0] == 3
    joined = query.Session(spark, root, [PROBE], query.make_scope(None, "other")).run(
        f"SELECT count(*) FROM {PROBE.qualified} a JOIN iotlake.query_probe b USING (dataset)"
    )
    assert joined.rows == [(4,)]


def test_dataset_scope_on_the_demo_lake(session) -> None:
    session.scope = query.make_scope(None, "no-such-dataset")
    try:
        assert session.run("SELECT count(*) FROM iotlake.packets").rows == [(0,)]
    finally:
        session.scope = query.Scope()
    assert session.run("SELECT count(*) FROM iotlake.packets WHERE dataset = 'demo'").rows[0][0] > 0


def test_unknown_column_is_one_line_with_its_position(session) -> None:
    with pytest.raises(query.QueryError) as caught:
        session.run("SELECT device,\n  nosuch\nFROM iotlake.volume_stats")
    error = caught.value
    assert (error.line, error.column) == (2, 3)
    text = str(error)
    assert "\n" not in text and "at org.apache" not in text
    assert text.startswith("sql, line 2, column 3: [UNRESOLVED_COLUMN.WITH_SUGGESTION]")
    assert "`nosuch`" in text


def test_syntax_error_has_its_position(session) -> None:
    with pytest.raises(query.QueryError) as caught:
        session.run("SELECT device FRM iotlake.devices")
    assert (caught.value.line, caught.value.column) == (1, 19)
    assert "[PARSE_SYNTAX_ERROR]" in str(caught.value) and "\n" not in str(caught.value)


def test_scoped_errors_name_the_table_not_the_view(spark, probe) -> None:
    root, v0, _, _ = probe
    with pytest.raises(query.QueryError) as caught:
        query.Session(spark, root, [PROBE], query.make_scope([str(v0)])).run(
            "SELECT iotlake.query_probe.nosuch FROM iotlake.query_probe"
        )
    assert caught.value.column == 8 and "iotlake_query_probe" not in str(caught.value)


def test_writes_are_refused(session, spark, config) -> None:
    before = spark.sql("DESCRIBE HISTORY iotlake.devices").count()
    with pytest.raises(query.QueryError, match="read-only"):
        session.run("INSERT INTO iotlake.devices SELECT * FROM iotlake.devices")
    with pytest.raises(query.QueryError, match="read-only"):
        session.run("DELETE FROM iotlake.devices")
    assert spark.sql("DESCRIBE HISTORY iotlake.devices").count() == before


def test_csv_and_json_output_parse(session) -> None:
    result = session.run(
        "SELECT device, mac, array('a', 'b') AS tags, CAST(NULL AS string) AS nothing FROM iotlake.devices ORDER BY device"
    )
    rows = list(csv.reader(io.StringIO(query.to_csv(result))))
    assert rows[0] == ["device", "mac", "tags", "nothing"]
    assert len(rows) == len(result.rows) + 1 > 1
    assert rows[1][2] == '["a", "b"]' and rows[1][3] == ""
    parsed = json.loads(query.to_json(result))
    assert [r["device"] for r in parsed] == [r[0] for r in result.rows]
    assert parsed[0]["tags"] == ["a", "b"] and parsed[0]["nothing"] is None


def test_describe_shows_table_and_column_comments(session, spark) -> None:
    columns = {r[0]: r[2] for r in session.run("DESCRIBE iotlake.volume_stats").rows}
    assert columns["device"] == "device name from the site's MAC map"
    assert columns["frames_cov"].startswith("coefficient of variation")
    header = (SQL_DIR / "gold" / "volume_stats.sql").read_text().splitlines()[0]
    detail = dict(r[:2] for r in session.run("DESCRIBE TABLE EXTENDED iotlake.volume_stats").rows)
    assert detail["Comment"] == header.split(":", 1)[1].strip()
    packets = {r[0]: r[2] for r in session.run("DESCRIBE iotlake.packets").rows}
    assert "tshark frame.len" in packets["frame_len"]
    listed = {t.name: t.description for t in spark.catalog.listTables("iotlake")}
    assert listed["devices"] == "one row per device of a site's MAC map"


def test_every_column_has_a_comment_and_rebuilds_add_no_commit(spark, config, demo_lake) -> None:
    notes = catalog.annotate(spark, config.lake_root, SQL_DIR)
    assert notes, "the demo lake has tables"
    assert {n.table: n.missing for n in notes if n.missing} == {}
    assert [n.table for n in notes if n.table_comment_set or n.columns_set] == []


def test_register_script_works_in_a_fresh_database(spark, config, demo_lake) -> None:
    script = catalog.register_script(spark, config.lake_root).replace("iotlake.", "iotlake_copy.")
    script = script.replace("EXISTS iotlake;", "EXISTS iotlake_copy;")
    try:
        for statement in query.split_statements(script):
            spark.sql(statement)
        assert spark.catalog.getTable("iotlake_copy.volume_stats").description.startswith("per device")
        comments = {c.name: c.description for c in spark.catalog.listColumns("iotlake_copy.devices")}
        assert comments["mac"] == "MAC address, lower-case colon form"
    finally:
        spark.sql("DROP DATABASE IF EXISTS iotlake_copy CASCADE")


def test_cli_sql_one_shot_and_stdin_shell(config, demo_lake) -> None:
    from typer.testing import CliRunner

    from iotlake.cli import app

    common = ["--conf", str(REPO / "conf"), "--lake", config.lake_root]
    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            "sql",
            *common,
            "--format",
            "csv",
            "SELECT device FROM iotlake.devices ORDER BY device; SELECT 1 AS one",
        ],
    )
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("device\n") and done.stdout.endswith("one\n1\n")
    assert "rows in" in done.stderr and "read iotlake.devices v" in done.stderr
    shell = runner.invoke(
        app,
        ["sql", *common, "--json", "--quiet"],
        input="SELECT 1 AS a,\n  2 AS b;\n.format csv\nSELECT nosuch;\nSELECT 3 AS c\n",
    )
    assert shell.exit_code == 1  # one statement failed
    assert json.loads(shell.stdout.split("]\n")[0] + "]") == [{"a": 1, "b": 2}]
    assert shell.stdout.endswith("c\n3\n")
    assert "line 1, column 8" in shell.stderr and "rows in" not in shell.stderr
