"""`iotlake report`: a static HTML report of one dataset, in one folder that opens without a server.

`index.html` holds the summary tables, the data-quality status and the Delta versions of the tables it read;
the figures (lib/iotlake/figures.py, the same as the notebooks') are SVG files in `figures/`. No script, no
network: the page is plain HTML and CSS.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment
from markupsafe import Markup, escape
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from iotlake import figures
from iotlake.config import Config
from iotlake.errors import IotlakeError
from iotlake.lake import tables
from iotlake.names import check_name

FIGURES_DIR = "figures"


@dataclass
class Section:
    """One part of the report: a heading, a note, tables (title, HTML) and figures (title, file)."""

    key: str
    title: str
    note: str = ""
    tables: list[tuple[str, Markup]] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Quality:
    """The dataset's data-quality status: registry and lake status, the gate's last result and its detail."""

    registry_status: str
    lake_status: str
    gate: str
    detail: str = ""


@dataclass
class ReportResult:
    """What `build_report` wrote: the page, its figures, the tables it read at which versions, the time."""

    index: Path
    figures: list[Path]
    tables: int
    versions: dict[str, int]
    seconds: float

    def summary(self) -> str:
        """One line for the terminal."""
        read = ", ".join(f"{t} v{v}" for t, v in sorted(self.versions.items()))
        return (
            f"report: {self.index} ({self.tables} tables, {len(self.figures)} figures) "
            f"in {self.seconds:.1f}s; read {read}"
        )


# --- formatting ------------------------------------------------------------------------------------------------


_CODES = ("port", "version", "asn", "_no")  # integers that are identifiers, not quantities: no separators


def _number(value: Any, column: str = "") -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value) if any(code in column for code in _CODES) else f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 0.001:
            return f"{value:.2g}"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"
    if isinstance(value, datetime | pd.Timestamp):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def html_table(frame: pd.DataFrame, columns: Mapping[str, str] | None = None, limit: int = 200) -> Markup:
    """A pandas frame as an escaped HTML table: `columns` picks and renames, numbers are formatted and right-aligned."""
    if columns:
        frame = frame[[c for c in columns if c in frame.columns]].rename(columns=dict(columns))
    numeric = [
        pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
        for c in frame.columns
    ]
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    body = []
    names = [str(c).lower() for c in frame.columns]
    for row in frame.head(limit).itertuples(index=False):
        cells = (
            f'<td class="num">{escape(_number(v, name))}</td>'
            if num
            else f"<td>{escape(_number(v, name))}</td>"
            for v, num, name in zip(row, numeric, names, strict=True)
        )
        body.append(f"<tr>{''.join(cells)}</tr>")
    html = f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    if len(frame) > limit:
        html += f'<p class="note">first {limit} of {len(frame)} rows</p>'
    return Markup(html)


# --- data quality ------------------------------------------------------------------------------------------------


def quality(lake: figures.Lake, dataset: str) -> Quality:
    """Registry status (conf/datasets.csv), the `datasets` table's status and the quality gate's last result."""
    from iotlake.quality import registry

    entry = registry.find(registry.read_registry(lake.config.registry_path), dataset)
    registry_status = entry.status if entry else "not registered"
    lake_status = "no datasets table"
    if lake.has("datasets"):
        rows = lake.frame("datasets", dataset, ["status"])
        lake_status = str(rows["status"].iloc[0]) if len(rows) else "not in the datasets table"
    summary = Path(lake.root.removeprefix("file:")) / "_quarantine" / dataset / "summary.txt"
    status = registry_status if entry else lake_status
    detail = ""
    # A promotion removes the dataset's quarantine folder, so a summary.txt is the last contribution's result.
    quarantined = "://" not in lake.root and summary.is_file()
    if quarantined or status == "quarantined":
        gate = "failed: the last contribution was quarantined"
        if status == "promoted":
            gate += " (the dataset's rows in the lake come from an earlier contribution that passed)"
        detail = summary.read_text(encoding="utf-8") if quarantined else ""
    elif status == "promoted":
        gate = "passed: the contribution passed every expectation and was promoted"
    elif status == "builtin":
        gate = "not gated: a built-in dataset, ingested directly"
    else:
        gate = "not gated: ingested with `iotlake ingest`, outside the contribution gate"
    return Quality(registry_status, lake_status, gate, detail)


def captures(lake: figures.Lake, dataset: str) -> pd.DataFrame:
    """The dataset's captures: packets, time span, truncation and extraction warnings."""
    frame = lake.read("captures", dataset).select(
        "site",
        "capture",
        "packets",
        "first_ts",
        "last_ts",
        "truncated",
        F.concat_ws("; ", "warnings").alias("warnings"),
    )
    return frame.toPandas().sort_values(["site", "capture"]).reset_index(drop=True)


