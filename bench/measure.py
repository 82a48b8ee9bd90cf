"""Run a command and measure it: wall time, and the peak RSS of its process tree by kind (tshark, JVM, ...).

A thread polls /proc every `interval` seconds (standard library only, Linux): it walks the tree below the
command's process and reads each process's `VmHWM` (the kernel's own peak RSS of that process), so a short
spike between two polls is still seen as long as the process lives through one poll. Per kind it keeps the
largest single process and the largest sum of concurrent processes (several tshark chunks run at once).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Usage:
    """What one command cost: wall seconds, exit code, and peak RSS in MiB per process kind."""

    seconds: float
    returncode: int
    cpu_s: float = 0.0  # user + system CPU of the command and its reaped descendants (wait4 rusage)
    peak_mb: dict[str, float] = field(default_factory=dict)  # largest single process per kind
    peak_sum_mb: dict[str, float] = field(default_factory=dict)  # largest concurrent sum per kind


def kind_of(pid: int) -> str:
    """A process's kind from its command line: tshark, editcap, gzip, jvm, pyspark worker or python."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    exe = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else ""
    if exe in ("tshark", "editcap", "mergecap", "gzip"):
        return exe
    if exe == "java":
        return "jvm"
    if exe.startswith("python"):
        joined = b" ".join(argv)
        return "pyspark_worker" if b"pyspark.daemon" in joined or b"pyspark.worker" in joined else "python"
    return exe or "other"


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces: the ppid is the 2nd field after it
        ppid = int(stat[stat.rindex(")") + 2 :].split(" ", 2)[1])
        children[ppid].append(int(entry.name))
    return children


def _tree(root: int) -> list[int]:
    children = _children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """The user + system CPU seconds a live process has used so far (its own, not its children's)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime and stime: fields 14 and 15 of stat


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeSampler(threading.Thread):
    """Polls the process tree below `root` until stopped, keeping peak RSS per kind."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.stopped = threading.Event()
        self.peak_kb: dict[str, int] = defaultdict(int)
        self.peak_sum_kb: dict[str, int] = defaultdict(int)
        self.cpu_s: dict[
            int, float
        ] = {}  # last CPU seen per process: covers processes nobody reaps (the JVM)

    def sample(self) -> None:
        """One poll of the tree."""
        sums: dict[str, int] = defaultdict(int)
        for pid in _tree(self.root):
            kind = kind_of(pid)  # not cached: a forked child changes kind when it execs
            hwm = _hwm_kb(pid)
            self.cpu_s[pid] = max(self.cpu_s.get(pid, 0.0), _cpu_s(pid))
            if hwm:
                sums[kind] += hwm
                self.peak_kb[kind] = max(self.peak_kb[kind], hwm)
        for kind, total in sums.items():
            self.peak_sum_kb[kind] = max(self.peak_sum_kb[kind], total)

    def run(self) -> None:
        while not self.stopped.is_set():
            self.sample()
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self.stopped.set()
        self.join()


def run_measured(
    command: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
    log: Path | None = None,
) -> Usage:
    """Run `command` to completion, timing it and sampling its process tree's memory.

    stdout goes to /dev/null unless `log` is given (then stdout and stderr are appended there).
    """
    started = time.monotonic()
    handle = log.open("ab") if log else None
    try:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle or stdout,
            stderr=handle or subprocess.DEVNULL,
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
    finally:
        if handle:
            handle.close()
    seconds = time.monotonic() - started
    return Usage(
        seconds=seconds,
        returncode=returncode,
        # wait4 counts the command and the children it reaped; the samples also see children it never reaps
        # (Spark's JVM) but miss the last 0.2 s of each process: both are lower bounds, keep the larger.
        cpu_s=round(max(rusage.ru_utime + rusage.ru_stime, sum(sampler.cpu_s.values())), 2),
        peak_mb={k: round(v / 1024, 1) for k, v in sampler.peak_kb.items()},
        peak_sum_mb={k: round(v / 1024, 1) for k, v in sampler.peak_sum_kb.items()},
    )


def merge_peaks(usages: list[Usage]) -> tuple[dict[str, float], dict[str, float]]:
    """The peaks over several commands run one after the other (largest of each)."""
    peak: dict[str, float] = defaultdict(float)
    peak_sum: dict[str, float] = defaultdict(float)
    for usage in usages:
        for kind, mb in usage.peak_mb.items():
            peak[kind] = max(peak[kind], mb)
        for kind, mb in usage.peak_sum_mb.items():
            peak_sum[kind] = max(peak_sum[kind], mb)
    return dict(peak), dict(peak_sum)
