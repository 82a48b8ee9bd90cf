"""The three measured pipelines: the tshark limit, iotlake end to end, and the earlier multi-pass baseline.

- **limit**: one bare `tshark -n -T fields` pass with iotlake's field catalog and export options, to /dev/null.
- **iotlake**: `iotlake ingest` then `iotlake build` in subprocesses, on a fresh lake (capture → gold tables).
- **baseline**: the earlier bash tool (`../shared/reference/passive-mode-study.md` §3) with tshark subprocesses:
  copy the capture (processPcap's untrimmed step), one split pass per device (`-Y eth.addr == MAC -w`), then for
  the no-DNS and keep-DNS global filters one filter pass, one split pass per device of the filtered file and a
  LAN and a WAN pass per per-device file; finally three `-z io,stat` passes per device over the no-DNS
  per-device files (overall, LAN, WAN; router excluded), parsed into the tool's `-stats.csv` files.
  2 + 10·N tshark runs for N devices, 2 + 3·N of them over the whole capture. Run one after the other, as the
  bash scripts did.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.inputs import BenchInput
from bench.measure import Usage, merge_peaks, run_measured

REPO = Path(__file__).resolve().parents[1]
# The iotlake command of the tree under test (PYTHONPATH picks the tree's lib/).
IOTLAKE = [sys.executable, "-m", "iotlake.cli"]


@dataclass(frozen=True)
class Tree:
    """The iotlake source under test: the working tree, or a commit exported with `git archive`."""

    root: Path
    ref: str = "working tree"

    @property
    def env(self) -> dict[str, str]:
        """The environment that makes Python import this tree's `iotlake`."""
        path = os.pathsep.join(filter(None, [str(self.root / "lib"), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": path}

    @classmethod
    def at(cls, ref: str | None, work: Path) -> Tree:
        """The working tree (`ref` None) or a snapshot of commit `ref` under `work` (lib/, conf/, sql/ only).

        A snapshot keeps measurements stable while others edit the working tree; `git archive` reads the
        repository without touching its index or working tree.
        """
        if ref is None:
            return cls(REPO)
        sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}").strip()
        root = work / f"tree-{sha[:12]}"
        if not (root / ".complete").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", "--format=tar", sha, "lib", "conf", "sql"],
                capture_output=True,
                check=True,
            )
            subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
            (root / ".complete").write_text(sha + "\n")
        return cls(root, f"{ref} ({sha[:12]})")

    def export_args(self) -> list[str]:
        """The tshark options and `-e` fields of this tree's one export pass."""
        code = (
            "import json; from iotlake.capture.fields import tshark_field_args as f; "
            "from iotlake.capture.tshark import EXPORT_OPTIONS as o; print(json.dumps([*o, *f()]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=self.env, capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout)


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout


INTERVAL_S = 3600
RFC1918 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
# §2.3 (HEAD): the destination side also accepts IPv6 multicast and link-local.
IPV6_LOCAL_DST = ("ff00::/8", "fe80::/10")


@dataclass
class Result:
    """One run of one pipeline: wall seconds, per-step seconds, peak RSS per process kind (MiB)."""

    seconds: float
    cpu_s: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    peak_sum_mb: dict[str, float] = field(default_factory=dict)
    tshark_runs: int = 0
    totals: dict[str, int] = field(default_factory=dict)  # baseline: passive frames per device (check)


def _check(usage: Usage, what: str, log: Path | None = None) -> Usage:
    if usage.returncode != 0:
        where = f" (see {log})" if log else ""
        raise RuntimeError(f"{what} failed with exit {usage.returncode}{where}")
    return usage


def run_limit(bench: BenchInput, tree: Tree) -> Result:
    """One bare tshark pass with the tree's field catalog and export options, written to /dev/null."""
    command = ["tshark", "-n", "-r", str(bench.pcap), *tree.export_args()]
    usage = _check(run_measured(command), "limit tshark pass")
    return Result(usage.seconds, usage.cpu_s, {}, usage.peak_mb, usage.peak_sum_mb, tshark_runs=1)


def conf_variant(tree: Tree, work: Path, settings: dict[str, str], spark: dict[str, str]) -> Path | None:
    """A copy of conf/ with iotlake.yaml keys and spark-defaults.conf lines overridden, or None for none.

    It lives in `work/variant/conf` next to a link to the repository's sql/, since iotlake finds its models
    in the conf folder's parent. For trying settings without touching the repository's conf/.
    """
    if not settings and not spark:
        return None
    root = work / "variant"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(tree.root / "conf", root / "conf")
    (root / "sql").symlink_to(tree.root / "sql")
    yaml_file = root / "conf" / "iotlake.yaml"
    data = yaml.safe_load(yaml_file.read_text(encoding="utf-8"))
    data.update({k: yaml.safe_load(v) for k, v in settings.items()})
    yaml_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with (root / "conf" / "spark-defaults.conf").open("a", encoding="utf-8") as handle:
        handle.writelines(f"{k} {v}\n" for k, v in spark.items())
    return root / "conf"


def run_iotlake(
    bench: BenchInput, tree: Tree, work: Path, logs: Path, tag: str, conf: Path | None = None
) -> Result:
    """`iotlake ingest --build` of `tree` on a fresh lake under `work`: one subprocess, one Spark session.

    `build` is the models' own time as the command reports it (--json), `ingest` the rest: Spark start,
    extraction, bronze. A tree without `ingest --build` runs `ingest` and `build` as two subprocesses.
    """
    lake = work / f"lake-{bench.name}{'-variant' if conf else ''}"
    shutil.rmtree(lake, ignore_errors=True)
    log = logs / f"{tag}-iotlake{'-variant' if conf else ''}.log"
    log.unlink(missing_ok=True)
    lake_args = ["--lake", str(lake), "--conf", str(conf or tree.root / "conf")]
    ingest = [
        *IOTLAKE, "ingest", "bench", str(bench.pcap),
        "--site", "bench", "--macs", str(bench.macs), "--site-config", str(bench.site),
        *lake_args,
    ]  # fmt: skip
    if '"--build"' in (tree.root / "lib" / "iotlake" / "cli.py").read_text(encoding="utf-8"):
        usage = _check(
            run_measured([*ingest, "--build", "--json"], cwd=REPO, env=tree.env, log=log), "iotlake", log
        )
        summary = _json_summary(log)
        models = sum(run["seconds"] for run in summary["runs"])
        return Result(
            usage.seconds,
            usage.cpu_s,
            {"ingest": usage.seconds - models, "build": models},
            *merge_peaks([usage]),
        )
    build = [*IOTLAKE, "build", *lake_args]
    usages = []
    for what, command in (("ingest", [*ingest, "--quiet"]), ("build", build)):
        usages.append(_check(run_measured(command, cwd=REPO, env=tree.env, log=log), f"iotlake {what}", log))
    return Result(
        sum(u.seconds for u in usages),
        sum(u.cpu_s for u in usages),
        {"ingest": usages[0].seconds, "build": usages[1].seconds},
        *merge_peaks(usages),
    )


def _json_summary(log: Path) -> dict[str, Any]:
    """The --json summary object a command wrote (its last line starting with `{"command"`) in `log`."""
    lines = [
        line
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.startswith('{"command"')
    ]
    if not lines:
        raise RuntimeError(f"no JSON summary in {log}")
    return json.loads(lines[-1])


def iotlake_totals(bench: BenchInput, tree: Tree, work: Path, logs: Path) -> dict[str, int]:
    """Per device, passive profile, scope ALL: frames over all intervals, read back from the last iotlake lake."""
    lake = work / f"lake-{bench.name}"
    query = (
        "SELECT device, frames_total FROM iotlake.volume_stats "
        "WHERE profile = 'passive' AND scope = 'ALL' AND capture = '*' ORDER BY device"
    )
    out = logs / f"{bench.name}-check.csv"
    command = [
        *IOTLAKE,
        "sql",
        query,
        "--format",
        "csv",
        "--lake",
        str(lake),
        "--conf",
        str(tree.root / "conf"),
    ]
    with out.open("wb") as handle:
        _check(run_measured(command, cwd=REPO, env=tree.env, stdout=handle), "iotlake sql (check)")
    with out.open(encoding="utf-8") as handle:
        rows = [r for r in csv.reader(handle) if len(r) == 2 and r[0] != "device"]
    return {device: int(frames) for device, frames in rows}


# ---------------------------------------------------------------------------------------------------------
# The baseline: the earlier tool's passes, from the reference's description
# ---------------------------------------------------------------------------------------------------------


def _in_any(field_v4: str, field_v6: str, prefixes: list[str]) -> str:
    terms = []
    for prefix in prefixes:
        net = ipaddress.ip_network(prefix, strict=False)
        terms.append(f"{field_v4 if net.version == 4 else field_v6} == {prefix}")
    return "(" + " || ".join(terms) + ")"


@dataclass(frozen=True)
class Filters:
    """The earlier tool's display filters (§2.2–2.4) for one site."""

    global_no_dns: str
    global_keep_dns: str
    lan: str
    wan: str
    router: str

    @classmethod
    def for_site(cls, local_prefixes: tuple[str, ...], gateway_ips: tuple[str, ...]) -> Filters:
        """Filters with the site's IPv6 prefixes in LocalSrc/LocalDst and its gateways as the router list."""
        site6 = [p for p in local_prefixes if ipaddress.ip_network(p, strict=False).version == 6]
        local_src = _in_any("ip.src", "ipv6.src", [*RFC1918, *site6])
        local_dst = _in_any("ip.dst", "ipv6.dst", [*RFC1918, *IPV6_LOCAL_DST, *site6])
        both_local = f"({local_src} && {local_dst})"
        expert = "tcp.analysis.retransmission || tcp.analysis.ack_lost_segment || tcp.analysis.duplicate_ack"
        dropped = "dhcp || dhcpv6 || icmp || icmpv6 || igmp"
        keep_dns = f"!({expert}) && (ip || ipv6) && !({dropped})"
        routers = [
            f"{'ip' if ipaddress.ip_address(ip).version == 4 else 'ipv6'}.addr == {ip}" for ip in gateway_ips
        ]
        return cls(
            global_no_dns=f"!({expert}) && (ip || ipv6) && !({dropped} || dns)",
            global_keep_dns=keep_dns,
            lan=f"eth.dst.ig == 1 || {both_local}",
            wan=f"eth.dst.ig == 0 && !{both_local}",
            router="!(" + " || ".join(routers) + ")",
        )


class _Runner:
    """Runs the baseline's tshark passes one after the other, keeping their usage."""

    def __init__(self) -> None:
        self.usages: list[Usage] = []

    def tshark(self, args: list[str], stdout: Path | None = None) -> None:
        command = ["tshark", "-n", *args]
        if stdout is None:
            usage = run_measured(command)
        else:
            with stdout.open("wb") as handle:
                usage = run_measured(command, stdout=handle)
        self.usages.append(_check(usage, "baseline tshark " + " ".join(args[:4])))

    def filter(self, source: Path, display_filter: str, target: Path) -> None:
        """One `tshark -r in -Y filter -w out` pass (the helpers' way)."""
        self.tshark(["-r", str(source), "-Y", display_filter, "-w", str(target)])


def _split(run: _Runner, source: Path, devices: dict[str, str], out_dir: Path) -> dict[str, Path]:
    """splitPcapByMAC.bash: one `eth.addr == MAC` pass per device."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, mac in devices.items():
        target = out_dir / f"{source.stem}-split-{name}.pcap"
        run.filter(source, f"eth.addr == {mac.upper()}", target)
        files[name] = target
    return files


def _global_branch(
    run: _Runner, trimmed: Path, folder: Path, global_filter: str, suffix: str, bench: BenchInput, f: Filters
) -> dict[str, Path]:
    """processPcap step 5/6: global filter, split per device, LAN and WAN pass per per-device file."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / trimmed.name
    shutil.copyfile(trimmed, copy)
    filtered = folder / f"{trimmed.stem}{suffix}.pcap"
    run.filter(copy, global_filter, filtered)
    copy.unlink()
    per_device = _split(run, filtered, bench.devices, folder / "per-device")
    for scope, display_filter in (("LAN", f.lan), ("WAN", f.wan)):
        (folder / "per-device" / scope).mkdir(parents=True, exist_ok=True)
        for path in per_device.values():
            run.filter(path, display_filter, folder / "per-device" / scope / f"{path.stem}-{scope}.pcap")
    filtered.unlink()  # only the per-device files are read later; keeps the disk footprint of 1 GB runs down
    return per_device


def parse_io_stat(text: str) -> list[list[int]]:
    """Rows of `tshark -z io,stat` output: interval start (seconds from the first frame) and the numbers."""
    rows = []
    for line in text.splitlines():
        if "<>" not in line:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        start = int(float(cells[0].split("<>")[0]))
        rows.append([start, *(int(c) for c in cells[1:] if c)])
    return rows


def _stats(
    run: _Runner, per_device: dict[str, Path], bench: BenchInput, f: Filters, out: Path
) -> dict[str, int]:
    """generateStatsForIntervals.bash: three io,stat passes per device; returns passive frames per device."""
    out.mkdir(parents=True, exist_ok=True)
    totals = {}
    for name, path in per_device.items():
        mac = bench.devices[name].upper()
        for scope, scope_filter in (("", None), ("-LAN", f.lan), ("-WAN", f.wan)):
            base = f"({scope_filter}) && {f.router}" if scope_filter else f.router
            columns = [base, f"eth.src == {mac} && {base}", f"eth.dst == {mac} && {base}"]
            raw = out / f"{path.stem}{scope}.txt"
            run.tshark(
                ["-r", str(path), "-q", "-z", f"io,stat,{INTERVAL_S}," + ",".join(columns)], stdout=raw
            )
            rows = parse_io_stat(raw.read_text(errors="replace"))
            raw.unlink()
            with (out / f"{path.stem}{scope}-stats.csv").open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(
                    ["Device", "StartTime", "Frames", "Bytes", "TxFrames", "TxBytes", "RxFrames", "RxBytes"]
                )
                writer.writerows([[f"{name} (bench)", *row] for row in rows])
            if not scope:
                totals[name] = sum(row[1] for row in rows)
    return totals


def run_baseline(bench: BenchInput, work: Path) -> Result:
    """The earlier multi-pass pipeline on `bench`, in a scratch folder under `work` removed afterwards."""
    out = work / f"baseline-{bench.name}"
    shutil.rmtree(out, ignore_errors=True)
    f = Filters.for_site(bench.local_prefixes, bench.gateway_ips)
    run = _Runner()
    steps: dict[str, float] = {}
    try:
        started = time.monotonic()
        unfiltered = out / "unfiltered"
        unfiltered.mkdir(parents=True)
        trimmed = unfiltered / f"{bench.pcap.stem}-trimmed.pcap"
        shutil.copyfile(bench.pcap, trimmed)  # processPcap without trim epochs copies the file
        _split(run, trimmed, bench.devices, unfiltered / "per-device")
        steps["split"] = time.monotonic() - started
        mark = time.monotonic()
        no_dns = _global_branch(
            run, trimmed, out / "filtered" / "no-DNS", f.global_no_dns, "-filtered", bench, f
        )
        _global_branch(
            run, trimmed, out / "filtered" / "with-DNS", f.global_keep_dns, "-filtered-with-DNS", bench, f
        )
        steps["filters"] = time.monotonic() - mark
        mark = time.monotonic()
        totals = _stats(run, no_dns, bench, f, out / "output_stats")
        steps["io_stat"] = time.monotonic() - mark
        seconds = time.monotonic() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)
    peak, peak_sum = merge_peaks(run.usages)
    cpu = sum(u.cpu_s for u in run.usages)
    return Result(seconds, cpu, steps, peak, peak_sum, tshark_runs=len(run.usages), totals=totals)