# --- the page ------------------------------------------------------------------------------------------------------

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>iotlake report: {{ dataset }}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; }
header { background: #1f3b57; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: .85; }
nav { padding: 8px 28px; background: #eef2f6; border-bottom: 1px solid #d5dde5; }
nav a { margin-right: 14px; color: #1f3b57; text-decoration: none; }
main { padding: 8px 28px 40px; max-width: 1200px; }
section { margin-top: 26px; }
h2 { border-bottom: 2px solid #1f3b57; padding-bottom: 3px; font-size: 18px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
table.data { border-collapse: collapse; font-size: 12.5px; margin: 4px 0 10px; }
table.data th, table.data td { border: 1px solid #d5dde5; padding: 3px 8px; text-align: left; }
table.data th { background: #eef2f6; position: sticky; top: 0; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { max-height: 420px; overflow: auto; display: inline-block; max-width: 100%; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e8ee; }
figcaption { font-size: 12.5px; color: #555; }
.note { color: #555; font-size: 12.5px; }
.status { display: inline-block; padding: 1px 8px; border-radius: 9px; background: #e3e8ee; }
pre { background: #f6f8fa; padding: 8px; overflow: auto; font-size: 12px; }
</style>
</head>
<body>
<header>
<h1>iotlake report: {{ dataset }}</h1>
<p>{{ generated }} · lake {{ lake_root }} · filter profile {{ profile }} · iotlake {{ version }}</p>
</header>
<nav>{% for s in sections %}<a href="#{{ s.key }}">{{ s.title }}</a>{% endfor %}<a href="#quality">Data quality</a><a href="#versions">Table versions</a></nav>
<main>
{% for s in sections %}
<section id="{{ s.key }}">
<h2>{{ s.title }}</h2>
{% if s.note %}<p class="note">{{ s.note }}</p>{% endif %}
{% for title, table in s.tables %}
<h3>{{ title }}</h3>
<div class="scroll">{{ table }}</div>
{% endfor %}
{% for title, file in s.figures %}
<figure><img src="{{ file }}" alt="{{ title }}"><figcaption>{{ title }}</figcaption></figure>
{% endfor %}
</section>
{% endfor %}
<section id="quality">
<h2>Data quality</h2>
<table class="data">
<tr><th>registry (conf/datasets.csv)</th><td><span class="status">{{ quality.registry_status }}</span></td></tr>
<tr><th>lake (iotlake.datasets)</th><td><span class="status">{{ quality.lake_status }}</span></td></tr>
<tr><th>quality gate, last result</th><td>{{ quality.gate }}</td></tr>
</table>
{% if quality.detail %}<pre>{{ quality.detail }}</pre>{% endif %}
<h3>Captures</h3>
<div class="scroll">{{ captures }}</div>
</section>
<section id="versions">
<h2>Table versions read</h2>
<p class="note">Every table was read at one Delta version; <code>iotlake sql --as-of TABLE=VERSION</code> reads the same data again.</p>
{{ versions }}
</section>
</main>
</body>
</html>
"""


def _figure(out: Path, name: str, fig: Any, written: list[Path]) -> str:
    path = figures.save(fig, out / FIGURES_DIR / f"{name}.svg")
    written.append(path)
    return f"{FIGURES_DIR}/{path.name}"


def _sections(
    lake: figures.Lake, dataset: str, profile: str, out: Path, written: list[Path]
) -> list[Section]:
    sections = []
    volumes = figures.volume_summary(lake, dataset, profile)
    sites = figures.compare_sites(lake, profile, [dataset])
    section = Section("volumes", "Traffic volumes", f"Per device over all its captures (profile {profile}).")
    section.tables.append(
        (
            "Sites",
            html_table(
                sites,
                {
                    "site": "site",
                    "devices": "devices",
                    "packets": "packets",
                    "bytes": "bytes",
                    "lan_packet_share": "LAN packet share",
                    "tx_packet_share": "Tx packet share",
                },
            ),
        )
    )
    section.tables.append(
        (
            "Devices",
            html_table(
                volumes,
                {
                    "label": "device",
                    "intervals": "intervals",
                    "packets": "packets",
                    "bytes": "bytes",
                    "packets_mean": "packets / interval",
                    "frames_cov": "packet CoV",
                    "bytes_cov": "byte CoV",
                    "lan_packet_pct": "LAN packet share",
                    "tx_packet_pct": "Tx packet share",
                },
            ),
        )
    )
    over_time = figures.interval_volumes(lake, dataset, profile)
    section.figures.append(
        (
            "Packets per interval and device: LAN/WAN, Tx/Rx",
            _figure(out, "volumes", figures.plot_volumes(over_time), written),
        )
    )
    sections.append(section)

    protocols = figures.protocol_types(lake, dataset, profile)
    wide = protocols.pivot_table(
        index="label", columns="category", values="packet_share", aggfunc="sum", fill_value=0.0
    ).reset_index()
    section = Section(
        "protocols",
        "Protocols",
        "Share of each device's application packets per protocol category (scope ALL).",
    )
    section.tables.append(("Protocol categories", html_table(wide.rename(columns={"label": "device"}))))
    section.tables.append(
        (
            "Distinct protocols",
            html_table(
                figures.unique_protocols(lake, dataset, profile),
                {
                    "label": "device",
                    "transport": "transport",
                    "session": "session",
                    "application": "application",
                },
            ),
        )
    )
    section.figures.append(
        (
            "Protocol categories per device",
            _figure(out, "protocols", figures.plot_protocol_types(protocols), written),
        )
    )
    sections.append(section)

    classes = figures.endpoint_classes(lake, dataset, profile)
    section = Section(
        "endpoints", "Endpoints", "Party classes of the peers each device exchanged packets with."
    )
    section.tables.append(
        (
            "Party classes",
            html_table(
                classes,
                {
                    "label": "device",
                    "endpoints": "endpoints",
                    "third_party_endpoints": "third-party endpoints",
                    "packets_overall": "packets",
                    "packets_pct_first": "First",
                    "packets_pct_support": "Support",
                    "packets_pct_third": "Third",
                    "packets_pct_local": "Local",
                },
            ),
        )
    )
    plots: list[tuple[str, str, Callable[[], Any]]] = [
        ("Packet share per party class", "endpoint_classes", lambda: figures.plot_endpoint_classes(classes)),
        (
            "Device → party class (share of non-local packets)",
            "sankey_device_party",
            lambda: figures.plot_sankey(figures.sankey_device_party(classes)),
        ),
        (
            "Protocol type → party class (pooled non-local packets)",
            "sankey_protocol_party",
            lambda: figures.plot_sankey(figures.sankey_protocol_party(lake, dataset, profile)),
        ),
        (
            "Device → local peer (share of local packets)",
            "sankey_local_peers",
            lambda: figures.plot_sankey(figures.sankey_local_peers(lake, dataset, profile)),
        ),
    ]
    for title, name, plot in plots:
        section.figures.append((title, _figure(out, name, plot(), written)))
    sections.append(section)

    patterns = figures.flow_patterns(lake, dataset)
    learned = figures.signatures(lake, dataset)
    note = (
        "Periodic flows per device, capture and remote: heartbeats and telemetry (the device's background)."
    )
    if learned.empty:
        note += (
            " No event signatures were learned for this dataset (they need captures labelled with device and"
            " event: `iotlake signatures learn`)."
        )
    section = Section("patterns", "Flow patterns and signatures", note)
    section.tables.append(
        (
            "Periodic flow patterns",
            html_table(
                patterns,
                {
                    "label": "device",
                    "capture": "capture",
                    "remote": "remote",
                    "application": "application",
                    "server_port": "port",
                    "flows": "flows",
                    "period_s": "period (s)",
                    "regularity": "regularity (CoV)",
                },
            ),
        )
    )
    section.figures.append(
        (
            "Periodic flow patterns",
            _figure(out, "flow_patterns", figures.plot_flow_patterns(patterns), written),
        )
    )
    if not learned.empty:
        section.tables.append(("Event signatures", html_table(learned)))
        evaluation = figures.signature_evaluation(lake, dataset)
        if not evaluation.empty:
            section.tables.append(("Signature evaluation", html_table(evaluation)))
    sections.append(section)
    return sections


def check_dataset(lake: figures.Lake, dataset: str) -> None:
    """Fail with one line when the dataset has no volume tables in the lake."""
    check_name("dataset", dataset, "--dataset")
    known = lake.datasets()
    if dataset not in known:
        raise IotlakeError(
            "--dataset",
            f"no dataset {dataset!r} in the lake {lake.root} (datasets: {', '.join(known) or 'none'}; "
            "run `iotlake build` first)",
        )


def build_report(
    spark: SparkSession, config: Config, dataset: str, out: Path, profile: str = "passive"
) -> ReportResult:
    """Write `out/index.html` and `out/figures/*.svg` for one dataset; returns what was written and read."""
    from iotlake import __version__

    started = time.monotonic()
    figures.declare_tables(config)
    lake = figures.Lake(spark, config)
    check_dataset(lake, dataset)
    if profile not in config.settings.profiles:
        known = ", ".join(config.settings.profiles)
        raise IotlakeError("--profile", f"unknown filter profile {profile!r} (profiles: {known})")
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / FIGURES_DIR, ignore_errors=True)
    written: list[Path] = []
    sections = _sections(lake, dataset, profile, out, written)
    status = quality(lake, dataset)
    capture_table = html_table(captures(lake, dataset))
    versions = pd.DataFrame(
        [
            (f"{tables.DATABASE}.{name}", version, tables.table(name).path(lake.root))
            for name, version in sorted(lake.versions.items())
        ],
        columns=["table", "Delta version", "location"],
    )
    page = (
        Environment(autoescape=True)
        .from_string(TEMPLATE)
        .render(
            dataset=dataset,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            lake_root=lake.root,
            profile=profile,
            version=__version__,
            sections=sections,
            quality=status,
            captures=capture_table,
            versions=html_table(versions),
        )
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    count = sum(len(s.tables) for s in sections) + 3
    return ReportResult(index, written, count, dict(lake.versions), time.monotonic() - started)
