"""The `iotlake` command: parses arguments, calls pipeline/ and lake/, prints with rich. No logic here."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, astuple
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pyspark.errors import PySparkException
from rich.markup import escape

from iotlake import output
from iotlake.config import Config, load_config
from iotlake.errors import IotlakeError
from iotlake.output import Output, console, errors  # noqa: F401 (console: the stdout console, kept here)

if TYPE_CHECKING:
    from iotlake.pipeline import ModelRun

log = logging.getLogger(__name__)
app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="iotlake: PCAP captures → Delta lake → SQL."
)

ConfOption = Annotated[Path | None, typer.Option("--conf", help="configuration folder (default: ./conf)")]
LakeOption = Annotated[
    str | None, typer.Option("--lake", help="lake root (default: lake_root of iotlake.yaml)")
]
# Commands that run a job: the summary line ends the output; --json makes it one JSON object, alone on stdout.
QuietOption = Annotated[
    bool, typer.Option("--quiet", help="only the summary line: no progress bars, tables or notes")
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help='only one JSON object on stdout: {"command", "ok", "seconds", "tables", …}'),
]
# Commands that print data: stdout holds only the data; the summary line goes to stderr.
DataQuietOption = Annotated[bool, typer.Option("--quiet", help="no summary line on stderr")]
DataJsonOption = Annotated[
    bool, typer.Option("--json", help="the data as JSON on stdout (the summary line stays on stderr)")
]


def _config(conf: Path | None, lake: str | None) -> Config:
    config = load_config(conf)
    if lake:
        config.settings.lake_root = lake
    return config


def _dataset_names(values: str | list[str] | None) -> str | list[str] | None:
    """`--dataset` values are checked as the command line is read, so a bad name fails before Spark starts."""
    from iotlake.names import check_name

    for value in [values] if isinstance(values, str) else values or []:
        check_name("dataset", value)
    return values


def _spark(config: Config, app_name: str):
    from iotlake.spark import get_spark

    return get_spark(config, app_name=app_name)


@app.command()
def ingest(
    dataset: Annotated[
        str, typer.Argument(help="dataset name (registered in conf/datasets.csv unless files follow)")
    ],
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="capture files, or one dataset folder (site folders, or <device>/<event>/ folders with "
            "devices.yaml); default: the dataset's registered folder"
        ),
    ] = None,
    site: Annotated[str, typer.Option(help="site of the given files")] = "default",
    macs: Annotated[Path | None, typer.Option(help="MAC map of the given files' site")] = None,
    site_config: Annotated[
        Path | None, typer.Option("--site-config", help="site YAML of the given files")
    ] = None,
    then_build: Annotated[
        bool, typer.Option("--build", help="then rebuild the dataset's models, in the same Spark session")
    ] = False,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="with --build: only these models")
    ] = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Extract captures with one tshark pass each and replace their partitions in the bronze tables.

    With --build, the dataset's models are rebuilt right after, without a second Spark start.
    """
    from iotlake import pipeline

    printer = output.start("ingest", quiet, as_json)
    config = _config(conf, lake)
    if files and len(files) == 1 and files[0].is_dir():
        plans = pipeline.plan_directory(config, dataset, files[0])
    elif files:
        plans = pipeline.plan_files(config, dataset, site, list(files), macs, site_config)
    else:
        plans = pipeline.plan_registered(config, dataset)
    spark = _spark(config, "iotlake ingest")
    report = pipeline.ingest(spark, config, dataset, plans, progress=printer.progress)
    truncated = f", truncated: {', '.join(report.truncated)}" if report.truncated else ""
    tables = dict(report.rows)
    built: dict[str, Any] = {}
    if then_build:
        runs = pipeline.build(spark, config, [dataset], only=model, progress=printer.progress)
        tables = _show_runs(printer, runs, tables)
        built = {"runs": [asdict(r) for r in runs]}
    printer.finish(
        tables,
        f"ingested {report.captures} capture(s), {report.packets} packets into {config.lake_root} "
        f"(packets v{report.versions['packets']}){truncated}" + (", models rebuilt" if then_build else ""),
        dataset=dataset,
        captures=report.captures,
        packets=report.packets,
        truncated=report.truncated,
        versions=report.versions,
        lake=config.lake_root,
        **built,
    )


def _show_runs(printer: Output, runs: list[ModelRun], tables: dict[str, int] | None = None) -> dict[str, int]:
    """The table of models built, and `tables` with their rows added."""
    rows = [(r.dataset, r.table, r.rows, r.version, f"{r.seconds:.1f}s") for r in runs]
    printer.table(rows, ["dataset", "table", "rows", "version", "time"], title="models built")
    tables = dict(tables or {})
    for run in runs:
        output.add_rows(tables, {run.table: run.rows})
    return tables


