"""The paper's figures from the lake: pandas frames read from gold tables, and matplotlib figures of them.

Shared by the notebooks (notebooks/) and `iotlake report`. A `Lake` reads each table at one Delta version
(the latest when it is first read) and remembers it, so a figure or report can say what it was made from.
Frame functions take a `Lake` and a dataset; plot functions take such a frame and return a `Figure` made
without pyplot (no global state: callers show it, save it or let Jupyter display it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from iotlake.config import Config, load_config
from iotlake.errors import IotlakeError
from iotlake.lake import tables

CLASSES = ("First", "Support", "Third", "Local")
PARTIES = ("First", "Support", "Third")
CATEGORIES = ("Discovery", "Management", "Encrypted", "Unencrypted", "Unknown")
SERIES = (("LAN", "tx"), ("LAN", "rx"), ("WAN", "tx"), ("WAN", "rx"))
_COLOURS = {
    "First": "#1b9e77",
    "Support": "#7570b3",
    "Third": "#d95f02",
    "Local": "#999999",
    "Discovery": "#66a61e",
    "Management": "#e6ab02",
    "Encrypted": "#1f78b4",
    "Unencrypted": "#e31a1c",
    "Unknown": "#a6761d",
    "Non-application": "#bbbbbb",
}
_SERIES_COLOURS = {
    ("LAN", "tx"): "#1b9e77",
    ("LAN", "rx"): "#66c2a5",
    ("WAN", "tx"): "#d95f02",
    ("WAN", "rx"): "#fc8d62",
}


# --- reading the lake ---------------------------------------------------------------------------------------


@dataclass
class Lake:
    """The lake as the figures read it: a Spark session, the lake root and the Delta version read per table."""

    spark: SparkSession
    config: Config
    versions: dict[str, int] = field(default_factory=dict)

    @property
    def root(self) -> str:
        """The lake root (a path or Hadoop URI)."""
        return self.config.lake_root

    def latest_version(self, name: str) -> int | None:
        """The table's latest Delta version from its log folder (no Spark job), or None without a table."""
        entry = tables.table(name)
        jvm = self.spark.sparkContext._jvm
        log = jvm.org.apache.hadoop.fs.Path(f"{entry.path(self.root)}/_delta_log")
        fs = log.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration())
        if not fs.exists(log):
            return None
        commits = [
            int(s.getPath().getName()[:-5])
            for s in fs.listStatus(log)
            if s.getPath().getName().endswith(".json") and s.getPath().getName()[:-5].isdigit()
        ]
        return max(commits) if commits else None

    def has(self, name: str) -> bool:
        """True when the table is in the lake."""
        return name in self.versions or self.latest_version(name) is not None

    def read(self, name: str, dataset: str | None = None) -> DataFrame:
        """The table as a Spark DataFrame at the version first read, restricted to `dataset` when given."""
        if name not in self.versions:
            version = self.latest_version(name)
            if version is None:
                raise IotlakeError(
                    tables.table(name).path(self.root), f"no table {name} yet: run `iotlake build`"
                )
            self.versions[name] = version
        frame = (
            self.spark.read.format("delta")
            .option("versionAsOf", self.versions[name])
            .load(tables.table(name).path(self.root))
        )
        return frame.where(F.col("dataset") == dataset) if dataset is not None else frame

    def frame(
        self, name: str, dataset: str | None = None, columns: Sequence[str] = (), **equal: object
    ) -> pd.DataFrame:
        """Rows of a (small, gold) table as pandas: `dataset` and `column=value` filters, optional columns."""
        frame = self.read(name, dataset)
        for column, value in equal.items():
            frame = frame.where(F.col(column) == F.lit(value))
        if columns:
            frame = frame.select(*columns)
        return frame.toPandas()

    def datasets(self) -> list[str]:
        """The datasets with volume tables in the lake, sorted."""
        if not self.has("volume_stats"):
            return []
        rows = self.read("volume_stats").select("dataset").distinct().collect()
        return sorted(r["dataset"] for r in rows)


def declare_tables(config: Config) -> None:
    """Declare the model and signature tables (their names and layers come from the sql/ headers)."""
    from iotlake.models.runner import declare, discover
    from iotlake.signatures import mining

    declare(discover(config.project_dir / "sql"))
    mining.declare(config)


