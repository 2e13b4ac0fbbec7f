"""One synthesis scheduler for all sessions: model runs by deadline, a bounded number at a time.

Every utterance is a stream of steps (one step = one model run, one chunk of audio). Workers (one per model
instance) always take the most urgent step of any stream:
1. first chunks before anything else, oldest request first: a listener who hears nothing yet waits longest;
2. then the stream whose listener runs out of audio soonest (its deadline: when the audio made so far ends
   playing; a deadline in the past is a listener hearing silence now, so it goes first).
So one session's long text delays another's first audio by at most the step already running on each worker,
and cancelling an utterance stops it within one chunk: its next step is never started. Steps far ahead of
their deadline (more than HORIZON_S of audio buffered) wait, so a long text never hoards the CPU or memory.
Because first chunks go first, a stream that has just started waits for every first chunk queued behind it
before its second step: its first step is asked (stages.covering) for enough audio to last that long, from
the learnt cost of a first step, so ten sessions starting together do not fall silent after their first words.
A stream's first seconds cost most of its CPU (each stretch is as long as the audio before it), so more
streams starting together than the workers can carry would all fall silent, again and again. So at most
`max_streams` are in their making at once (the server: PHOTOAVATAR_TTS_STREAMS_PER_MODEL per worker), not
counting those SETTLED_AHEAD_S ahead of their listeners; a new stream beyond that waits for its first step.
Its listener waits longer for the first word, and every listener hears speech without gaps.
`totals` counts the chunks and audio made and the CPU the steps took: CPU per second of audio is the share of a
core each listener takes, so /metrics shows how close the workers are to what the machine can carry.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from photoavatar.speech import stages

log = logging.getLogger(__name__)

HORIZON_S = 20.0  # audio a stream may have ready beyond what its listener has heard
COST_SMOOTHING = 0.3  # weight of the latest first step in the learnt cost of one
COVER_MARGIN = 1.25  # first chunks cover the expected wait for the stream's next step with this much to spare
SETTLED_AHEAD_S = 3.0  # audio made beyond what the listener has heard: the stream needs the CPU only later
WARM_UP_TIMEOUT_S = 120.0  # a voice's first load (onnxruntime sessions, the exactness check) takes a few seconds


def _nothing_to_cover() -> float:
    return 0.0


@dataclass(frozen=True)
class SynthesisTotals:
    """What all steps so far made and took. CPU is the workers' own thread time, every step's (also one whose
    output a cancel discarded); onnxruntime runs a model on the calling thread with PHOTOAVATAR_TTS_THREADS 1,
    the default, and its helper threads are not counted."""

    chunks: int = 0  # items delivered
    audio_s: float = 0.0  # in them
    cpu_s: float = 0.0

    def since(self, earlier: SynthesisTotals) -> SynthesisTotals:
        return SynthesisTotals(self.chunks - earlier.chunks, self.audio_s - earlier.audio_s,
                               self.cpu_s - earlier.cpu_s)

    @property
    def cpu_per_audio_s(self) -> float:
        """CPU seconds per second of audio (nan before any audio): the part of a core one listener takes."""
        return self.cpu_s / self.audio_s if self.audio_s > 0 else math.nan


class StreamEnd:
    """Delivered once after a stream's last item (never after a cancel)."""


END = StreamEnd()


@dataclass(eq=False)
class SynthesisStream:
    """One utterance's steps. `deliver` is called on a worker thread with each item, an exception, then END."""

    steps: Iterator[Any]
    duration_s: Callable[[Any], float]  # seconds of audio in an item
    deliver: Callable[[Any], None]
    requested_at_s: float
    order: int = 0
    started_at_s: float | None = None  # when its first item was delivered: playback starts about then
    made_s: float = 0.0  # audio made so far
    running: bool = False
    cancelled: bool = False
    finished: bool = False
    runs: int = 0
    run_time_s: float = field(default=0.0)

    @property
    def waiting_for_first(self) -> bool:
        return self.started_at_s is None

    def deadline_s(self) -> float:
        """When this stream's listener needs its next chunk (first chunks: when it was asked for)."""
        if self.started_at_s is None:
            return self.requested_at_s
        return self.started_at_s + self.made_s


