"""The `iotlake` command: parses arguments, calls pipeline/ and lake/, prints with rich. No logic here."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import astuple
from pathlib import Path
from typing import Annotated

import typer
from pyspark.errors import PySparkException
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from iotlake.config import Config, load_config
from iotlake.errors import IotlakeError

log = logging.getLogger(__name__)
app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="iotlake: PCAP captures → Delta lake → SQL."
)
console = Console()
errors = Console(stderr=True)

ConfOption = Annotated[Path | None, typer.Option("--conf", help="configuration folder (default: ./conf)")]
LakeOption = Annotated[
    str | None, typer.Option("--lake", help="lake root (default: lake_root of iotlake.yaml)")
]


def _config(conf: Path | None, lake: str | None) -> Config:
    config = load_config(conf)
    if lake:
        config.settings.lake_root = lake
    return config


def _spark(config: Config, app_name: str):
    from iotlake.spark import get_spark

    return get_spark(config, app_name=app_name)


def _print_frame(rows: list, columns: list[str], title: str | None = None) -> None:
    """A rich table; piped output (logs, files) gets its natural width instead of being wrapped at 80."""
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    if console.is_terminal:
        console.print(table)
    else:
        Console(width=100_000).print(table, crop=False)


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
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bars")] = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Extract captures with one tshark pass each and replace their partitions in the bronze tables."""
    from iotlake import pipeline

    config = _config(conf, lake)
    if files and len(files) == 1 and files[0].is_dir():
        plans = pipeline.plan_directory(config, dataset, files[0])
    elif files:
        plans = pipeline.plan_files(config, dataset, site, list(files), macs, site_config)
    else:
        plans = pipeline.plan_registered(config, dataset)
    started = time.monotonic()
    report = pipeline.ingest(_spark(config, "iotlake ingest"), config, dataset, plans, progress=not quiet)
    truncated = f", truncated: {', '.join(report.truncated)}" if report.truncated else ""
    console.print(
        f"ingested {report.captures} capture(s), {report.packets} packets into {config.lake_root} "
        f"(packets v{report.versions['packets']}) in {time.monotonic() - started:.1f}s{truncated}"
    )


