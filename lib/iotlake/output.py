"""How commands report: progress bars on stderr, rich tables on stdout, and one summary line at the end.

Three modes. `normal`: progress bars, tables and notes, then the summary line. `quiet`: the summary line only.
`json`: one JSON object on stdout (the summary), nothing else there. Commands that print data (`sql`, `tables`,
`catalog`, `datasets`, `compare`, `protocols unknown`) keep stdout for the data (`--json`: as JSON) and put
their summary line on stderr (`--quiet`: none). Both consoles look up sys.stdout/sys.stderr when they print.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)

# Tables named in a summary line; the JSON object names them all.
LISTED_TABLES = 8


class Mode(StrEnum):
    """What a command prints."""

    NORMAL = "normal"
    QUIET = "quiet"
    JSON = "json"


def mode(quiet: bool = False, as_json: bool = False) -> Mode:
    """The mode of the --quiet and --json flags (--json wins)."""
    return Mode.JSON if as_json else Mode.QUIET if quiet else Mode.NORMAL


@dataclass
class Summary:
    """The end of a command: rows written per table, time taken, a short note and extra fields for JSON."""

    command: str
    tables: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    ok: bool = True

    def line(self) -> str:
        """One line, e.g. `build: 14 tables, 25,311 rows (volume_stats 420, …) in 41.2s; note`."""
        took = f"in {self.seconds:.1f}s"
        if not self.tables:
            return f"{self.command}: {self.note or 'done'} {took}"
        listed = [f"{name} {rows:,}" for name, rows in list(self.tables.items())[:LISTED_TABLES]]
        if len(self.tables) > LISTED_TABLES:
            listed.append("…")
        count, rows = len(self.tables), sum(self.tables.values())
        head = (
            f"{self.command}: {count} table{'s' if count != 1 else ''}, "
            f"{rows:,} row{'s' if rows != 1 else ''} ({', '.join(listed)}) {took}"
        )
        return f"{head}; {self.note}" if self.note else head

    def as_dict(self) -> dict[str, Any]:
        """The JSON object: command, ok, seconds, tables (rows written per table) and the extra fields."""
        return {
            "command": self.command,
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "tables": dict(self.tables),
            **self.extra,
        }

    def to_json(self) -> str:
        """The JSON object on one line."""
        return json.dumps(self.as_dict(), default=str, ensure_ascii=False)


def add_rows(tables: dict[str, int], more: Mapping[str, int]) -> dict[str, int]:
    """`tables` with the rows of `more` added (the same table built for several datasets counts once)."""
    for name, rows in more.items():
        tables[name] = tables.get(name, 0) + rows
    return tables


def _say(target: Console, text: str) -> None:
    """`text` as it is: no markup, highlighting or emoji codes, and no line breaks added."""
    target.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)


class Output:
    """The printing of one command run in one mode; `finish` prints its summary."""

    def __init__(self, command: str, mode: Mode = Mode.NORMAL, data: bool = False) -> None:
        self.command = command
        self.mode = mode
        self.data = data  # a command printing data on stdout: its summary line goes to stderr
        self.started = time.monotonic()
        self.done = False

    @property
    def progress(self) -> bool:
        """Whether to show progress bars (normal mode only)."""
        return self.mode is Mode.NORMAL

    @property
    def shows(self) -> bool:
        """Whether tables and notes are printed: in normal mode, and always for a command printing data."""
        return self.mode is Mode.NORMAL or self.data

    def text(self, message: str) -> None:
        """A line (or block) of plain text on stdout, when tables and notes are shown."""
        if self.shows:
            _say(console, message)

    def notice(self, message: str) -> None:
        """Something the user must act on: on stdout in every mode but json, where it goes to stderr."""
        _say(errors if self.mode is Mode.JSON else console, message)

    def table(self, rows: Sequence[Sequence[Any]], columns: Sequence[str], title: str | None = None) -> None:
        """A rich table on stdout, when tables are shown; piped output gets its natural width, not 80."""
        if not self.shows:
            return
        table = Table(title=title, show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*["" if v is None else str(v) for v in row])
        if console.is_terminal:
            console.print(table)
        else:
            Console(file=sys.stdout, width=100_000).print(table, crop=False)

    def write(self, data: str) -> None:
        """Data exactly as given on stdout (CSV, JSON, SQL), in every mode."""
        sys.stdout.write(data)
        sys.stdout.flush()

    def finish(self, tables: Mapping[str, int] | None = None, note: str = "", **extra: Any) -> Summary:
        """Print the one summary: a line (stdout; stderr for data commands, none when quiet) or a JSON object."""
        summary = Summary(
            self.command, dict(tables or {}), time.monotonic() - self.started, note, dict(extra)
        )
        self.done = True
        if self.data:
            if self.mode is not Mode.QUIET:
                _say(errors, summary.line())
        elif self.mode is Mode.JSON:
            self.write(summary.to_json() + "\n")
        else:
            _say(console, summary.line())
        return summary

    def fail(self, error: str, **extra: Any) -> None:
        """In json mode, a failed command's object `{"ok": false, "error": …}` on stdout (once)."""
        if self.done or self.data or self.mode is not Mode.JSON:
            return
        summary = Summary(
            self.command, seconds=time.monotonic() - self.started, extra={"error": error, **extra}, ok=False
        )
        self.done = True
        self.write(summary.to_json() + "\n")


_current: Output | None = None


def start(command: str, quiet: bool = False, as_json: bool = False, data: bool = False) -> Output:
    """The output of a command run from the --quiet and --json flags; `failed` reaches it on errors."""
    global _current
    # A data command prints its data either way: there --quiet (no summary line) goes with --json.
    _current = Output(command, Mode.QUIET if data and quiet else mode(quiet, as_json), data)
    return _current


def failed(error: str) -> None:
    """Report an error of the running command as a JSON object when it runs in json mode."""
    if _current is not None:
        _current.fail(error)


def end() -> None:
    """Forget the command run (`failed` then does nothing)."""
    global _current
    _current = None


# --- progress ---------------------------------------------------------------------------------------------


class _NoBars:
    """The progress interface, doing nothing."""

    def add_task(self, description: str, total: float | None = None, start: bool = True) -> int:
        return 0

    def start_task(self, task: int) -> None:
        pass

    def update(self, task: int, total: float | None = None) -> None:
        pass

    def advance(self, task: int) -> None:
        pass


@contextlib.contextmanager
def bars(enabled: bool, unit: str) -> Iterator[Any]:
    """Rich progress bars on stderr counting `unit` (add_task, update, start_task, advance), or no-ops."""
    if not enabled:
        yield _NoBars()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=errors) as progress:
        yield progress


@contextlib.contextmanager
def steps(enabled: bool, description: str, total: int, unit: str) -> Iterator[Callable[[], None]]:
    """One bar of `total` steps of a known count; yields the function that advances it by one."""
    with bars(enabled, unit) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)