def open_lake(
    lake: str | Path | None = None, conf: str | Path | None = None, spark: SparkSession | None = None
) -> Lake:
    """A `Lake` for the lake root `lake` (default: the configuration's), starting Spark unless given a session."""
    from iotlake.spark import get_spark

    config = load_config(conf)
    if lake is not None:
        config.settings.lake_root = str(lake)
    declare_tables(config)
    session = spark or get_spark(config, app_name="iotlake figures")
    return Lake(session, config)


def device_label(site: str, device: str) -> str:
    """`device (site)`, as the paper's display names (`Echo Dot 5 (US1)`)."""
    return f"{device} ({site})"


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(
        0, "label", [device_label(s, d) for s, d in zip(frame["site"], frame["device"], strict=True)]
    )
    return frame


# --- 01 volumes ---------------------------------------------------------------------------------------------


def volume_summary(lake: Lake, dataset: str, profile: str = "passive") -> pd.DataFrame:
    """Per device over all its captures: packets, bytes, intervals, packets per interval, CoV, LAN and Tx shares."""
    stats = lake.frame(
        "volume_stats",
        dataset,
        [
            "site",
            "device",
            "intervals",
            "frames_total",
            "bytes_total",
            "frames_mean",
            "frames_cov",
            "bytes_cov",
        ],
        profile=profile,
        capture="*",
        scope="ALL",
    )
    shares = lake.frame(
        "traffic_distribution",
        dataset,
        ["site", "device", "lan_packet_pct", "wan_packet_pct", "tx_packet_pct", "tx_byte_pct"],
        profile=profile,
        capture="*",
    )
    frame = stats.merge(shares, on=["site", "device"], how="left")
    frame = frame.rename(
        columns={"frames_total": "packets", "bytes_total": "bytes", "frames_mean": "packets_mean"}
    )
    return _labelled(frame).sort_values(["site", "device"]).reset_index(drop=True)


def interval_volumes(
    lake: Lake, dataset: str, profile: str = "passive", unit: str = "frames"
) -> pd.DataFrame:
    """Per device, capture and interval: Tx and Rx of `unit` (frames or bytes) on the LAN and the WAN."""
    frame = lake.frame(
        "interval_volumes",
        dataset,
        ["site", "capture", "device", "scope", "interval_start", f"tx_{unit}", f"rx_{unit}"],
        profile=profile,
    )
    frame = frame[frame["scope"].isin(["LAN", "WAN"])]
    return (
        _labelled(frame).sort_values(["label", "capture", "scope", "interval_start"]).reset_index(drop=True)
    )