@app.command()
def build(
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", callback=_dataset_names, help="dataset(s) to rebuild (default: all)"),
    ] = None,
    interval: Annotated[int | None, typer.Option(help="interval length in seconds (default: 3600)")] = None,
    alignment: Annotated[
        str | None, typer.Option(help="interval origin: wall_clock, capture_start or device_first")
    ] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="only these models")] = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Rebuild the SQL models (silver, gold) of the datasets in the lake."""
    from iotlake import pipeline

    printer = output.start("build", quiet, as_json)
    config = _config(conf, lake)
    spark = _spark(config, "iotlake build")
    runs = pipeline.build(spark, config, dataset, interval, model, alignment, progress=printer.progress)
    tables = _show_runs(printer, runs)
    built = sorted({r.dataset for r in runs})
    printer.finish(tables, f"dataset(s) {', '.join(built)}", datasets=built, runs=[asdict(r) for r in runs])


def _show_result(printer: Output, result, fmt: str) -> None:
    """Print a query result as a rich table, CSV or JSON (the two latter on stdout, nothing else there)."""
    from iotlake import query

    if fmt == "csv":
        printer.write(query.to_csv(result))
    elif fmt == "json":
        printer.write(query.to_json(result) + "\n")
    else:
        printer.table([[query.cell(v) for v in row] for row in result.rows], result.columns)


@app.command()
def sql(
    statement: Annotated[
        str | None,
        typer.Argument(help="SQL statement(s), tables as iotlake.<name>; none: an interactive shell"),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    as_json: DataJsonOption = False,
    as_of: Annotated[
        list[str] | None,
        typer.Option(
            "--as-of", help="time travel: VERSION, TIMESTAMP or TABLE=VERSION|TIMESTAMP (repeatable)"
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", callback=_dataset_names, help="read only this dataset's rows of every table"
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="rows to show at most")] = 1000,
    quiet: DataQuietOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Run SQL against the lake (read-only), or open an interactive SQL shell when no statement is given.

    Results go to stdout (--format csv|json, --json: nothing else there); on stderr a line per statement
    (rows, time, table versions read) and a summary line at the end; --quiet drops these lines.
    """
    from iotlake import query

    fmt = "json" if as_json else fmt
    if fmt not in query.FORMATS:
        raise IotlakeError("--format", f"{fmt!r}: use table, csv or json")
    printer = output.start("sql", quiet, as_json, data=True)
    scope = query.make_scope(as_of, dataset)
    config = _config(conf, lake)
    spark = _spark(config, "iotlake sql")
    session = query.open_session(spark, config.lake_root, config.project_dir / "sql", scope, limit)
    counts: list[int] = []

    def show(result: query.Result, fmt: str) -> None:
        _show_result(printer, result, fmt)
        counts.append(len(result.rows))
        if not quiet:
            errors.print(result.summary(), style="dim", highlight=False, soft_wrap=True)

    def finish(failures: int = 0) -> None:
        failed = f", {failures} failed" if failures else ""
        printer.finish(note=f"{len(counts)} statement(s){failed}, {sum(counts)} row(s)")

    if statement is not None:
        for result in session.run_all(statement):
            show(result, fmt)
        finish()
        return
    shell = query.Shell(
        session,
        show,
        say=lambda text: errors.print(escape(text), highlight=False),
        fail=lambda text: errors.print(
            f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True
        ),
        output=fmt,
    )
    if sys.stdin.isatty():
        if not quiet:
            errors.print(
                f"iotlake sql on {config.lake_root}: statements end with ';', .help for more, \\q quits"
            )
        read = query.prompt_reader(session, shell)
        while True:
            try:
                if not shell.feed(read()):
                    break
            except KeyboardInterrupt:
                shell.pending = ""
            except EOFError:
                break
    else:
        for line in sys.stdin:
            if not shell.feed(line.rstrip("\n")):
                break
    shell.finish()
    finish(shell.errors)
    if shell.errors:
        raise typer.Exit(1)


