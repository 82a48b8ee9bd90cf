"""SQL over the lake for people: `iotlake.<name>` tables, time travel, dataset scope, one-line errors.

Statements run as Spark SQL against the tables registered as `iotlake.<name>`. With a time-travel point
(`--as-of`) or a dataset scope, every `iotlake.<name>` the statement reads is replaced by a temporary view
of that table read with `versionAsOf`/`timestampAsOf` and filtered with a DataFrame predicate: values never
become SQL text. The view name has the same length as the reference it replaces (padded with blanks), so
error positions still point into the text the user typed. The shell is read-only: writes go through the jobs.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from iotlake.errors import IotlakeError
from iotlake.lake import tables
from iotlake.lake.tables import DATABASE, Table
from iotlake.names import check_name

FORMATS = ("table", "csv", "json")
VIEW_PREFIX = f"{DATABASE}_"


class QueryError(IotlakeError):
    """A statement Spark refused: the error class and message, and where in the statement."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.line, self.column = line, column
        where = f"sql, line {line}, column {column}" if line is not None else "sql"
        super().__init__(where, message)


# --- time travel and scope ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AsOf:
    """A time-travel point: a Delta version or a timestamp, for one table or (table None) for all."""

    table: str | None = None
    version: int | None = None
    timestamp: str | None = None

    def describe(self) -> str:
        """`version 3` or `2026-01-01 00:00:00`."""
        return f"version {self.version}" if self.version is not None else str(self.timestamp)