@app.command()
def build(
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="dataset(s) to rebuild (default: all)")
    ] = None,
    interval: Annotated[int | None, typer.Option(help="interval length in seconds (default: 3600)")] = None,
    alignment: Annotated[
        str | None, typer.Option(help="interval origin: wall_clock, capture_start or device_first")
    ] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="only these models")] = None,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Rebuild the SQL models (silver, gold) of the datasets in the lake."""
    from iotlake import pipeline

    config = _config(conf, lake)
    started = time.monotonic()
    runs = pipeline.build(_spark(config, "iotlake build"), config, dataset, interval, model, alignment)
    rows = [(r.dataset, r.table, r.rows, r.version, f"{r.seconds:.1f}s") for r in runs]
    _print_frame(rows, ["dataset", "table", "rows", "version", "time"], title="models built")
    console.print(f"built {len(runs)} model(s) in {time.monotonic() - started:.1f}s")


def _show_result(result, output: str) -> None:
    """Print a query result as a rich table, CSV or JSON (the two latter on stdout, nothing else there)."""
    from iotlake import query

    if output == "csv":
        sys.stdout.write(query.to_csv(result))
    elif output == "json":
        sys.stdout.write(query.to_json(result) + "\n")
    else:
        _print_frame([[query.cell(v) for v in row] for row in result.rows], result.columns)
    sys.stdout.flush()


@app.command()
def sql(
    statement: Annotated[
        str | None,
        typer.Argument(help="SQL statement(s), tables as iotlake.<name>; none: an interactive shell"),
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="same as --format json")] = False,
    as_of: Annotated[
        list[str] | None,
        typer.Option(
            "--as-of", help="time travel: VERSION, TIMESTAMP or TABLE=VERSION|TIMESTAMP (repeatable)"
        ),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="read only this dataset's rows of every table")
    ] = None,
    limit: Annotated[int, typer.Option(help="rows to show at most")] = 1000,
    quiet: Annotated[bool, typer.Option("--quiet", help="no summary line")] = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Run SQL against the lake (read-only), or open an interactive SQL shell when no statement is given."""
    from iotlake import query

    output = "json" if as_json else output
    if output not in query.FORMATS:
        raise IotlakeError("--format", f"{output!r}: use table, csv or json")
    scope = query.make_scope(as_of, dataset)
    config = _config(conf, lake)
    spark = _spark(config, "iotlake sql")
    session = query.open_session(spark, config.lake_root, config.project_dir / "sql", scope, limit)

    def show(result: query.Result, fmt: str) -> None:
        _show_result(result, fmt)
        if not quiet:
            errors.print(result.summary(), style="dim", highlight=False, soft_wrap=True)

    if statement is not None:
        for result in session.run_all(statement):
            show(result, output)
        return
    shell = query.Shell(
        session,
        show,
        say=lambda text: errors.print(escape(text), highlight=False),
        fail=lambda text: errors.print(
            f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True
        ),
        output=output,
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
    if shell.errors:
        raise typer.Exit(1)


@app.command()
def enrich(
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="dataset(s) (default: all)")] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="look cached addresses up again")] = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Look up the owners (AS, network, organisation) of remote public IPs into the ip_owners cache."""
    from iotlake import pipeline

    config = _config(conf, lake)
    report = pipeline.enrich(_spark(config, "iotlake enrich"), config, dataset, refresh)
    source = "RDAP" if report.rdap_reachable else "offline ASN data (RDAP unreachable)"
    console.print(
        f"{report.requested} public addresses: {report.cached} cached, {report.online} looked up online, "
        f"{report.offline} from offline data; {report.unknown} unknown — source: {source}"
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
        str | None, typer.Option("--dataset", help="only in this dataset (default: any)")
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
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Set a party class by hand for an IP or host name; overrides win over conf/endpoint_rules.yaml."""
    from iotlake import pipeline
    from iotlake.enrich import overrides

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
    if rows and remove:
        console.print(f"removed {pipeline.remove_overrides(spark, config, rows)} override(s)")
    elif rows:
        version = pipeline.add_overrides(spark, config, rows)
        console.print(
            f"{len(rows)} override(s) saved (endpoint_overrides version {version}); "
            "run `iotlake build` to apply them"
        )
    if show:
        found = pipeline.list_overrides(spark, config)
        columns = ["kind", "value", "dataset", "device", "class", "note", "added by", "added at"]
        _print_frame([list(astuple(o)) for o in found], columns, title="endpoint overrides")


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
        dataset: Annotated[str, typer.Option("--dataset", help="dataset to export")],
        out: Annotated[Path, typer.Option("--out", help="folder to write the files into")],
        output: Annotated[
            str, typer.Option("--format", help="file format: pms (Passive-Mode-Study CSVs)")
        ] = "pms",
        profile: Annotated[str, typer.Option(help="filter profile (conf/iotlake.yaml)")] = "passive",
        conf: ConfOption = None,
        lake: LakeOption = None,
    ) -> None:
        from iotlake import pipeline

        config = _config(conf, lake)
        export = getattr(pipeline, f"export_{kind}")
        report = export(_spark(config, "iotlake export"), config, dataset, profile, out, output)
        console.print(f"wrote {report.files} files for {report.devices} devices to {report.directory}")

    command.__doc__ = summary
    export_app.command(kind)(command)


for _kind, _summary in EXPORTS.items():
    _export_command(_kind, _summary)


protocols_app = typer.Typer(no_args_is_help=True, help="Protocol labels and their categories.")
app.add_typer(protocols_app, name="protocols")