def plot_volumes(frame: pd.DataFrame, unit: str = "frames", columns: int = 3) -> Figure:
    """Small multiples, one per device: LAN and WAN, Tx and Rx `unit` per interval, captures side by side."""
    labels = sorted(frame["label"].unique())
    rows = max(1, math.ceil(len(labels) / columns))
    fig = Figure(figsize=(4.2 * columns, 2.4 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, label in zip(axes.flat, labels, strict=False):
        own = frame[frame["label"] == label]
        offset = 0
        for capture in own.groupby("capture")["interval_start"].min().sort_values().index:
            part = own[own["capture"] == capture]
            starts = sorted(part["interval_start"].unique())
            position = {start: offset + i for i, start in enumerate(starts)}
            if offset:
                ax.axvline(offset - 0.5, color="#bbbbbb", linewidth=0.8, linestyle=":")
            for scope, direction in SERIES:
                series = part[part["scope"] == scope]
                ax.plot(
                    [position[t] for t in series["interval_start"]],
                    series[f"{direction}_{unit}"],
                    color=_SERIES_COLOURS[(scope, direction)],
                    linestyle="-" if direction == "tx" else "--",
                    linewidth=1.2,
                    marker=".",
                    markersize=3,
                    label=f"{scope} {direction.capitalize()}",
                )
            offset += len(starts)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_ylabel(unit, fontsize=8)
        ax.set_xlabel("interval (captures in time order)", fontsize=7)
    for ax in list(axes.flat)[len(labels) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color=_SERIES_COLOURS[s], linestyle="-" if s[1] == "tx" else "--") for s in SERIES
    ]
    names = [f"{scope} {direction.capitalize()}" for scope, direction in SERIES]
    fig.legend(handles, names, loc="outside upper center", ncols=4, fontsize=8, frameon=False)
    return fig


# --- 02 protocols -------------------------------------------------------------------------------------------


def protocol_types(lake: Lake, dataset: str, profile: str = "passive", scope: str = "ALL") -> pd.DataFrame:
    """Per device over all its captures: application packets per protocol category and their shares."""
    frame = lake.frame(
        "protocol_type_distribution",
        dataset,
        ["site", "device", "category", "packets", "bytes", "packet_share", "byte_share", "protocols"],
        profile=profile,
        capture="*",
        scope=scope,
    )
    frame = frame[frame["category"] != "Non-application"]
    frame["protocols"] = [", ".join(p) if p is not None else "" for p in frame["protocols"]]
    return _labelled(frame).sort_values(["label", "category"]).reset_index(drop=True)


def plot_protocol_types(frame: pd.DataFrame, share: str = "packet_share") -> Figure:
    """Stacked horizontal bars: each device's application traffic split by protocol category."""
    wide = frame.pivot_table(index="label", columns="category", values=share, aggfunc="sum", fill_value=0.0)
    order = [c for c in CATEGORIES if c in wide.columns] + [c for c in wide.columns if c not in CATEGORIES]
    return _stacked(
        wide[order], f"share of application {share.split('_')[0]}s", "Protocol categories per device"
    )


def _stacked(wide: pd.DataFrame, xlabel: str, title: str) -> Figure:
    wide = wide.sort_index(ascending=False)
    fig = Figure(figsize=(7.5, 0.42 * len(wide) + 1.4), layout="constrained")
    ax = fig.subplots()
    left = np.zeros(len(wide))
    for column in wide.columns:
        values = wide[column].to_numpy(dtype=float)
        ax.barh(wide.index, values, left=left, color=_COLOURS.get(column), label=column, height=0.7)
        left += values
    ax.set_xlim(0, max(1.0, float(left.max()) if len(left) else 1.0))
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    fig.legend(loc="outside lower center", ncols=len(wide.columns), fontsize=8, frameon=False)
    return fig


def unique_protocols(lake: Lake, dataset: str, profile: str = "passive") -> pd.DataFrame:
    """Per device over all its captures: the distinct labels at each layer (scope ALL)."""
    frame = lake.frame(
        "unique_protocols",
        dataset,
        ["site", "device", "network", "transport", "session", "application"],
        profile=profile,
        capture="*",
        scope="ALL",
    )
    for column in ("network", "transport", "session", "application"):
        frame[column] = [", ".join(v) if v is not None else "" for v in frame[column]]
    return _labelled(frame).sort_values("label").reset_index(drop=True)


# --- 03 endpoints ---------------------------------------------------------------------------------------------


def endpoint_classes(lake: Lake, dataset: str, profile: str = "passive") -> pd.DataFrame:
    """Per device over all its captures: endpoints, packets and the packet share of each party class."""
    columns = ["site", "device", "endpoints", "third_party_endpoints", "packets_overall", "bytes_overall"]
    columns += [f"packets_pct_{c.lower()}" for c in CLASSES]
    frame = lake.frame("endpoint_class_distribution", dataset, columns, profile=profile, capture="*")
    return _labelled(frame).sort_values("label").reset_index(drop=True)


def plot_endpoint_classes(frame: pd.DataFrame) -> Figure:
    """Stacked horizontal bars: each device's packets split by the party class of the endpoint."""
    wide = frame.set_index("label")[[f"packets_pct_{c.lower()}" for c in CLASSES]]
    wide.columns = list(CLASSES)
    return _stacked(wide, "share of packets", "Endpoint party classes per device")


def sankey_device_party(classes: pd.DataFrame) -> pd.DataFrame:
    """Device → First/Support/Third Party from `endpoint_classes`: shares of non-local packets (paper §7.4)."""
    rows = []
    for _, row in classes.iterrows():
        remote = 1.0 - float(row["packets_pct_local"])
        for party in PARTIES:
            share = float(row[f"packets_pct_{party.lower()}"])
            if remote > 0 and share > 0:
                rows.append((row["label"], f"{party} Party", share / remote))
    return pd.DataFrame(rows, columns=["source", "target", "weight"])


def sankey_protocol_party(
    lake: Lake, dataset: str, profile: str = "passive", semantics: str = "own"
) -> pd.DataFrame:
    """Protocol category → party class: the pooled share of the category's non-local packets per party.

    `own` counts every packet once; `pms` is the earlier study's semantics (an endpoint's traffic once per
    protocol it used).
    """
    columns = ["category", "packets_overall"] + [f"packets_pct_{c.lower()}" for c in PARTIES]
    frame = lake.frame(
        "endpoint_protocol_distribution", dataset, columns, profile=profile, capture="*", semantics=semantics
    )
    rows = []
    for category, part in frame.groupby("category"):
        packets = {
            p: float((part["packets_overall"] * part[f"packets_pct_{p.lower()}"]).sum()) for p in PARTIES
        }
        total = sum(packets.values())
        rows += [(category, f"{p} Party", v / total) for p, v in packets.items() if total > 0 and v > 0]
    return pd.DataFrame(rows, columns=["source", "target", "weight"])


def _peer(target: str, site: str) -> str:
    if target.startswith("Local (") and target.endswith(")"):
        return device_label(site, target[len("Local (") : -1])
    return target.removeprefix("Local ").strip() or target


def sankey_local_peers(lake: Lake, dataset: str, profile: str = "passive") -> pd.DataFrame:
    """Device → local peer (another device, Multicast, Broadcast): share of the device's local packets."""
    frame = lake.frame(
        "local_endpoint_distribution",
        dataset,
        ["site", "device", "target", "packets_to_target_pct"],
        profile=profile,
        capture="*",
    )
    frame = frame[frame["packets_to_target_pct"] > 0]
    rows = [
        (device_label(r.site, r.device), _peer(r.target, r.site), float(r.packets_to_target_pct))
        for r in frame.itertuples()
    ]
    return pd.DataFrame(rows, columns=["source", "target", "weight"]).sort_values(["source", "target"])


def plot_sankey(frame: pd.DataFrame, title: str = "", width: float = 6.0) -> Figure:
    """A two-column Sankey diagram (as pySankey draws it) of `source` → `target` flows of `weight`."""
    frame = frame[frame["weight"] > 0]
    left = sorted(frame["source"].unique())
    right = list(frame.groupby("target")["weight"].sum().sort_values(ascending=False).index)
    height = max(len(left), len(right))
    fig = Figure(figsize=(width, max(2.0, 0.34 * height + 1.0)), layout="constrained")
    ax = fig.subplots()
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    if frame.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=9, color="#666666")
        return fig
    total = float(frame["weight"].sum())
    gap = 0.02 * total

    span = total + gap * (height - 1)

    def stack(labels: list[str], column: str) -> dict[str, tuple[float, float]]:
        sums = frame.groupby(column)["weight"].sum()
        top = (span - (total + gap * (len(labels) - 1))) / 2
        positions = {}
        for label in labels:
            positions[label] = (top, top + float(sums[label]))
            top += float(sums[label]) + gap
        return positions

    lpos, rpos = stack(left, "source"), stack(right, "target")
    palette = _palette(len(left))
    colours = {label: _COLOURS.get(label, palette[i]) for i, label in enumerate(left)}
    bar, x0, x1 = 0.02, 0.0, 1.0
    lfill = {k: v[0] for k, v in lpos.items()}
    rfill = {k: v[0] for k, v in rpos.items()}
    xs = np.linspace(x0 + bar, x1 - bar, 50)
    curve = 1 / (1 + np.exp(-((xs - xs.mean()) / (np.ptp(xs) / 10))))
    for source in left:
        for target in right:
            weight = float(frame[(frame["source"] == source) & (frame["target"] == target)]["weight"].sum())
            if weight <= 0:
                continue
            ya, yb = lfill[source], rfill[target]
            bottom = ya + (yb - ya) * curve
            ax.fill_between(xs, -bottom, -(bottom + weight), color=colours[source], alpha=0.55, linewidth=0)
            lfill[source] += weight
            rfill[target] += weight
    for label, (y0, y1) in lpos.items():
        ax.fill_between([x0, x0 + bar], -y0, -y1, color=colours[label])
        ax.text(x0 - 0.01, -(y0 + y1) / 2, label, ha="right", va="center", fontsize=8)
    for label, (y0, y1) in rpos.items():
        ax.fill_between([x1 - bar, x1], -y0, -y1, color=_COLOURS.get(label.split(" ")[0], "#555555"))
        ax.text(x1 + 0.01, -(y0 + y1) / 2, label, ha="left", va="center", fontsize=8)
    ax.set_xlim(-0.45, 1.45)
    return fig


