"""What the bench/ scripts share: their common options, and the load and CPU steal every table is read against."""

from __future__ import annotations

import argparse
import os
import resource
import time
from dataclasses import dataclass


def counts(text: str) -> list[int]:
    """A comma-separated list of positive counts ("1,5,10"); "" is none. For argparse's type=."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"every count must be at least 1, got {text!r}")
    return values


def bench_parser(description: str, utterances: int, sessions: str, utterances_help: str) -> argparse.ArgumentParser:
    """The options of the browser benchmarks: --utterances N and --sessions 1,5,10 (a list, '' to skip)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--utterances", type=int, default=utterances, help=utterances_help)
    parser.add_argument("--sessions", type=counts, default=counts(sessions),
                        help=f"comma-separated session counts (default {sessions}; '' to skip)")
    return parser


def load_average_line() -> str:
    """The machine's load average, for the head of a table: timings mean little without it."""
    one, five, fifteen = os.getloadavg()
    return f"load average at start: {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


@dataclass(frozen=True)
class CpuClock:
    """A reading of this process's CPU time and the machine's (/proc/stat), to say over a window how many
    cores the process used and how much of the machine the hypervisor took (steal): wall times mean little
    when the host takes a third of the CPU, CPU times still do."""

    wall_s: float
    process_s: float
    machine_s: float  # every CPU's time, busy or idle, stolen included
    steal_s: float

    @classmethod
    def now(cls) -> CpuClock:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        machine_s, steal_s = _machine_times()
        return cls(time.monotonic(), usage.ru_utime + usage.ru_stime, machine_s, steal_s)

    def cpu_s_since(self, earlier: CpuClock) -> float:
        """This process's CPU time over the window, in seconds (all its threads)."""
        return self.process_s - earlier.process_s

    def cores_since(self, earlier: CpuClock) -> float:
        """This process's CPU time over the window, in cores (1.0: one core busy all the time)."""
        return self.cpu_s_since(earlier) / max(self.wall_s - earlier.wall_s, 1e-9)

    def steal_since(self, earlier: CpuClock) -> float:
        """The share of the machine's CPU time the hypervisor took over the window (0 to 1)."""
        machine = self.machine_s - earlier.machine_s
        return (self.steal_s - earlier.steal_s) / machine if machine > 0 else 0.0


def _machine_times() -> tuple[float, float]:
    """(all CPU time, stolen CPU time) in seconds since boot, from /proc/stat's cpu line (0, 0 off Linux)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return 0.0, 0.0
    ticks = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal (guest is in user)
    per_second = os.sysconf("SC_CLK_TCK")
    return sum(ticks) / per_second, ticks[7] / per_second


def steal_line(since: CpuClock) -> str:
    """The hypervisor's share of the CPU since SINCE, for the foot of a table."""
    return f"CPU stolen by the host since the start: {CpuClock.now().steal_since(since):.0%}"