@protocols_app.command("unknown")
def protocols_unknown(
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="dataset(s) (default: all)")] = None,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """List application labels of the built lake that conf/protocol_types.csv gives no category."""
    from iotlake import protocols
    from iotlake.models.runner import declare, discover

    config = _config(conf, lake)
    spark = _spark(config, "iotlake protocols")
    declare(discover(config.project_dir / "sql"))
    found = protocols.unknown_labels(spark, config.lake_root, dataset)
    if not found:
        console.print("every application label has a category in conf/protocol_types.csv")
        return
    rows = [(u.dataset, u.protocol, u.devices, u.packets) for u in found]
    _print_frame(rows, ["dataset", "protocol", "devices", "packets"], title="labels with no category")


signatures_app = typer.Typer(
    no_args_is_help=True, help="Event signatures: learn from labelled captures, detect, evaluate, export."
)
app.add_typer(signatures_app, name="signatures")
DatasetArgument = Annotated[str, typer.Argument(help="dataset in the lake")]


@signatures_app.command("learn")
def signatures_learn(dataset: DatasetArgument, conf: ConfOption = None, lake: LakeOption = None) -> None:
    """Learn one signature per labelled device and event of the dataset (table event_signatures)."""
    from iotlake.signatures import mining

    config = _config(conf, lake)
    spark = _spark(config, "iotlake signatures learn")
    report = mining.learn(spark, config, dataset)
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
    _print_frame([tuple(r) for r in rows], list(rows[0].asDict()) if rows else [], title="event signatures")
    console.print(
        f"learned {report.events} signature(s), {report.elements} element(s) (event_signatures v{report.version})"
    )