class SynthesisScheduler:
    """Runs the steps of many SynthesisStreams on WORKERS threads (one model run each at a time)."""

    def __init__(self, workers: int, initializer: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, horizon_s: float = HORIZON_S,
                 max_streams: int | None = None):
        if workers < 1:
            raise ValueError(f"the scheduler needs at least one worker, got {workers}")
        if max_streams is not None and max_streams < 1:
            raise ValueError(f"the scheduler must let at least one stream start, got max_streams={max_streams}")
        self.max_streams = max_streams  # None: every stream may start at once
        self._clock = clock
        self._horizon_s = horizon_s
        self._streams: list[SynthesisStream] = []
        self._order = itertools.count()
        self._condition = threading.Condition()
        self._closed = False
        self._initializer = initializer
        self._first_step_s: float | None = None  # learnt run time of a first step
        self._totals = SynthesisTotals()
        self._threads = [threading.Thread(target=self._work, name=f"synthesis-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    @property
    def workers(self) -> int:
        return len(self._threads)

    def submit(self, steps: Iterator[Any], duration_s: Callable[[Any], float], deliver: Callable[[Any], None],
               requested_at_s: float | None = None) -> SynthesisStream:
        """Queue an utterance's steps (lazy: nothing runs before a worker takes its first step)."""
        stream = SynthesisStream(iter(steps), duration_s, deliver,
                                 self._clock() if requested_at_s is None else requested_at_s, next(self._order))
        with self._condition:
            if self._closed:
                raise RuntimeError("the synthesis scheduler is closed")
            self._streams.append(stream)
            self._condition.notify()
        return stream

    def run_to_end(self, streams: list[Iterator[Any]], duration_s: Callable[[Any], float],
                   timeout_s: float = WARM_UP_TIMEOUT_S) -> None:
        """Run each of STREAMS (iterators of steps) as a stream, all submitted at once, and wait for their ends
        (the server's warm-up: their first steps also teach the cost of one, so the first sessions to speak
        are asked to cover the others' turns). A failed step is raised here; a scheduler closed meanwhile
        ends the wait."""
        ended = threading.Semaphore(0)
        failures: list[Exception] = []

        def deliver(item: Any) -> None:
            if isinstance(item, Exception):
                failures.append(item)
            elif item is END:
                ended.release()

        submitted = [self.submit(steps, duration_s, deliver) for steps in streams]
        deadline_s = time.monotonic() + timeout_s
        waiting = len(submitted)
        while waiting and not any(stream.cancelled for stream in submitted):
            if ended.acquire(timeout=0.1):
                waiting -= 1
            elif time.monotonic() > deadline_s:
                for stream in submitted:
                    self.cancel(stream)
                raise TimeoutError(f"{waiting} synthesis stream(s) did not end within {timeout_s:.0f} s")
        if failures:
            raise failures[0]

    def cancel(self, stream: SynthesisStream) -> None:
        """Run no further step of STREAM; a step already running finishes and is discarded."""
        with self._condition:
            stream.cancelled = True
            idle = not stream.running and not stream.finished
            if idle:
                self._drop(stream)
                self._condition.notify()  # one stream fewer in its making: a waiting one may start
        if idle:
            _close(stream.steps)

    def totals(self) -> SynthesisTotals:
        with self._condition:
            return self._totals

    def pending(self) -> int:
        """Streams with steps still to run (for metrics)."""
        with self._condition:
            return len(self._streams)

    def running(self) -> int:
        with self._condition:
            return sum(1 for stream in self._streams if stream.running)

    def held_back(self) -> int:
        """Streams waiting for their first step only because max_streams are in their making (for metrics)."""
        with self._condition:
            if not self._at_limit():
                return 0
            return sum(1 for stream in self._streams if stream.waiting_for_first and not stream.running)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            streams, self._streams = self._streams, []
            for stream in streams:
                stream.cancelled = True
            self._condition.notify_all()
        for stream in streams:
            if not stream.running:
                _close(stream.steps)

    # -- workers --------------------------------------------------------------------------------------

    def _work(self) -> None:
        if self._initializer is not None:
            self._initializer()
        while (stream := self._next_step()) is not None:
            self._run_step(stream)

    def _next_step(self) -> SynthesisStream | None:
        with self._condition:
            while not self._closed:
                stream, wait_s = self._most_urgent()
                if stream is not None:
                    stream.running = True
                    return stream
                self._condition.wait(wait_s)
            return None

    def _most_urgent(self) -> tuple[SynthesisStream | None, float | None]:
        """The stream to run now, or None and how long until one falls within the horizon."""
        idle = [s for s in self._streams if not s.running]
        if self._at_limit():
            idle = [s for s in idle if not s.waiting_for_first]  # a new stream waits until one settles
        if not idle:
            return None, None
        best = min(idle, key=lambda s: (not s.waiting_for_first, s.deadline_s(), s.order))
        early_s = best.deadline_s() - self._clock() - self._horizon_s
        if early_s > 0:
            return None, early_s
        return best, None

    def _run_step(self, stream: SynthesisStream) -> None:
        started, cpu_started = self._clock(), time.thread_time()
        with self._condition:
            first = stream.waiting_for_first
        try:
            with stages.covering(functools.partial(self._first_cover_s, stream) if first else _nothing_to_cover):
                item, done, error = next(stream.steps), False, None
        except StopIteration:
            item, done, error = None, True, None
        except Exception as failure:  # an engine failure ends this stream, never a worker
            item, done, error = None, True, failure
        cpu_s = time.thread_time() - cpu_started
        with self._condition:
            run_s = self._clock() - started
            stream.runs += 1
            stream.run_time_s += run_s
            if first and not done:
                old = self._first_step_s
                self._first_step_s = run_s if old is None else old + COST_SMOOTHING * (run_s - old)
            cancelled = stream.cancelled
            made = not (cancelled or done)
            made_s = stream.duration_s(item) if made else 0.0
            totals = self._totals
            self._totals = SynthesisTotals(totals.chunks + made, totals.audio_s + made_s, totals.cpu_s + cpu_s)
            if made:
                stream.made_s += made_s
                if stream.started_at_s is None:
                    stream.started_at_s = self._clock()
        if not cancelled:  # delivered while still marked running, so a stream's items never overtake
            if error is not None:
                log.warning("synthesis failed: %s", error)
                _deliver(stream, error)
            _deliver(stream, END if done else item)
        with self._condition:
            stream.running = False
            if stream.cancelled or done:
                self._drop(stream)
            cancelled = stream.cancelled
            self._condition.notify()
        if cancelled:
            _close(stream.steps)

    def _first_cover_s(self, stream: SynthesisStream) -> float:
        """Audio STREAM's first chunk should hold: the first chunks queued behind it run before its next step
        (a round of them per worker), then that step itself (about a first step's cost). Asked by the engine
        during the step, so streams that came after it started count too. Streams not yet let start
        (max_streams) count as well: when more wait than may start, the machine is overloaded, and the longer
        first chunks keep those started from falling silent (docs/latency.md has the A/B)."""
        with self._condition:
            if self._first_step_s is None:
                return 0.0
            queued = sum(1 for other in self._streams if other.waiting_for_first and not other.running)
            return COVER_MARGIN * (math.ceil(queued / self.workers) + 1) * self._first_step_s

    def _at_limit(self) -> bool:
        """Whether max_streams are in their making: a new stream must wait for its first step."""
        return self.max_streams is not None and self._unsettled() >= self.max_streams

    def _unsettled(self) -> int:
        """Streams in their making that take the CPU now or soon: first steps running, and started streams
        less than SETTLED_AHEAD_S ahead of their listeners (a stream whose steps are all made is gone)."""
        now = self._clock()
        return sum(1 for s in self._streams
                   if (s.running if s.waiting_for_first else s.deadline_s() - now < SETTLED_AHEAD_S))

    def _drop(self, stream: SynthesisStream) -> None:
        stream.finished = True
        if stream in self._streams:
            self._streams.remove(stream)


def _deliver(stream: SynthesisStream, item: Any) -> None:
    try:
        stream.deliver(item)
    except Exception:  # a session that went away must not take a worker with it
        log.exception("delivering synthesis output failed")


def _close(steps: Iterator[Any]) -> None:
    close = getattr(steps, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("closing a cancelled synthesis stream failed")
