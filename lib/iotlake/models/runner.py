"""Runs the SQL models in `sql/` in dependency order, one dataset at a time, with named parameters.

Each model file holds one SELECT and a header of `-- key: value` lines: the first line names the table and
says what a row is; `grain`, `partition` and `sources` follow. The runner reads dependencies from the
`iotlake.<table>` references in the text, binds `:name` parameters (never formats values into SQL) and hands
the result to lake.writer, which replaces that dataset's rows atomically.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from iotlake.errors import IotlakeError
from iotlake.lake import tables
from iotlake.lake.writer import write_table_counted

log = logging.getLogger(__name__)

FUNCTIONS_FILE = "functions.sql"
# Folders of per-dataset models; other folders of sql/ (signatures/, compare/, …) hold queries that jobs run
# with their own inputs.
MODEL_LAYERS = ("silver", "gold")
_HEADER = re.compile(r"^--\s*([a-z_]+):\s*(.*)$")
_REFERENCE = re.compile(r"\biotlake\.([a-z_][a-z0-9_]*)\b", re.IGNORECASE)
_PARAMETER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Model:
    """One SQL model file."""

    name: str
    layer: str
    path: Path
    sql: str
    comment: str
    grain: str
    partition_by: tuple[str, ...]
    depends_on: frozenset[str]
    parameters: frozenset[str]


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def parse_model(path: Path, layer: str) -> Model:
    """Read a model file and its header; errors name the file and what is missing."""
    text = path.read_text()
    header: dict[str, str] = {}
    for line in text.splitlines():
        match = _HEADER.match(line.strip())
        if not match:
            break
        header.setdefault(match.group(1), match.group(2).strip())
    name = path.stem
    if name not in header:
        raise IotlakeError(path, f"the first line must be '-- {name}: <what a row is>'")
    for key in ("grain", "partition"):
        if key not in header:
            raise IotlakeError(path, f"header line '-- {key}: …' is missing")
    body = _strip_comments(text)
    return Model(
        name=name,
        layer=layer,
        path=path,
        sql=text,
        comment=header[name],
        grain=header["grain"],
        partition_by=tuple(c.strip() for c in header["partition"].split(",") if c.strip()),
        depends_on=frozenset(r.lower() for r in _REFERENCE.findall(body)) - {name},
        parameters=frozenset(_PARAMETER.findall(body)),
    )


def discover(sql_dir: Path) -> list[Model]:
    """All models under `sql_dir` (one folder per layer), in dependency order."""
    paths = sorted(path for layer in MODEL_LAYERS for path in (sql_dir / layer).glob("*.sql"))
    models = {m.name: m for path in paths for m in [parse_model(path, path.parent.name)]}
    graph = {name: {d for d in m.depends_on if d in models} for name, m in models.items()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise IotlakeError(sql_dir, f"models depend on each other in a cycle: {exc.args[1]}") from None
    return [models[name] for name in order]


def with_upstream(models: Iterable[Model], names: Iterable[str]) -> list[str]:
    """The named models and every model they read from, directly or not (to rebuild a few tables alone)."""
    by_name = {m.name: m for m in models}
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise IotlakeError("sql/", f"unknown model(s): {', '.join(unknown)}")
    wanted: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in by_name and name not in wanted:
            wanted.add(name)
            pending += by_name[name].depends_on
    return [name for name in by_name if name in wanted]


def register_functions(spark: SparkSession, sql_dir: Path) -> None:
    """Create the temporary SQL functions of `functions.sql` in this session."""
    path = sql_dir / FUNCTIONS_FILE
    for statement in _strip_comments(path.read_text()).split(";"):
        if statement.strip():
            spark.sql(statement)


def declare(models: Iterable[Model]) -> None:
    """Declare the models' tables in the table registry so they can be registered and listed."""
    for model in models:
        tables.register_model_table(model.name, model.layer, model.partition_by, model.comment)


def run_query(
    spark: SparkSession,
    path: Path,
    parameters: Mapping[str, object],
    views: Mapping[str, DataFrame] | None = None,
) -> DataFrame:
    """Run one query file of sql/ that is not a model (it has its own inputs), binding the parameters it uses."""
    text = path.read_text()
    wanted = frozenset(_PARAMETER.findall(_strip_comments(text)))
    missing = wanted - set(parameters)
    if missing:
        raise IotlakeError(path, f"no value for parameter(s) {', '.join(sorted(missing))}")
    for name, frame in (views or {}).items():
        frame.createOrReplaceTempView(name)
    return spark.sql(text, args={k: v for k, v in parameters.items() if k in wanted})


@dataclass(frozen=True)
class ModelRun:
    """What one model wrote."""

    table: str
    dataset: str
    rows: int
    version: int
    seconds: float


def run_models(
    spark: SparkSession,
    lake_root: str,
    sql_dir: Path,
    dataset: str,
    parameters: Mapping[str, object],
    only: Iterable[str] | None = None,
    job: str = "build_models",
    views: Mapping[str, DataFrame] | None = None,
    on_run: Callable[[ModelRun], None] | None = None,
) -> list[ModelRun]:
    """Build every model (or those in `only`) for one dataset, in dependency order.

    `views` are registered as temporary views first: inputs that come from config rather than the lake.
    `on_run` is called after each model is written (e.g. to advance a progress bar).
    """
    models = discover(sql_dir)
    declare(models)
    register_functions(spark, sql_dir)
    for name, frame in (views or {}).items():
        frame.createOrReplaceTempView(name)
    tables.register_all(spark, lake_root)
    wanted = set(only) if only else None
    runs = []
    for model in models:
        if wanted is not None and model.name not in wanted:
            continue
        missing = model.parameters - set(parameters) - {"dataset"}
        if missing:
            raise IotlakeError(model.path, f"no value for parameter(s) {', '.join(sorted(missing))}")
        args = {k: v for k, v in {**parameters, "dataset": dataset}.items() if k in model.parameters}
        started = time.monotonic()
        frame = spark.sql(model.sql, args=args)
        entry = tables.table(model.name)
        version, rows = write_table_counted(
            frame,
            entry,
            lake_root,
            {"dataset": dataset},
            job=job,
            metadata={"model": str(model.path.name), "parameters": args},
        )
        runs.append(ModelRun(model.name, dataset, rows, version, time.monotonic() - started))
        log.info("%s: %d rows for dataset %s", model.name, rows, dataset)
        if on_run is not None:
            on_run(runs[-1])
    return runs