@signatures_app.command("detect")
def signatures_detect(
    dataset: Annotated[str, typer.Argument(help="dataset to scan")],
    signatures: Annotated[
        str | None,
        typer.Option("--signatures", help="dataset the signatures were learned on (default: same)"),
    ] = None,
    capture: Annotated[list[str] | None, typer.Option("--capture", help="only these captures")] = None,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Scan a dataset's captures for signature occurrences (table event_detections)."""
    from iotlake.signatures import mining

    config = _config(conf, lake)
    spark = _spark(config, "iotlake signatures detect")
    found, version = mining.detect(spark, config, dataset, signatures, capture)
    rows = mining.detections(spark, config, dataset, signatures, capture).collect()
    _print_frame([tuple(r) for r in rows], list(rows[0].asDict()) if rows else [], title="event detections")
    console.print(f"{found} detection(s) (event_detections v{version})")


@signatures_app.command("evaluate")
def signatures_evaluate(
    dataset: DatasetArgument,
    train: Annotated[
        int | None, typer.Option(help="training captures per event (default: train_fraction of iotlake.yaml)")
    ] = None,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Learn on each event's earliest captures, detect on all others: precision and recall per event."""
    from iotlake.signatures import mining

    config = _config(conf, lake)
    result = mining.evaluate(_spark(config, "iotlake signatures evaluate"), config, dataset, train)
    console.print(mining.evaluation_markdown(result.rows), markup=False, soft_wrap=True)
    console.print(f"evaluated {len(result.rows)} signature(s) (signature_evaluation v{result.version})")


@signatures_app.command("export")
def signatures_export(
    dataset: DatasetArgument,
    out: Annotated[Path, typer.Option("--out", help="folder to write <device>/… files into")],
    output: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            help="csv (the earlier tool's signature.csv), yaml (firewall device profile), nft (nftables), "
            "mud (RFC 8520) or all; repeatable",
        ),
    ] = None,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Export each device's signatures and periodic background as signature CSVs, profiles and MUD files."""
    from iotlake.signatures import profiles

    config = _config(conf, lake)
    written = profiles.export(
        _spark(config, "iotlake signatures export"), config, dataset, output or ["all"], out
    )
    devices = {p.parent.name for p in written}
    console.print(f"wrote {len(written)} file(s) for {len(devices)} device(s) to {out}")


@app.command()
def contribute(
    path: Annotated[Path, typer.Argument(help="the contributed folder (or its dataset.yaml)")],
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bars")] = False,
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
    """Stage a contributed dataset, validate it (expectations/), then promote it or quarantine it."""
    from iotlake.quality import gate
    from iotlake.quality.manifest import load_manifest, manifest_path

    config = _config(conf, lake)
    manifest = load_manifest(path)  # a malformed manifest fails before Spark starts
    prepared = gate.pseudonymisation_key(config, manifest_path(path), manifest, key_file, pseudonymise)
    if prepared and prepared[1]:
        console.print(
            f"created a new pseudonymisation key in {escape(str(key_file))}: keep it secret and outside the "
            "lake; contribute with the same key to get the same pseudonyms",
            highlight=False,
        )
    spark = _spark(config, "iotlake contribute")
    report = gate.contribute(spark, config, path, not quiet, key_file, pseudonymise)
    for line in report.lines():
        console.print(escape(line), highlight=False)
    if not report.promoted:
        raise report.error()


@app.command("datasets")
def list_datasets(conf: ConfOption = None, lake: LakeOption = None) -> None:
    """List the registered datasets (conf/datasets.csv): status, provenance, Delta versions of their tables."""
    from iotlake.quality import registry

    config = _config(conf, lake)
    entries = registry.read_registry(config.registry_path)
    spark = _spark(config, "iotlake datasets")
    versions = registry.table_versions(spark, config.lake_root, config.project_dir / "sql")
    rows = [
        (
            e.name,
            e.status,
            e.contributor,
            e.licence,
            e.source,
            ", ".join(f"{t} v{v}" for t, v in versions.get(e.name, {}).items()) or "not in the lake",
        )
        for e in entries
    ]
    known = {e.name for e in entries}
    rows += [
        (name, "not registered", "", "", "", ", ".join(f"{t} v{v}" for t, v in found.items()))
        for name, found in sorted(versions.items())
        if name not in known
    ]
    columns = ["dataset", "status", "contributor", "licence", "source", "tables (version last writing it)"]
    _print_frame(rows, columns, title=str(config.registry_path))


@app.command("tables")
def list_tables(
    as_json: Annotated[bool, typer.Option("--json", help="a JSON array instead of a table")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no summary line")] = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """List the lake's tables with row counts, Delta versions and what a row is."""
    from delta.tables import DeltaTable

    from iotlake.lake import tables
    from iotlake.models.runner import declare, discover

    config = _config(conf, lake)
    started = time.monotonic()
    spark = _spark(config, "iotlake tables")
    declare(discover(config.project_dir / "sql"))
    rows = []
    for entry in tables.register_all(spark, config.lake_root):
        delta = DeltaTable.forPath(spark, entry.path(config.lake_root))
        version = delta.history(1).collect()[0]["version"]
        rows.append((entry.qualified, entry.layer, delta.toDF().count(), version, entry.comment))
    columns = ["table", "layer", "rows", "version", "what a row is"]
    if as_json:
        sys.stdout.write(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], indent=1) + "\n")
    else:
        _print_frame(rows, columns, title=config.lake_root)
    if not quiet:
        errors.print(
            f"{len(rows)} tables, {sum(r[2] for r in rows)} rows in {config.lake_root} "
            f"in {time.monotonic() - started:.1f}s",
            highlight=False,
            soft_wrap=True,
        )


@app.command("catalog")
def catalog_command(
    out: Annotated[
        Path | None, typer.Option("--out", help="write the registration SQL to this file instead of stdout")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="(re)write the table and column comments into every table")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="tables, locations and comment status as JSON")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no summary line")] = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Print the SQL that registers the lake's tables as iotlake.<name> in spark-sql or pyspark."""
    from iotlake import catalog
    from iotlake.lake import tables
    from iotlake.models.runner import declare, discover

    config = _config(conf, lake)
    started = time.monotonic()
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
        sys.stdout.write(json.dumps(entries, indent=1) + "\n")
    elif out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(script)
    else:
        sys.stdout.write(script)
    if not quiet:
        changed = sum(1 for n in notes if n.table_comment_set or n.columns_set)
        missing = sum(len(n.missing) for n in notes)
        applied = (
            f"; comments updated in {changed} table(s), {missing} column(s) without a comment"
            if apply
            else ""
        )
        where = f" to {out}" if out is not None and not as_json else ""
        errors.print(
            f"{len(found)} tables registered{where}{applied} in {time.monotonic() - started:.1f}s",
            highlight=False,
            soft_wrap=True,
        )


@app.command("import-pms")
def import_pms(
    dataset: Annotated[str, typer.Argument(help="name of the imported dataset")],
    folder: Annotated[Path, typer.Argument(help="Passive-Mode-Study folder (data/ and macs/)")],
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Import the earlier tool's per-capture CSV files into the gold tables (source = imported)."""
    from iotlake.imports import pms

    config = _config(conf, lake)
    pms.plan_import(folder)  # a bad folder fails here, before Spark starts
    report = pms.import_pms(_spark(config, "iotlake import-pms"), config, dataset, folder)
    console.print(
        f"imported {sum(report.files.values())} files ({report.skipped} summary/Combined files left out), "
        + ", ".join(f"{t}: {n} rows (v{report.versions[t]})" for t, n in report.rows.items())
        + f"; {report.flagged} `*` rows flagged"
    )


reproduce_app = typer.Typer(no_args_is_help=True, help="Re-derive published summary tables and compare.")
app.add_typer(reproduce_app, name="reproduce")


@reproduce_app.command("pms")
def reproduce_pms(
    dataset: Annotated[str, typer.Option("--dataset", help="imported dataset to use")] = "pms",
    folder: Annotated[
        Path | None,
        typer.Option("--folder", help="study folder (default: ../shared/data/passive-mode-study)"),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="also write the reproduced CSVs here")] = None,
    reimport: Annotated[bool, typer.Option("--reimport", help="import the folder again first")] = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Re-derive the Passive-Mode-Study summaries from the imported files and compare with the published ones."""
    from iotlake.imports import pms, reproduce

    config = _config(conf, lake)
    folder = folder or reproduce.default_folder(config.project_dir)
    pms.plan_import(folder)  # a bad folder fails here, before Spark starts
    spark = _spark(config, "iotlake reproduce")
    result = reproduce.reproduce_pms(spark, config, dataset, folder, out, reimport)
    columns = ["published table", "cells", "exact", "at printed precision", "deviations", "method"]
    _print_frame(
        reproduce.summary_rows(result.tables), columns, title="reproduce pms: re-derived vs published"
    )
    deviations = [astuple(d) for c in result.tables for d in c.deviations]
    if deviations:
        columns = ["published table", "row", "column", "published", "reproduced", "cause"]
        _print_frame(deviations, columns, title="deviations")
    unexplained = sum(1 for d in deviations if d[-1] == reproduce.CAUSE_UNEXPLAINED)
    console.print(f"{len(deviations)} deviation(s), {unexplained} unexplained")
    if result.written:
        console.print(f"wrote {result.written} reproduced files to {out}")


compare_app = typer.Typer(
    no_args_is_help=True, help="Compare devices, device models and datasets across the lake (sql/compare/)."
)
app.add_typer(compare_app, name="compare")
CompareFormat = Annotated[str, typer.Option("--format", help="table, csv or json")]
CompareProfile = Annotated[str, typer.Option("--profile", help="filter profile (conf/iotlake.yaml)")]
VendorOption = Annotated[str | None, typer.Option("--vendor", help="only this vendor (any case)")]
KindOption = Annotated[str | None, typer.Option("--kind", help="only this kind of device, e.g. plug")]


def _compare(name: str, output: str, conf: Path | None, lake: str | None, **filters: str | None) -> None:
    """Run one comparison of lib/iotlake/compare.py and print it."""
    from iotlake import compare, query

    if output not in query.FORMATS:
        raise IotlakeError("--format", f"{output!r}: use table, csv or json")
    config = _config(conf, lake)
    spark = _spark(config, f"iotlake compare {name}")
    frame = getattr(compare, name)(spark, config, **filters)
    digits = 4 if output == "table" else None  # CSV and JSON keep full precision
    _show_result(compare.result(frame, f"compare {name}", digits), output)


@compare_app.command("devices")
def compare_devices(
    vendor: VendorOption = None,
    kind: KindOption = None,
    profile: CompareProfile = "passive",
    output: CompareFormat = "table",
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Every device of every dataset and site: volumes, protocol-type and party-class mix, same model together."""
    _compare("devices", output, conf, lake, vendor=vendor, kind=kind, profile=profile)


@compare_app.command("models")
def compare_models(
    vendor: VendorOption = None,
    kind: KindOption = None,
    profile: CompareProfile = "passive",
    output: CompareFormat = "table",
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Per vendor and kind (kind * = all the vendor's kinds) at each site of each dataset: devices and means."""
    _compare("models", output, conf, lake, vendor=vendor, kind=kind, profile=profile)


@compare_app.command("datasets")
def compare_datasets(
    dataset_a: Annotated[str, typer.Argument(help="dataset a")],
    dataset_b: Annotated[str, typer.Argument(help="dataset b, compared with a (ratios are b / a)")],
    vendor: VendorOption = None,
    profile: CompareProfile = "passive",
    output: CompareFormat = "table",
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """One dataset against another: the whole datasets, each vendor and each vendor and kind side by side."""
    _compare(
        "dataset_pair",
        output,
        conf,
        lake,
        dataset_a=dataset_a,
        dataset_b=dataset_b,
        vendor=vendor,
        profile=profile,
    )


@app.command("report")
def report_command(
    dataset: Annotated[str, typer.Option("--dataset", help="dataset to report on")],
    out: Annotated[Path, typer.Option("--out", help="folder for index.html and figures/")],
    profile: Annotated[str, typer.Option("--profile", help="filter profile of the figures")] = "passive",
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Write a static HTML report of a dataset: tables, figures, data quality, the table versions read."""
    from iotlake import report

    config = _config(conf, lake)
    result = report.build_report(_spark(config, "iotlake report"), config, dataset, out, profile)
    console.print(result.summary(), highlight=False, soft_wrap=True)


@app.command()
def demo(
    out: Annotated[
        Path | None, typer.Option(help="where to write the demo captures (default: registry entry)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bars")] = False,
    conf: ConfOption = None,
    lake: LakeOption = None,
) -> None:
    """Generate the built-in demo dataset, ingest it, build the models and print a per-device summary."""
    from iotlake import pipeline
    from iotlake.capture.demo import generate_demo

    config = _config(conf, lake)
    directory = out or config.dataset("demo").directory
    started = time.monotonic()
    generate_demo(directory)
    console.print(f"demo dataset written to {directory}")
    spark = _spark(config, "iotlake demo")
    plans = pipeline.plan_directory(config, "demo", directory)
    report = pipeline.ingest(spark, config, "demo", plans, progress=not quiet)
    console.print(f"ingested {report.captures} captures, {report.packets} packets")
    runs = pipeline.build(spark, config, ["demo"])
    console.print(", ".join(f"{r.table}: {r.rows} rows" for r in runs))
    owners = pipeline.enrich(spark, config, ["demo"])
    pipeline.build(spark, config, ["demo"], only=list(pipeline.ENDPOINT_MODELS))
    console.print(f"owners: {owners.requested} public addresses, {owners.unknown} unknown")
    summary = pipeline.device_summary(spark, config, "demo")
    _print_frame(
        [list(r) for r in summary.collect()],
        summary.columns,
        title="demo: traffic per device over its captures (profile all)",
    )
    endpoints = pipeline.endpoint_summary(spark, config, "demo")
    _print_frame(
        [list(r) for r in endpoints.collect()],
        endpoints.columns,
        title="demo: endpoints per device with names, owners and party classes (profile all)",
    )
    console.print(f"lake: {config.lake_root} — done in {time.monotonic() - started:.0f}s")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; an IotlakeError becomes one line on stderr and exit status 2."""
    try:
        app(args=argv, standalone_mode=False)
    except IotlakeError as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
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
        sys.exit(1)


if __name__ == "__main__":
    main()