@app.command()
def enrich(
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", callback=_dataset_names, help="dataset(s) (default: all)")
    ] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="look cached addresses up again")] = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Look up the owners (AS, network, organisation) of remote public IPs into the ip_owners cache."""
    from iotlake import pipeline

    printer = output.start("enrich", quiet, as_json)
    config = _config(conf, lake)
    report = pipeline.enrich(_spark(config, "iotlake enrich"), config, dataset, refresh)
    source = "RDAP" if report.rdap_reachable else "offline ASN data (RDAP unreachable)"
    lookups = {k: v for k, v in asdict(report).items() if k != "written"}
    printer.finish(
        report.written,
        f"{report.requested} public addresses: {report.cached} cached, {report.online} looked up online, "
        f"{report.offline} from offline data; {report.unknown} unknown — source: {source}",
        **lookups,
    )


@app.command()
def label(
    ip: Annotated[str | None, typer.Option("--ip", help="the remote IP address to classify")] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="a host name (covers its subdomains) to classify")
    ] = None,
    party_class: Annotated[
        str | None,
        typer.Option(
            "--class", help="First, Support, Third, Local Multicast, Local Broadcast or 'Local (<peer>)'"
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", callback=_dataset_names, help="only in this dataset (default: any)"),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="only for this device (default: any)")
    ] = None,
    note: Annotated[str, typer.Option("--note", help="why (kept with the override)")] = "",
    import_csv: Annotated[
        Path | None, typer.Option("--import", help="CSV of overrides: ip,host,class[,dataset,device,note]")
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="delete the given override(s) instead")] = False,
    show: Annotated[bool, typer.Option("--list", help="list the overrides")] = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Set a party class by hand for an IP or host name; overrides win over conf/endpoint_rules.yaml.

    With --json and --list, the overrides are in the summary object's "overrides"."""
    from iotlake import pipeline
    from iotlake.enrich import overrides

    printer = output.start("label", quiet, as_json)
    config = _config(conf, lake)
    if import_csv:
        rows = overrides.read_csv(import_csv)
    elif ip or host:
        if not party_class and not remove:
            raise IotlakeError("iotlake label", "--class is required with --ip or --host")
        rows = [overrides.make_override(ip, host, party_class or "Third", dataset, device, note)]
    elif show:
        rows = []
    else:
        raise IotlakeError("iotlake label", "give --ip or --host with --class, --import FILE, or --list")
    spark = _spark(config, "iotlake label")
    written: dict[str, int] = {}
    notes, extra = [], {}
    if rows and remove:
        removed = pipeline.remove_overrides(spark, config, rows)
        notes.append(f"removed {removed} override(s)")
        extra["removed"] = removed
    elif rows:
        version = pipeline.add_overrides(spark, config, rows)
        written["endpoint_overrides"] = len(rows)
        notes.append(
            f"{len(rows)} override(s) saved (endpoint_overrides version {version}); "
            "run `iotlake build` to apply them"
        )
        extra["version"] = version
    if show:
        found = pipeline.list_overrides(spark, config)
        columns = ["kind", "value", "dataset", "device", "class", "note", "added by", "added at"]
        printer.table([list(astuple(o)) for o in found], columns, title="endpoint overrides")
        notes.append(f"{len(found)} override(s) listed")
        extra["overrides"] = [asdict(o) for o in found]
    printer.finish(written, "; ".join(notes), **extra)


export_app = typer.Typer(no_args_is_help=True, help="Write gold tables in the file formats of earlier tools.")
app.add_typer(export_app, name="export")


# What each `iotlake export KIND` writes; pipeline.export_<kind> does the work.
EXPORTS = {
    "volumes": "Export per-device interval volumes and the overall stats/distribution files.",
    "protocols": "Export per-device protocol files and the protocol distribution and unique-protocol summaries.",
    "endpoints": "Export per-device `*-endpoints.csv` files (Type filled) and the three endpoint distributions.",
}


def _export_command(kind: str, summary: str) -> None:
    """Register `iotlake export <kind>`: the same options for every kind, one pipeline function each."""

    def command(
        dataset: Annotated[str, typer.Option("--dataset", callback=_dataset_names, help="dataset to export")],
        out: Annotated[Path, typer.Option("--out", help="folder to write the files into")],
        fmt: Annotated[
            str, typer.Option("--format", help="file format: pms (Passive-Mode-Study CSVs)")
        ] = "pms",
        profile: Annotated[str, typer.Option(help="filter profile (conf/iotlake.yaml)")] = "passive",
        quiet: QuietOption = False,
        as_json: JsonOption = False,
        conf: ConfOption = None,
        lake: LakeOption = None,
    ) -> None:
        from iotlake import pipeline

        printer = output.start(f"export {kind}", quiet, as_json)
        config = _config(conf, lake)
        export = getattr(pipeline, f"export_{kind}")
        report = export(_spark(config, "iotlake export"), config, dataset, profile, out, fmt)
        printer.finish(
            note=f"wrote {report.files} files for {report.devices} devices to {report.directory}",
            files=report.files,
            devices=report.devices,
            directory=report.directory,
        )

    command.__doc__ = summary
    export_app.command(kind)(command)