def _palette(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# --- 04 flow patterns and signatures -------------------------------------------------------------------------


def flow_patterns(lake: Lake, dataset: str, periodic_only: bool = True) -> pd.DataFrame:
    """Per device, capture and remote: recurring flows with their period and regularity (periodic ones by default)."""
    columns = ["site", "capture", "device", "remote", "transport", "application", "server_port"]
    columns += ["flows", "period_s", "regularity", "period_share", "periodic"]
    frame = lake.frame("flow_patterns", dataset, columns)
    if periodic_only:
        frame = frame[frame["periodic"]]
    return _labelled(frame).sort_values(["label", "period_s"]).reset_index(drop=True)


def plot_flow_patterns(frame: pd.DataFrame) -> Figure:
    """Periodic patterns per device: period (log scale) against device, marker size by number of flows."""
    labels = sorted(frame["label"].unique(), reverse=True)
    fig = Figure(figsize=(7.5, 0.42 * max(len(labels), 1) + 1.4), layout="constrained")
    ax = fig.subplots()
    if frame.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "no periodic flow patterns", ha="center", va="center", fontsize=9)
        return fig
    y = {label: i for i, label in enumerate(labels)}
    apps = sorted(frame["application"].fillna("?").unique())
    palette = _palette(len(apps))
    for i, app in enumerate(apps):
        part = frame[frame["application"].fillna("?") == app]
        ax.scatter(
            part["period_s"],
            [y[label] for label in part["label"]],
            s=12 + 4 * np.sqrt(part["flows"].astype(float)),
            color=palette[i],
            alpha=0.75,
            label=app,
        )
    ax.set_xscale("log")
    low, high = float(frame["period_s"].min()), float(frame["period_s"].max())
    ticks = [t for t in _PERIOD_TICKS if low / 2 <= t <= high * 2] or [low]
    ax.set_xticks(ticks, [_duration(t) for t in ticks], fontsize=8)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("period (s)", fontsize=9)
    ax.set_title("Periodic flow patterns (heartbeats, telemetry)", fontsize=10)
    fig.legend(loc="outside right upper", fontsize=7, frameon=False, title="application", title_fontsize=8)
    return fig


