"""`GET /health` (liveness) and `GET /metrics` (load, in the Prometheus text format) for operators.

The gauges read the live state at scrape time (open sessions, queued utterances, synthesis in flight,
avatar jobs, the process's memory, descriptors and threads); the event-loop lag comes from a probe task
that sleeps 100 ms and measures its overshoot. Nothing here is on the audio path.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from photoavatar import __version__

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
LAG_PROBE_PERIOD_S = 0.1


# -- process and loop measurements (bench/soak.py reads them through /metrics) --------------------------

def resident_bytes() -> int:
    """Resident set size of this process, from /proc (Linux); 0 where /proc is missing."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


@dataclass
class LoopLag:
    """The event loop's lag: how late a 100 ms timer fires (latest, and worst since the last scrape)."""

    latest_s: float = 0.0
    worst_s: float = 0.0

    async def probe_forever(self, period_s: float = LAG_PROBE_PERIOD_S) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(period_s)
            self.latest_s = max(0.0, loop.time() - start - period_s)
            self.worst_s = max(self.worst_s, self.latest_s)

    def take_worst(self) -> float:
        worst, self.worst_s = self.worst_s, self.latest_s
        return worst


@dataclass
class SessionTotals:
    """What closed sessions counted, so the /metrics counters keep them after the sessions are gone."""

    closed: int = 0
    underrun_frames: int = 0
    late_frames: int = 0

    def retire(self, session) -> None:
        self.closed += 1
        self.underrun_frames += session.transport.playout.underrun_frames
        self.late_frames += _late_frames(session)


def _late_frames(session) -> int:
    return getattr(getattr(session.transport, "track", None), "late_frames", 0)  # LiveKit paces in its SDK


# -- the routes -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "gauge" | "counter"
    help: str
    samples: list[tuple[dict[str, str], float]]


def render(metrics: list[Metric]) -> str:
    lines = []
    for metric in metrics:
        lines += [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} {metric.kind}"]
        for labels, value in metric.samples:
            label_text = ",".join(f'{key}="{val}"' for key, val in labels.items())
            lines.append(f"{metric.name}{{{label_text}}} {value:g}" if label_text else f"{metric.name} {value:g}")
    return "\n".join(lines) + "\n"


def health_routes(collect: Callable[[], list[Metric]], started_at_s: float) -> APIRouter:
    """/health answers while the event loop runs; /metrics renders what COLLECT gathers at scrape time."""
    router = APIRouter()

    @router.get("/health", summary="liveness: 200 while the server's event loop runs")
    async def health() -> dict:
        return {"status": "ok", "version": __version__, "uptime_s": round(time.monotonic() - started_at_s, 1)}

    @router.get("/metrics", summary="load, in the Prometheus text format", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(render(collect()), media_type=PROMETHEUS_TEXT)

    return router


def process_metrics(lag: LoopLag) -> list[Metric]:
    return [
        Metric("photoavatar_process_resident_bytes", "gauge", "resident memory of the server process",
               [({}, resident_bytes())]),
        Metric("photoavatar_process_open_fds", "gauge", "open file descriptors", [({}, open_fds())]),
        Metric("photoavatar_process_threads", "gauge", "Python threads", [({}, threading.active_count())]),
        Metric("photoavatar_event_loop_lag_seconds", "gauge",
               "worst lateness of a 100 ms timer on the event loop since the last scrape", [({}, lag.take_worst())]),
    ]


def parse(text: str) -> dict[str, float]:
    """Prometheus text -> {"name" or "name{labels}": value}; what bench/soak.py and the tests read."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def server_metrics(sessions, jobs, stats, synthesis, lag: LoopLag, totals: SessionTotals) -> list[Metric]:
    """Every metric of /metrics: SESSIONS (the registry), JOBS (avatar jobs), STATS (the request guard's),
    SYNTHESIS (the live SynthesisScheduler: model runs now, utterances with runs still to do or held back)."""
    open_sessions = list(sessions.all())
    connected = sum(1 for s in open_sessions if s.transport.connected)
    job_states = jobs.counts()
    made = synthesis.totals()
    return [
        Metric("photoavatar_sessions", "gauge", "open live sessions, by whether a client is connected",
               [({"state": "connected"}, connected), ({"state": "unconnected"}, len(open_sessions) - connected)]),
        Metric("photoavatar_utterances_queued", "gauge", "utterances waiting to be spoken, all sessions",
               [({}, sum(s.queued_utterances for s in open_sessions))]),
        Metric("photoavatar_synthesis_in_flight", "gauge", "model runs (synthesis steps) running now",
               [({}, synthesis.running())]),
        Metric("photoavatar_synthesis_streams", "gauge", "utterances with synthesis still to do",
               [({}, synthesis.pending())]),
        Metric("photoavatar_synthesis_held_back", "gauge",
               "utterances waiting to start because the CPU is full (PHOTOAVATAR_TTS_STREAMS_PER_MODEL)",
               [({}, synthesis.held_back())]),
        Metric("photoavatar_synthesis_audio_seconds_total", "counter", "speech audio the synthesis workers made",
               [({}, made.audio_s)]),
        Metric("photoavatar_synthesis_cpu_seconds_total", "counter",
               "CPU the synthesis workers took for it: per audio second, the share of a core one listener takes",
               [({}, made.cpu_s)]),
        Metric("photoavatar_sessions_closed_total", "counter", "sessions ended (by the client, expiry or reaper)",
               [({}, totals.closed)]),
        Metric("photoavatar_underrun_frames_total", "counter",
               "20 ms frames padded with silence mid-utterance because speech was late",
               [({}, totals.underrun_frames + sum(s.transport.playout.underrun_frames for s in open_sessions))]),
        Metric("photoavatar_late_frames_total", "counter", "audio frames sent more than 40 ms after they were due",
               [({}, totals.late_frames + sum(_late_frames(s) for s in open_sessions))]),
        Metric("photoavatar_avatar_jobs", "gauge", "avatar jobs by state",
               [({"state": state}, count) for state, count in sorted(job_states.items())]),
        Metric("photoavatar_http_responses_total", "counter", "HTTP responses by status class",
               [({"class": cls}, count) for cls, count in sorted(stats.responses.items())]),
        *process_metrics(lag),
    ]