for _kind, _summary in EXPORTS.items():
    _export_command(_kind, _summary)


protocols_app = typer.Typer(no_args_is_help=True, help="Protocol labels and their categories.")
app.add_typer(protocols_app, name="protocols")


@protocols_app.command("unknown")
def protocols_unknown(
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", callback=_dataset_names, help="dataset(s) (default: all)")
    ] = None,
    quiet: DataQuietOption = False,
    as_json: DataJsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """List application labels of the built lake that conf/protocol_types.csv gives no category.

    The labels go to stdout (--json: a JSON array), the summary line to stderr."""
    from iotlake import protocols
    from iotlake.models.runner import declare, discover

    printer = output.start("protocols unknown", quiet, as_json, data=True)
    config = _config(conf, lake)
    spark = _spark(config, "iotlake protocols")
    declare(discover(config.project_dir / "sql"))
    found = protocols.unknown_labels(spark, config.lake_root, dataset)
    columns = ["dataset", "protocol", "devices", "packets"]
    rows = [(u.dataset, u.protocol, u.devices, u.packets) for u in found]
    if as_json:
        printer.write(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], indent=1) + "\n")
    elif rows:
        printer.table(rows, columns, title="labels with no category")
    else:
        printer.text("every application label has a category in conf/protocol_types.csv")
    printer.finish(note=f"{len(rows)} label(s) with no category in conf/protocol_types.csv")


signatures_app = typer.Typer(
    no_args_is_help=True, help="Event signatures: learn from labelled captures, detect, evaluate, export."
)
app.add_typer(signatures_app, name="signatures")
DatasetArgument = Annotated[str, typer.Argument(help="dataset in the lake")]