_PERIOD_TICKS = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def signatures(lake: Lake, dataset: str) -> pd.DataFrame:
    """The dataset's learned event signatures (one row per element); empty when none were learned."""
    columns = ["device", "event", "element_no", "elements", "remote", "transport", "application"]
    columns += ["fixed_port", "support", "median_offset_s"]
    if not lake.has("event_signatures"):
        return pd.DataFrame(columns=columns)
    frame = lake.read("event_signatures", dataset)
    return (
        frame.select(*[c for c in columns if c in frame.columns])
        .toPandas()
        .sort_values(["device", "event", "element_no"])
        .reset_index(drop=True)
    )


def signature_evaluation(lake: Lake, dataset: str) -> pd.DataFrame:
    """Per device and event: how well the signature finds the event in held-out captures; empty when none."""
    columns = ["device", "event", "elements", "test_captures", "true_positives", "false_positives"]
    columns += ["precision", "recall"]
    if not lake.has("signature_evaluation"):
        return pd.DataFrame(columns=columns)
    frame = lake.read("signature_evaluation", dataset)
    return frame.select(*[c for c in columns if c in frame.columns]).toPandas()


def labelled_datasets(lake: Lake) -> list[str]:
    """Datasets whose captures carry device and event labels (what signatures are learned from)."""
    if not lake.has("captures") or "labels" not in lake.read("captures").columns:
        return []
    frame = lake.read("captures").where(F.col("labels").getItem("event").isNotNull())
    return sorted(r["dataset"] for r in frame.select("dataset").distinct().collect())