def parse_as_of(value: str) -> AsOf:
    """`VERSION`, `TIMESTAMP` (ISO 8601, UTC unless it has an offset) or `TABLE=VERSION|TIMESTAMP`."""
    text = value.strip()
    table = None
    name, sep, rest = text.partition("=")
    if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
        table, text = name.strip().lower(), rest.strip()
    if re.fullmatch(r"\d+", text):
        return AsOf(table, version=int(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise IotlakeError(
            "--as-of",
            f"{value!r} is neither a table version (e.g. 3) nor a timestamp (e.g. 2026-01-31T12:00)",
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return AsOf(table, timestamp=moment.isoformat(sep=" "))


@dataclass(frozen=True)
class Scope:
    """What every `iotlake.<name>` a statement reads is restricted to."""

    as_of: tuple[AsOf, ...] = ()
    dataset: str | None = None

    def point(self, table: str) -> AsOf | None:
        """The time-travel point of one table: its own `--as-of table=…` first, else the general one."""
        own = [a for a in self.as_of if a.table == table]
        general = [a for a in self.as_of if a.table is None]
        return (own or general or [None])[-1]

    @property
    def active(self) -> bool:
        """True when statements must read views instead of the catalog tables."""
        return bool(self.as_of) or self.dataset is not None

    def describe(self) -> str:
        """A few words for the summary line and the shell's `.scope`."""
        parts = [f"as of {a.table + ' ' if a.table else ''}{a.describe()}" for a in self.as_of]
        if self.dataset:
            parts.append(f"dataset {self.dataset}")
        return ", ".join(parts) or "latest versions, all datasets"


def make_scope(as_of: Sequence[str] | None = None, dataset: str | None = None) -> Scope:
    """A scope from command-line values; a malformed value is a one-line error."""
    if dataset is not None:
        check_name("dataset", dataset, "--dataset")
    return Scope(tuple(parse_as_of(v) for v in as_of or ()), dataset)


# --- the statement text --------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
      |(?P<string>'(?:\\.|[^'\\])*(?:'|\Z)|"(?:\\.|[^"\\])*(?:"|\Z))
      |(?P<quoted>`(?:``|[^`])*(?:`|\Z))
      |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      |(?P<space>\s+)
      |(?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class Token:
    """A lexical token of a statement: its kind, text and span."""

    kind: str
    text: str
    start: int
    end: int

    @property
    def name(self) -> str | None:
        """The identifier it spells (unquoted, lower case), if it is one."""
        if self.kind == "ident":
            return self.text.lower()
        if self.kind == "quoted" and self.text.endswith("`") and len(self.text) > 1:
            return self.text[1:-1].replace("``", "`").lower()
        return None


def tokens(text: str) -> Iterator[Token]:
    """The statement's tokens, strings, comments and quoted identifiers kept whole."""
    for match in _TOKEN.finditer(text):
        yield Token(match.lastgroup or "other", match.group(), match.start(), match.end())


def _significant(text: str) -> list[Token]:
    return [t for t in tokens(text) if t.kind not in ("space", "comment")]


def split_statements(text: str) -> list[str]:
    """The statements of `text`, split at `;` outside strings and comments; empty ones dropped."""
    parts, start = [], 0
    for token in tokens(text):
        if token.kind == "other" and token.text == ";":
            parts.append(text[start : token.start])
            start = token.end
    parts.append(text[start:])
    return [p.strip() for p in parts if _significant(p)]


def is_complete(text: str) -> bool:
    """True when the text's last token outside comments is `;` (the shell then runs it)."""
    significant = _significant(text)
    return bool(significant) and significant[-1].text == ";"


@dataclass(frozen=True)
class Reference:
    """An `iotlake.<name>` (or `spark_catalog.iotlake.<name>`) in a statement."""

    table: str
    start: int
    end: int


def references(text: str, known: set[str] | None = None) -> list[Reference]:
    """Every reference to an iotlake table in `text` (to tables in `known` when given)."""
    found = []
    sig = _significant(text)
    for i in range(len(sig) - 2):
        first, dot, name = sig[i], sig[i + 1], sig[i + 2]
        if first.name != DATABASE or dot.text != "." or name.name is None:
            continue
        if i >= 1 and sig[i - 1].text == ".":
            if i >= 2 and sig[i - 2].name == "spark_catalog":
                first = sig[i - 2]
            else:
                continue
        if known is None or name.name in known:
            found.append(Reference(name.name, first.start, name.end))
    return found


def view_name(table: str) -> str:
    """The temporary view that stands for `iotlake.<table>` in a scoped statement."""
    return f"{VIEW_PREFIX}{table}"


def rewrite(text: str, refs: Sequence[Reference]) -> str:
    """`text` with each reference replaced by its view name, padded so every position stays the same."""
    out, last = [], 0
    for ref in sorted(refs, key=lambda r: r.start):
        span = ref.end - ref.start
        out += [text[last : ref.start], view_name(ref.table).ljust(span)]
        last = ref.end
    out.append(text[last:])
    return "".join(out)


# --- read-only guard ------------------------------------------------------------------------------------------

_READ_COMMANDS = re.compile(
    r"^(Describe|Show|Explain|SetCommand|ResetCommand|SetCatalogAndNamespace|CacheTable|UncacheTable|"
    r"ClearCache|RefreshTable|RefreshFunction|SetNamespace)"
)
_WRITE_PLANS = re.compile(r"(Statement|Insert|Write|Merge|Delete|Update|Restore|Clone|Vacuum|Optimize)")


def check_read_only(spark: SparkSession, statement: str) -> None:
    """Refuse statements that would change the lake or the catalog (the jobs are the only writers)."""
    jvm = spark.sparkContext._jvm
    try:
        plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(statement)
    except PySparkException:
        return  # spark.sql reports the syntax error with its position
    kind = plan.getClass().getSimpleName()
    command = jvm.java.lang.Class.forName("org.apache.spark.sql.catalyst.plans.logical.Command").isInstance(
        plan
    )
    if kind == "CreateViewCommand" and str(plan.viewType().toString()) in ("LocalTempView", "GlobalTempView"):
        return
    if _READ_COMMANDS.match(kind) or (not command and not _WRITE_PLANS.search(kind)):
        return
    raise QueryError(
        f"iotlake sql is read-only ({kind}): tables change through iotlake ingest, build, enrich or label"
    )


# --- running statements ----------------------------------------------------------------------------------------


@dataclass
class Result:
    """A statement's result: columns, rows (plain Python values) and what it read."""

    statement: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False
    versions: dict[str, int] = field(default_factory=dict)
    scope: Scope = field(default_factory=Scope)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: rows, time, the table versions read and the scope."""
        more = "+" if self.truncated else ""
        parts = [f"{len(self.rows)}{more} row{'s' if len(self.rows) != 1 else ''} in {self.seconds:.1f}s"]
        if self.versions:
            parts.append(
                "read " + ", ".join(f"{DATABASE}.{t} v{v}" for t, v in sorted(self.versions.items()))
            )
        if self.scope.active:
            parts.append(self.scope.describe())
        if self.truncated:
            parts.append("output limited (--limit)")
        return " · ".join(parts)


def plain(value: Any) -> Any:
    """A Spark value as plain Python: Rows become dicts, nested lists and maps stay lists and dicts."""
    if isinstance(value, Row):
        return {k: plain(v) for k, v in value.asDict(recursive=False).items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return str(value)


def cell(value: Any) -> str:
    """A value as table or CSV text: NULL for None, JSON for lists and maps."""
    if value is None:
        return "NULL"
    if isinstance(value, list | dict):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def to_csv(result: Result) -> str:
    """The result as CSV with a header row (empty cells for NULL)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([["" if v is None else cell(v) for v in row] for row in result.rows])
    return out.getvalue()


def to_json(result: Result) -> str:
    """The result as a JSON array of objects, one per row."""
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    return json.dumps(rows, default=_json_default, ensure_ascii=False, indent=1)


def _position(exc: Exception, statement: str) -> tuple[int, int, str] | None:
    """(line, column, fragment) of a Spark error in the statement: from its query context, else its message."""
    index, stop = None, None
    try:
        for context in exc.getQueryContext():  # type: ignore[attr-defined]
            if context.startIndex() >= 0:
                index, stop = context.startIndex(), context.stopIndex() + 1
                break
    except Exception:  # the context is a nicety; the message still says what went wrong
        pass
    match = re.search(r"line (\d+),? pos (\d+)", str(exc))
    if index is None and match:
        lines = statement.split("\n")
        line, pos = int(match.group(1)), int(match.group(2))
        if line <= len(lines):
            index = sum(len(x) + 1 for x in lines[: line - 1]) + pos
    if index is None or not 0 <= index <= len(statement):
        return None
    if stop is None:
        token = next((t for t in tokens(statement[index:]) if t.kind not in ("space", "comment")), None)
        stop = index + (token.end if token else 0)
    before = statement[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1, statement[index:stop]


def query_error(exc: Exception, statement: str, views: Sequence[str] = ()) -> QueryError:
    """A Spark failure as one readable line: error class and message, and the position in the statement."""
    text = str(exc).strip()
    if not isinstance(exc, PySparkException) and hasattr(exc, "java_exception"):
        text = str(exc.java_exception.toString())  # type: ignore[attr-defined]
    message = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    message = re.sub(r"\s*SQLSTATE: \w+", "", message)
    message = re.sub(r";?\s*\(?line \d+,? pos \d+\)?;?\s*$", "", message).rstrip(" ;")
    for table in views:
        message = message.replace(f"`{view_name(table)}`", f"`{DATABASE}`.`{table}`")
        message = re.sub(rf"\b{view_name(table)}\b", f"{DATABASE}.{table}", message)
    position = _position(exc, statement)
    if position is None:
        return QueryError(message)
    line, column, fragment = position
    fragment = " ".join(fragment.split())
    if fragment:
        message += f" (at: {fragment if len(fragment) <= 60 else fragment[:57] + '…'})"
    return QueryError(message, line, column)


@dataclass
class Session:
    """A Spark session prepared for `iotlake sql`: the lake's tables registered, a scope and a row limit."""

    spark: SparkSession
    lake_root: str
    tables: list[Table]
    scope: Scope = field(default_factory=Scope)
    limit: int = 1000

    @property
    def names(self) -> set[str]:
        """Names of the tables in the lake."""
        return {t.name for t in self.tables}

    def _frame(self, entry: Table) -> DataFrame:
        reader = self.spark.read.format("delta")
        point = self.scope.point(entry.name)
        if point is not None and point.version is not None:
            reader = reader.option("versionAsOf", point.version)
        elif point is not None:
            reader = reader.option("timestampAsOf", point.timestamp)
        frame = reader.load(entry.path(self.lake_root))
        if self.scope.dataset is not None and "dataset" in frame.columns:
            frame = frame.where(F.col("dataset") == F.lit(self.scope.dataset))
        return frame

    def _version(self, entry: Table) -> int:
        from delta.tables import DeltaTable

        point = self.scope.point(entry.name)
        if point is not None and point.version is not None:
            return point.version
        table = DeltaTable.forPath(self.spark, entry.path(self.lake_root))
        if point is None:
            return int(table.history(1).collect()[0]["version"])
        history = table.history().where(F.col("timestamp") <= F.lit(point.timestamp).cast("timestamp"))
        found = history.agg(F.max("version")).collect()[0][0]
        return -1 if found is None else int(found)

    def check_scope(self) -> None:
        """Fail early (one line) when `--as-of TABLE=…` names a table that is not in the lake."""
        for point in self.scope.as_of:
            if point.table is not None and point.table not in self.names:
                known = ", ".join(sorted(self.names)) or "none"
                raise IotlakeError("--as-of", f"no table {point.table!r} in the lake (tables: {known})")

    def run(self, statement: str) -> Result:
        """Run one statement and collect at most `limit` rows; Spark errors become a QueryError."""
        started = time.monotonic()
        by_name = {t.name: t for t in self.tables}
        refs = references(statement, set(by_name))
        read = sorted({r.table for r in refs})
        text = statement
        check_read_only(self.spark, statement)
        try:
            if self.scope.active and refs:
                for name in read:
                    self._frame(by_name[name]).createOrReplaceTempView(view_name(name))
                text = rewrite(statement, refs)
            frame = self.spark.sql(text)
            rows = frame.limit(self.limit + 1).collect() if self.limit >= 0 else frame.collect()
            versions = {name: self._version(by_name[name]) for name in read}
        except PySparkException as exc:
            raise query_error(exc, statement, read if self.scope.active else ()) from None
        except Exception as exc:
            if type(exc).__name__ != "Py4JJavaError":
                raise
            raise query_error(exc, statement, read if self.scope.active else ()) from None
        truncated = self.limit >= 0 and len(rows) > self.limit
        rows = rows[: self.limit] if truncated else rows
        return Result(
            statement,
            list(frame.columns),
            [tuple(plain(v) for v in row) for row in rows],
            truncated,
            versions,
            self.scope,
            time.monotonic() - started,
        )

    def run_all(self, text: str) -> Iterator[Result]:
        """Run each `;`-separated statement of `text` in turn."""
        for statement in split_statements(text):
            yield self.run(statement)

    def table_list(self) -> Result:
        """The lake's tables with their layer and what a row is (the shell's `.tables`)."""
        rows = [
            (t.qualified, t.layer, t.comment) for t in sorted(self.tables, key=lambda t: (t.layer, t.name))
        ]
        return Result(".tables", ["table", "layer", "what a row is"], rows)


def quiet_query_logs() -> None:
    """Stop PySpark from logging every failed statement with its Java stack (the shell reports one line)."""
    from pyspark.logger import PySparkLogger

    PySparkLogger.getLogger("SQLQueryContextLogger").disabled = True


def open_session(
    spark: SparkSession, lake_root: str, sql_dir: Path, scope: Scope | None = None, limit: int = 1000
) -> Session:
    """Register the lake's tables and the SQL functions of `sql/functions.sql`, and return a Session."""
    from iotlake.models.runner import declare, discover, register_functions

    declare(discover(sql_dir))
    register_functions(spark, sql_dir)
    quiet_query_logs()
    session = Session(spark, lake_root, tables.register_all(spark, lake_root), scope or Scope(), limit)
    session.check_scope()
    from iotlake import compare  # compare formats its results with this module

    # iotlake_compare.<view> (sql/compare/) when the gold tables they read exist
    with contextlib.suppress(IotlakeError):
        compare.register_views(spark, lake_root, sql_dir)
    return session


# --- the interactive shell ----------------------------------------------------------------------------------

HELP = """\
Statements end with ';' and may span lines. Tables are iotlake.<name>.
  .tables                 the lake's tables and what a row is
  .schema NAME | \\d NAME  columns of iotlake.NAME with their comments
  .format table|csv|json  how results are shown
  .as-of VALUE|off        time travel: a version, a timestamp or TABLE=VALUE (repeatable; off clears)
  .dataset NAME|off       read only this dataset's rows
  .limit N                rows to show at most
  .scope                  the current time travel and dataset scope
  .help  .quit (\\q)"""

QUIT = {".quit", ".exit", "\\q", "quit", "exit", "quit;", "exit;"}


@dataclass
class Shell:
    """The interactive loop's logic, free of terminal handling: input in, results and messages out."""

    session: Session
    show: Callable[[Result, str], None]
    say: Callable[[str], None]
    fail: Callable[[str], None]
    output: str = "table"
    pending: str = ""
    errors: int = 0

    def prompt(self) -> str:
        """The prompt for the next line: a continuation prompt inside a statement."""
        return "     -> " if self.pending.strip() else "iotlake> "

    def feed(self, text: str) -> bool:
        """Take a line (or a block of lines); run what is complete. False when the user asked to quit."""
        for line in text.split("\n"):
            stripped = line.strip()
            if not self.pending.strip():
                if stripped.lower() in QUIT:
                    return False
                if stripped.startswith((".", "\\")):
                    self._command(stripped)
                    continue
            self.pending += line + "\n"
            if is_complete(self.pending):
                statements, self.pending = self.pending, ""
                self._run(statements)
        return True

    def finish(self) -> None:
        """At end of input: run a last statement that lacks its `;`."""
        if self.pending.strip():
            statements, self.pending = self.pending, ""
            self._run(statements)

    def _run(self, text: str) -> None:
        for statement in split_statements(text):
            try:
                self.show(self.session.run(statement), self.output)
            except IotlakeError as exc:
                self.errors += 1
                self.fail(str(exc))

    def _command(self, line: str) -> None:
        word, _, argument = line.rstrip(";").partition(" ")
        word, argument = word.lower(), argument.strip()
        session = self.session
        try:
            if word == ".tables":
                self.show(session.table_list(), self.output)
            elif word in (".schema", "\\d", ".describe"):
                name = argument.lower().removeprefix(f"{DATABASE}.")
                if not name:
                    self.show(session.table_list(), self.output)
                else:
                    self._run(f"DESCRIBE {DATABASE}.`{name.replace('`', '')}`")
            elif word == ".format" and argument in FORMATS:
                self.output = argument
            elif word == ".as-of":
                if argument in ("", "off"):
                    session.scope = replace(session.scope, as_of=())
                else:
                    point = parse_as_of(argument)
                    kept = tuple(a for a in session.scope.as_of if a.table != point.table)
                    session.scope = replace(session.scope, as_of=(*kept, point))
                    session.check_scope()
                self.say(session.scope.describe())
            elif word == ".dataset":
                dataset = None if argument in ("", "off") else check_name("dataset", argument, ".dataset")
                session.scope = replace(session.scope, dataset=dataset)
                self.say(session.scope.describe())
            elif word == ".limit" and argument.isdigit():
                session.limit = int(argument)
            elif word == ".scope":
                self.say(session.scope.describe())
            elif word in (".help", "\\?", "\\h"):
                self.say(HELP)
            else:
                self.fail(f"{line}: unknown command or argument (.help lists them)")
        except IotlakeError as exc:
            self.errors += 1
            self.fail(str(exc))


def history_path() -> Path:
    """Where the interactive shell keeps its history (`$XDG_STATE_HOME/iotlake/sql_history`)."""
    import os

    base = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return base / "iotlake" / "sql_history"


def prompt_reader(session: Session, shell: Shell) -> Callable[[], str]:
    """A prompt_toolkit reader: history, SQL highlighting, table-name completion; Enter runs a complete statement."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.lexers import PygmentsLexer
    from pygments.lexers.sql import SqlLexer

    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    bindings = KeyBindings()

    @Condition
    def incomplete() -> bool:
        text = prompt.default_buffer.text.strip()
        return bool(text) and not (text.startswith((".", "\\")) or text.lower() in QUIT or is_complete(text))

    @bindings.add("enter", filter=incomplete)
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    words = [t.qualified for t in session.tables] + [".tables", ".schema", ".format", ".as-of", ".dataset"]
    keywords = "SELECT FROM WHERE GROUP BY ORDER HAVING LIMIT JOIN LEFT ON AS AND OR NOT IN DESCRIBE SHOW"
    prompt: PromptSession[str] = PromptSession(
        history=FileHistory(str(path)),
        lexer=PygmentsLexer(SqlLexer),
        completer=WordCompleter(words + keywords.split(), ignore_case=True, WORD=True),
        key_bindings=bindings,
        prompt_continuation=lambda width, line, wrap: "-> ".rjust(width),
    )
    return lambda: prompt.prompt(shell.prompt())