@signatures_app.command("learn")
def signatures_learn(
    dataset: DatasetArgument,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Learn one signature per labelled device and event of the dataset (table event_signatures)."""
    from iotlake.signatures import mining

    printer = output.start("signatures learn", quiet, as_json)
    config = _config(conf, lake)
    spark = _spark(config, "iotlake signatures learn")
    report = mining.learn(spark, config, dataset)
    if printer.shows:
        rows = (
            mining.signatures(spark, config, dataset)
            .select(
                "device",
                "event",
                "element_no",
                "remote",
                "transport",
                "application",
                "fixed_port",
                "initiator",
                "app_fields",
                "support",
            )
            .collect()
        )
        columns = list(rows[0].asDict()) if rows else []
        printer.table([tuple(r) for r in rows], columns, title="event signatures")
    printer.finish(
        {"event_signatures": report.elements},
        f"learned {report.events} signature(s), {report.elements} element(s) (event_signatures v{report.version})",
        dataset=dataset,
        events=report.events,
        elements=report.elements,
        version=report.version,
    )


@signatures_app.command("detect")
def signatures_detect(
    dataset: Annotated[str, typer.Argument(help="dataset to scan")],
    signatures: Annotated[
        str | None,
        typer.Option("--signatures", help="dataset the signatures were learned on (default: same)"),
    ] = None,
    capture: Annotated[list[str] | None, typer.Option("--capture", help="only these captures")] = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Scan a dataset's captures for signature occurrences (table event_detections)."""
    from iotlake.signatures import mining

    printer = output.start("signatures detect", quiet, as_json)
    config = _config(conf, lake)
    spark = _spark(config, "iotlake signatures detect")
    found, version = mining.detect(spark, config, dataset, signatures, capture)
    if printer.shows:
        rows = mining.detections(spark, config, dataset, signatures, capture).collect()
        columns = list(rows[0].asDict()) if rows else []
        printer.table([tuple(r) for r in rows], columns, title="event detections")
    printer.finish(
        {"event_detections": found},
        f"{found} detection(s) (event_detections v{version})",
        dataset=dataset,
        detections=found,
        version=version,
    )


@signatures_app.command("evaluate")
def signatures_evaluate(
    dataset: DatasetArgument,
    train: Annotated[
        int | None, typer.Option(help="training captures per event (default: train_fraction of iotlake.yaml)")
    ] = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Learn on each event's earliest captures, detect on all others: precision and recall per event.

    With --json, the summary object's "rows" holds the evaluation table."""
    from iotlake.signatures import mining

    printer = output.start("signatures evaluate", quiet, as_json)
    config = _config(conf, lake)
    result = mining.evaluate(_spark(config, "iotlake signatures evaluate"), config, dataset, train)
    printer.text(mining.evaluation_markdown(result.rows))
    printer.finish(
        {"signature_evaluation": len(result.rows)},
        f"evaluated {len(result.rows)} signature(s) (signature_evaluation v{result.version})",
        dataset=dataset,
        version=result.version,
        rows=result.rows,
    )


@signatures_app.command("export")
def signatures_export(
    dataset: DatasetArgument,
    out: Annotated[Path, typer.Option("--out", help="folder to write <device>/… files into")],
    fmt: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            help="csv (the earlier tool's signature.csv), yaml (firewall device profile), nft (nftables), "
            "mud (RFC 8520) or all; repeatable",
        ),
    ] = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Export each device's signatures and periodic background as signature CSVs, profiles and MUD files."""
    from iotlake.signatures import profiles

    printer = output.start("signatures export", quiet, as_json)
    config = _config(conf, lake)
    written = profiles.export(
        _spark(config, "iotlake signatures export"), config, dataset, fmt or ["all"], out
    )
    devices = {p.parent.name for p in written}
    printer.finish(
        note=f"wrote {len(written)} file(s) for {len(devices)} device(s) to {out}",
        files=len(written),
        devices=len(devices),
        directory=out,
    )


@app.command()
def contribute(
    path: Annotated[Path, typer.Argument(help="the contributed folder (or its dataset.yaml)")],
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    pseudonymise: Annotated[
        bool, typer.Option("--pseudonymise", help="replace MACs and local IPs by keyed HMAC pseudonyms")
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file", help="secret key for --pseudonymise, kept outside the lake (created if missing)"
        ),
    ] = None,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Stage a contributed dataset, validate it (expectations/), then promote it or quarantine it.

    A new pseudonymisation key is announced in every mode (on stderr with --json)."""
    from iotlake.quality import gate
    from iotlake.quality.manifest import load_manifest, manifest_path

    printer = output.start("contribute", quiet, as_json)
    config = _config(conf, lake)
    manifest = load_manifest(path)  # a malformed manifest fails before Spark starts
    prepared = gate.pseudonymisation_key(config, manifest_path(path), manifest, key_file, pseudonymise)
    if prepared and prepared[1]:
        printer.notice(
            f"created a new pseudonymisation key in {key_file}: keep it secret and outside the "
            "lake; contribute with the same key to get the same pseudonyms"
        )
    spark = _spark(config, "iotlake contribute")
    report = gate.contribute(spark, config, path, printer.progress, key_file, pseudonymise)
    if not report.promoted:
        for line in report.lines():
            printer.text(line)
        error = report.error()
        failures = [asdict(f) for f in report.failures]
        printer.fail(str(error), dataset=report.dataset, quarantine=report.quarantine, failures=failures)
        raise error
    # imported data files have rows per table; captures: the bronze rows promoted
    written = report.rows or {"packets": report.packets, "captures": report.captures}
    printer.finish(
        written,
        " ".join(report.lines()),
        dataset=report.dataset,
        expectations=report.expectations,
        versions=report.versions,
        models=report.models,
        pseudonymised=report.pseudonymised,
    )


@app.command("datasets")
def list_datasets(
    quiet: DataQuietOption = False,
    as_json: DataJsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """List the registered datasets (conf/datasets.csv): status, provenance, Delta versions of their tables.

    The list goes to stdout (--json: a JSON array, "tables" maps each table to its version), the summary line
    to stderr."""
    from iotlake.quality import registry

    printer = output.start("datasets", quiet, as_json, data=True)
    config = _config(conf, lake)
    entries = registry.read_registry(config.registry_path)
    spark = _spark(config, "iotlake datasets")
    versions = registry.table_versions(spark, config.lake_root, config.project_dir / "sql")
    known = {e.name for e in entries}
    rows = [(e.name, e.status, e.contributor, e.licence, e.source, versions.get(e.name, {})) for e in entries]
    rows += [
        (name, "not registered", "", "", "", found)
        for name, found in sorted(versions.items())
        if name not in known
    ]
    if as_json:
        columns = ["dataset", "status", "contributor", "licence", "source", "tables"]
        printer.write(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], indent=1) + "\n")
    else:
        columns = [
            "dataset",
            "status",
            "contributor",
            "licence",
            "source",
            "tables (version last writing it)",
        ]
        listed = [
            (*r[:5], ", ".join(f"{t} v{v}" for t, v in r[5].items()) or "not in the lake") for r in rows
        ]
        printer.table(listed, columns, title=str(config.registry_path))
    printer.finish(note=f"{len(rows)} dataset(s), {len(versions)} in {config.lake_root}")


@app.command("tables")
def list_tables(
    as_json: DataJsonOption = False,
    quiet: DataQuietOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """List the lake's tables with row counts, Delta versions and what a row is.

    The list goes to stdout (--json: a JSON array), the summary line to stderr."""
    from delta.tables import DeltaTable

    from iotlake.lake import tables
    from iotlake.models.runner import declare, discover

    printer = output.start("tables", quiet, as_json, data=True)
    config = _config(conf, lake)
    spark = _spark(config, "iotlake tables")
    declare(discover(config.project_dir / "sql"))
    rows = []
    for entry in tables.register_all(spark, config.lake_root):
        delta = DeltaTable.forPath(spark, entry.path(config.lake_root))
        version = delta.history(1).collect()[0]["version"]
        rows.append((entry.qualified, entry.layer, delta.toDF().count(), version, entry.comment))
    columns = ["table", "layer", "rows", "version", "what a row is"]
    if as_json:
        printer.write(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], indent=1) + "\n")
    else:
        printer.table(rows, columns, title=config.lake_root)
    printer.finish(note=f"{len(rows)} tables, {sum(r[2] for r in rows):,} rows in {config.lake_root}")


@app.command("catalog")
def catalog_command(
    out: Annotated[
        Path | None, typer.Option("--out", help="write the registration SQL to this file instead of stdout")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="(re)write the table and column comments into every table")
    ] = False,
    as_json: DataJsonOption = False,
    quiet: DataQuietOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Print the SQL that registers the lake's tables as iotlake.<name> in spark-sql or pyspark.

    The script goes to stdout (or --out); --json prints the tables, locations and comment status as a JSON
    array instead; the summary line goes to stderr."""
    from iotlake import catalog
    from iotlake.lake import tables
    from iotlake.models.runner import declare, discover

    printer = output.start("catalog", quiet, as_json, data=True)
    config = _config(conf, lake)
    spark = _spark(config, "iotlake catalog")
    sql_dir = config.project_dir / "sql"
    declare(discover(sql_dir))
    notes = catalog.annotate(spark, config.lake_root, sql_dir) if apply else []
    script = catalog.register_script(spark, config.lake_root)
    found = [t for t in tables.all_tables() if tables.exists(spark, config.lake_root, t)]
    if as_json:
        by_name = {n.table: n for n in notes}
        entries = [
            {
                "table": t.qualified,
                "location": catalog.location(config.lake_root, t),
                "comment": t.comment,
                **(
                    {
                        "columns_commented": list(by_name[t.name].columns_set),
                        "missing": list(by_name[t.name].missing),
                    }
                    if t.name in by_name
                    else {}
                ),
            }
            for t in found
        ]
        printer.write(json.dumps(entries, indent=1) + "\n")
    elif out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(script)
    else:
        printer.write(script)
    changed = sum(1 for n in notes if n.table_comment_set or n.columns_set)
    missing = sum(len(n.missing) for n in notes)
    applied = (
        f"; comments updated in {changed} table(s), {missing} column(s) without a comment" if apply else ""
    )
    where = f" to {out}" if out is not None and not as_json else ""
    printer.finish(note=f"{len(found)} tables registered{where}{applied}")


@app.command("import-pms")
def import_pms(
    dataset: Annotated[str, typer.Argument(help="name of the imported dataset")],
    folder: Annotated[Path, typer.Argument(help="Passive-Mode-Study folder (data/ and macs/)")],
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Import the earlier tool's per-capture CSV files into the gold tables (source = imported)."""
    from iotlake.imports import pms

    printer = output.start("import-pms", quiet, as_json)
    config = _config(conf, lake)
    pms.plan_import(folder)  # a bad folder fails here, before Spark starts
    report = pms.import_pms(_spark(config, "iotlake import-pms"), config, dataset, folder)
    printer.finish(
        report.rows,
        f"imported {sum(report.files.values())} files ({report.skipped} summary/Combined files left out), "
        + ", ".join(f"{t}: {n} rows (v{report.versions[t]})" for t, n in report.rows.items())
        + f"; {report.flagged} `*` rows flagged",
        dataset=dataset,
        files=report.files,
        skipped=report.skipped,
        flagged=report.flagged,
        versions=report.versions,
    )


# The keys of a published table's comparison in `reproduce pms --json` (reproduce.summary_rows).
REPRODUCED_KEYS = ("table", "cells", "exact", "printed_precision", "deviations", "method")
reproduce_app = typer.Typer(no_args_is_help=True, help="Re-derive published summary tables and compare.")
app.add_typer(reproduce_app, name="reproduce")


@reproduce_app.command("pms")
def reproduce_pms(
    dataset: Annotated[
        str, typer.Option("--dataset", callback=_dataset_names, help="imported dataset to use")
    ] = "pms",
    folder: Annotated[
        Path | None,
        typer.Option("--folder", help="study folder (default: ../shared/data/passive-mode-study)"),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="also write the reproduced CSVs here")] = None,
    reimport: Annotated[bool, typer.Option("--reimport", help="import the folder again first")] = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Re-derive the Passive-Mode-Study summaries from the imported files and compare with the published ones.

    With --json, the summary object holds the comparison per published table and the deviations."""
    from iotlake.imports import pms, reproduce

    printer = output.start("reproduce pms", quiet, as_json)
    config = _config(conf, lake)
    folder = folder or reproduce.default_folder(config.project_dir)
    pms.plan_import(folder)  # a bad folder fails here, before Spark starts
    spark = _spark(config, "iotlake reproduce")
    result = reproduce.reproduce_pms(spark, config, dataset, folder, out, reimport)
    columns = ["published table", "cells", "exact", "at printed precision", "deviations", "method"]
    compared = reproduce.summary_rows(result.tables)
    printer.table(compared, columns, title="reproduce pms: re-derived vs published")
    deviations = [astuple(d) for c in result.tables for d in c.deviations]
    if deviations:
        columns = ["published table", "row", "column", "published", "reproduced", "cause"]
        printer.table(deviations, columns, title="deviations")
    unexplained = sum(1 for d in deviations if d[-1] == reproduce.CAUSE_UNEXPLAINED)
    written = f"; wrote {result.written} reproduced files to {out}" if result.written else ""
    printer.finish(
        result.imported.rows if result.imported else {},
        f"{len(deviations)} deviation(s), {unexplained} unexplained{written}",
        dataset=dataset,
        compared=[dict(zip(REPRODUCED_KEYS, r, strict=True)) for r in compared],
        deviations=[asdict(d) for c in result.tables for d in c.deviations],
        unexplained=unexplained,
        files=result.written,
    )


compare_app = typer.Typer(
    no_args_is_help=True,
    help="Compare devices, device models and datasets across the lake (sql/compare/): the rows on stdout "
    "(--format csv|json, --json), the summary line on stderr.",
)
app.add_typer(compare_app, name="compare")
CompareFormat = Annotated[str, typer.Option("--format", help="table, csv or json")]
CompareProfile = Annotated[str, typer.Option("--profile", help="filter profile (conf/iotlake.yaml)")]
VendorOption = Annotated[str | None, typer.Option("--vendor", help="only this vendor (any case)")]
KindOption = Annotated[str | None, typer.Option("--kind", help="only this kind of device, e.g. plug")]


def _compare(
    name: str,
    command: str,
    fmt: str,
    quiet: bool,
    as_json: bool,
    conf: Path | None,
    lake: str | None,
    **filters: str | None,
) -> None:
    """Run one comparison of lib/iotlake/compare.py and print it: the rows on stdout, the summary on stderr."""
    from iotlake import compare, query

    fmt = "json" if as_json else fmt
    if fmt not in query.FORMATS:
        raise IotlakeError("--format", f"{fmt!r}: use table, csv or json")
    printer = output.start(f"compare {command}", quiet, as_json, data=True)
    config = _config(conf, lake)
    spark = _spark(config, f"iotlake compare {name}")
    frame = getattr(compare, name)(spark, config, **filters)
    digits = 4 if fmt == "table" else None  # CSV and JSON keep full precision
    result = compare.result(frame, f"compare {name}", digits)
    _show_result(printer, result, fmt)
    printer.finish(note=f"{len(result.rows)} row(s)")


@compare_app.command("devices")
def compare_devices(
    vendor: VendorOption = None,
    kind: KindOption = None,
    profile: CompareProfile = "passive",
    fmt: CompareFormat = "table",
    as_json: DataJsonOption = False,
    quiet: DataQuietOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Every device of every dataset and site: volumes, protocol-type and party-class mix, same model together."""
    _compare("devices", "devices", fmt, quiet, as_json, conf, lake, vendor=vendor, kind=kind, profile=profile)


@compare_app.command("models")
def compare_models(
    vendor: VendorOption = None,
    kind: KindOption = None,
    profile: CompareProfile = "passive",
    fmt: CompareFormat = "table",
    as_json: DataJsonOption = False,
    quiet: DataQuietOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Per vendor and kind (kind * = all the vendor's kinds) at each site of each dataset: devices and means."""
    _compare("models", "models", fmt, quiet, as_json, conf, lake, vendor=vendor, kind=kind, profile=profile)


@compare_app.command("datasets")
def compare_datasets(
    dataset_a: Annotated[str, typer.Argument(help="dataset a")],
    dataset_b: Annotated[str, typer.Argument(help="dataset b, compared with a (ratios are b / a)")],
    vendor: VendorOption = None,
    profile: CompareProfile = "passive",
    fmt: CompareFormat = "table",
    as_json: DataJsonOption = False,
    quiet: DataQuietOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """One dataset against another: the whole datasets, each vendor and each vendor and kind side by side."""
    _compare(
        "dataset_pair",
        "datasets",
        fmt,
        quiet,
        as_json,
        conf,
        lake,
        dataset_a=dataset_a,
        dataset_b=dataset_b,
        vendor=vendor,
        profile=profile,
    )


@app.command("report")
def report_command(
    dataset: Annotated[str, typer.Option("--dataset", callback=_dataset_names, help="dataset to report on")],
    out: Annotated[Path, typer.Option("--out", help="folder for index.html and figures/")],
    profile: Annotated[str, typer.Option("--profile", help="filter profile of the figures")] = "passive",
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Write a static HTML report of a dataset: tables, figures, data quality, the table versions read."""
    from iotlake import report

    printer = output.start("report", quiet, as_json)
    config = _config(conf, lake)
    result = report.build_report(_spark(config, "iotlake report"), config, dataset, out, profile)
    read = ", ".join(f"{t} v{v}" for t, v in sorted(result.versions.items()))
    printer.finish(
        note=f"{result.index} ({result.tables} tables, {len(result.figures)} figures); read {read}",
        dataset=dataset,
        index=result.index,
        figures=len(result.figures),
        versions=result.versions,
    )


@app.command()
def demo(
    out: Annotated[
        Path | None, typer.Option(help="where to write the demo captures (default: registry entry)")
    ] = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Generate the built-in demo dataset, ingest it, build the models and print a per-device summary."""
    from iotlake import pipeline
    from iotlake.capture.demo import generate_demo

    printer = output.start("demo", quiet, as_json)
    config = _config(conf, lake)
    directory = out or config.dataset("demo").directory
    generate_demo(directory)
    printer.text(f"demo dataset written to {directory}")
    spark = _spark(config, "iotlake demo")
    plans = pipeline.plan_directory(config, "demo", directory)
    report = pipeline.ingest(spark, config, "demo", plans, progress=printer.progress)
    printer.text(f"ingested {report.captures} captures, {report.packets} packets")
    runs = pipeline.build(spark, config, ["demo"], progress=printer.progress)
    printer.text(", ".join(f"{r.table}: {r.rows} rows" for r in runs))
    owners = pipeline.enrich(spark, config, ["demo"])
    runs += pipeline.build(spark, config, ["demo"], only=list(pipeline.ENDPOINT_MODELS))
    printer.text(f"owners: {owners.requested} public addresses, {owners.unknown} unknown")
    if printer.shows:
        summary = pipeline.device_summary(spark, config, "demo")
        printer.table(
            [list(r) for r in summary.collect()],
            summary.columns,
            title="demo: traffic per device over its captures (profile all)",
        )
        endpoints = pipeline.endpoint_summary(spark, config, "demo")
        printer.table(
            [list(r) for r in endpoints.collect()],
            endpoints.columns,
            title="demo: endpoints per device with names, owners and party classes (profile all)",
        )
    # rows per table as the lake now holds them: the endpoint models' second build replaces their first
    tables = {**report.rows, **{r.table: r.rows for r in runs}, **owners.written}
    printer.finish(
        tables,
        f"lake: {config.lake_root}",
        captures=report.captures,
        packets=report.packets,
        directory=directory,
        lake=config.lake_root,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; an IotlakeError becomes one line on stderr and exit status 2 (and, with
    --json, `{"ok": false, "error": …}` on stdout)."""
    try:
        app(args=argv, standalone_mode=False)
    except IotlakeError as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        output.failed(str(exc))
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code)
    except (
        typer.TyperException
    ) as exc:  # usage errors: the message and exit status of the command line parser
        show = getattr(exc, "show", None)
        if show:
            show()
        else:
            errors.print(f"error: {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except PySparkException as exc:
        # A Spark failure the checks above did not foresee: its first line, not a Java stack; details in the log.
        log.debug("Spark error", exc_info=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        errors.print(f"[bold red]error:[/] spark: {escape(first)}", highlight=False, soft_wrap=True)
        output.failed(f"spark: {first}")
        sys.exit(1)
    finally:
        output.end()


if __name__ == "__main__":
    main()