# --- 05 comparison ----------------------------------------------------------------------------------------------


def compare_sites(
    lake: Lake, profile: str = "passive", datasets: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per dataset and site: devices, packets, bytes, LAN and Tx shares, and application packets per category."""
    traffic = lake.read("traffic_distribution").where(
        (F.col("profile") == profile) & (F.col("capture") == "*")
    )
    if datasets is not None:
        traffic = traffic.where(F.col("dataset").isin(list(datasets)))
    volumes = (
        traffic.groupBy("dataset", "site")
        .agg(
            F.countDistinct("device").alias("devices"),
            F.sum("packet_total").alias("packets"),
            F.sum("byte_total").alias("bytes"),
            (F.sum("lan_packet_total") / F.sum("packet_total")).alias("lan_packet_share"),
            (F.sum("tx_packet_total") / F.sum("packet_total")).alias("tx_packet_share"),
        )
        .toPandas()
    )
    protocols = lake.read("protocol_type_distribution").where(
        (F.col("profile") == profile)
        & (F.col("capture") == "*")
        & (F.col("scope") == "ALL")
        & (F.col("category") != "Non-application")
    )
    counts = (
        protocols.groupBy("dataset", "site", "category").agg(F.sum("packets").alias("packets")).toPandas()
    )
    wide = counts.pivot_table(
        index=["dataset", "site"], columns="category", values="packets", aggfunc="sum", fill_value=0
    )
    wide = wide.div(wide.sum(axis=1).replace(0, np.nan), axis=0)
    wide.columns = [f"{c.lower()}_share" for c in wide.columns]
    wide = wide.reset_index()
    frame = volumes.merge(wide, on=["dataset", "site"], how="left")
    return frame.sort_values(["dataset", "site"]).reset_index(drop=True)


def compare_devices(
    lake: Lake, profile: str = "passive", datasets: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per dataset, site and device over all captures: packets, packets per interval, CoV, LAN and Tx shares."""
    stats = lake.read("volume_stats").where(
        (F.col("profile") == profile) & (F.col("capture") == "*") & (F.col("scope") == "ALL")
    )
    shares = lake.read("traffic_distribution").where(
        (F.col("profile") == profile) & (F.col("capture") == "*")
    )
    if datasets is not None:
        stats = stats.where(F.col("dataset").isin(list(datasets)))
    keys = ["dataset", "site", "device"]
    frame = (
        stats.select(*keys, "frames_total", "frames_mean", "frames_cov")
        .join(shares.select(*keys, "lan_packet_pct", "tx_packet_pct"), keys, "left")
        .toPandas()
        .rename(
            columns={"frames_total": "packets", "frames_mean": "packets_mean", "frames_cov": "packets_cov"}
        )
    )
    return _labelled(frame).sort_values(keys).reset_index(drop=True)


_AXES = {
    "lan_packet_pct": "LAN share of packets",
    "tx_packet_pct": "Tx share of packets",
    "packets_cov": "CoV of packets per interval",
    "packets_mean": "packets per interval",
    "packets": "packets",
}


def plot_compare(frame: pd.DataFrame, x: str = "lan_packet_pct", y: str = "packets_cov") -> Figure:
    """Devices of every dataset and site in one scatter: `x` against `y`, one colour per dataset/site."""
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.subplots()
    groups = list(frame.groupby(["dataset", "site"]))
    palette = _palette(len(groups))
    for i, ((dataset, site), part) in enumerate(groups):
        ax.scatter(part[x], part[y], s=40, color=palette[i], alpha=0.8, label=f"{dataset} / {site}")
        for _, row in part.iterrows():
            ax.annotate(
                row["device"], (row[x], row[y]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    ax.set_xlabel(_AXES.get(x, x), fontsize=9)
    ax.set_ylabel(_AXES.get(y, y), fontsize=9)
    ax.set_title("Devices across datasets and sites", fontsize=10)
    if groups:
        ax.legend(fontsize=8, frameon=False)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write a figure as SVG (or PNG by suffix) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
