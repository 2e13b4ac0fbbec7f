"""The synthesis scheduler: first chunks first, then by deadline; a cancelled stream stops within one chunk;
no more streams in their making at once than max_streams."""

from __future__ import annotations

import math
import threading
import time

import pytest

from photoavatar.live.synthesis import COVER_MARGIN, END, SETTLED_AHEAD_S, SynthesisScheduler
from photoavatar.speech import stages

WAIT_S = 5.0


class Recorder:
    """Steps that log their runs in order; each run can be held at a gate until the test releases it."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.lock = threading.Lock()
        self.delivered: dict[str, list] = {}
        self.closed: set[str] = set()

    def steps(self, name: str, count: int, duration_s: float, gate: threading.Event | None = None,
              started: threading.Event | None = None):
        try:
            for index in range(count):
                with self.lock:
                    self.runs.append(f"{name}{index}")
                if started is not None:
                    started.set()
                if gate is not None:
                    assert gate.wait(WAIT_S), "the test never released the gate"
                yield (name, index, duration_s)
        finally:
            self.closed.add(name)

    def deliver(self, name: str):
        done = self.delivered.setdefault(name, [])
        return done.append

    def submit(self, scheduler: SynthesisScheduler, name: str, count: int, duration_s: float = 1.0, **kwargs):
        return scheduler.submit(self.steps(name, count, duration_s, **kwargs), lambda item: item[2],
                                self.deliver(name))

    def occupy(self, scheduler: SynthesisScheduler, name: str, count: int = 1, duration_s: float = 1.0):
        """Start NAME's first step and hold it there; returns the gate that lets it go on, and the stream."""
        gate, started = threading.Event(), threading.Event()
        stream = self.submit(scheduler, name, count, duration_s, gate=gate, started=started)
        assert started.wait(WAIT_S)
        return gate, stream

    def wait_for_runs(self, count: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while len(self.runs) < count:
            assert time.monotonic() < deadline, f"only {self.runs} ran"
            time.sleep(0.005)

    def wait_ended(self, *names: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if all(self.delivered.get(n) and self.delivered[n][-1] is END for n in names):
                return
            time.sleep(0.005)
        raise AssertionError(f"streams {names} did not end: {self.delivered}")


@pytest.fixture
def scheduler():
    made = []

    def make(workers: int = 1, **kwargs) -> SynthesisScheduler:
        made.append(SynthesisScheduler(workers, **kwargs))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_first_chunks_go_before_any_later_chunk(scheduler):
    runs = Recorder()
    sched = scheduler(1)
    gate, _ = runs.occupy(sched, "a", 4)  # a long utterance is being synthesised
    runs.submit(sched, "b", 2)
    runs.submit(sched, "c", 2)
    gate.set()
    runs.wait_ended("a", "b", "c")
    # a's running first step finishes; then b's and c's first chunks, in request order, before a's second
    assert runs.runs[:3] == ["a0", "b0", "c0"]
    assert runs.runs.index("a1") > runs.runs.index("c0")


def test_later_chunks_go_by_deadline(scheduler):
    runs = Recorder()
    sched = scheduler(1)
    gate, _ = runs.occupy(sched, "hold")
    runs.submit(sched, "long", 3, duration_s=5.0)  # each chunk buffers 5 s of audio
    runs.submit(sched, "short", 3, duration_s=0.5)  # each buffers 0.5 s: its listener runs out sooner
    gate.set()
    runs.wait_ended("long", "short")
    assert runs.runs[1:3] == ["long0", "short0"]  # first chunks in request order
    # short's buffer (0.5 s, 1.0 s) ends before long's (5 s): both its later chunks come before long1
    assert runs.runs.index("short2") < runs.runs.index("long1")


def test_cancel_stops_within_one_chunk_and_closes_the_steps(scheduler):
    runs = Recorder()
    sched = scheduler(1)
    gate, stream = runs.occupy(sched, "runon", 1000)
    sched.cancel(stream)  # while its first step runs
    gate.set()
    runs.submit(sched, "next", 1)
    runs.wait_ended("next")
    assert [r for r in runs.runs if r.startswith("runon")] == ["runon0"]
    assert "runon" in runs.closed
    assert runs.delivered.get("runon", []) == []  # the step that was running is discarded
    assert sched.pending() == 0


def test_cancel_of_a_queued_stream_runs_nothing(scheduler):
    runs = Recorder()
    sched = scheduler(1)
    gate, _ = runs.occupy(sched, "busy")
    queued = runs.submit(sched, "queued", 5)
    sched.cancel(queued)
    gate.set()
    runs.wait_ended("busy")
    assert not any(r.startswith("queued") for r in runs.runs)


def test_steps_beyond_the_horizon_wait_while_others_run(scheduler):
    runs = Recorder()
    sched = scheduler(1, horizon_s=0.5)
    runs.submit(sched, "far", 3, duration_s=30.0)  # 30 s buffered after its first chunk
    runs.submit(sched, "near", 3, duration_s=0.01)
    runs.wait_ended("near")
    time.sleep(0.05)
    assert [r for r in runs.runs if r.startswith("far")] == ["far0"]


def test_an_engine_error_is_delivered_then_the_end(scheduler):
    sched = scheduler(2)
    got: list = []
    done = threading.Event()

    def failing():
        yield 1.0
        raise RuntimeError("model crashed")

    def deliver(item):
        got.append(item)
        if item is END:
            done.set()

    sched.submit(failing(), lambda item: item, deliver)
    assert done.wait(WAIT_S)
    assert got[0] == 1.0 and isinstance(got[1], RuntimeError) and got[2] is END


def test_two_workers_run_two_streams_at_once(scheduler):
    runs = Recorder()
    sched = scheduler(2)
    gate = threading.Event()
    first, second = threading.Event(), threading.Event()
    runs.submit(sched, "x", 1, gate=gate, started=first)
    runs.submit(sched, "y", 1, gate=gate, started=second)
    assert first.wait(WAIT_S) and second.wait(WAIT_S)  # both model runs in flight together
    assert sched.running() == 2
    gate.set()
    runs.wait_ended("x", "y")


def test_a_stream_beyond_max_streams_waits_until_one_is_made(scheduler):
    """Past max_streams, a first chunk no longer goes first: the streams started keep their workers, so their
    listeners hear no gap, and the new one starts when one of them is done."""
    runs = Recorder()
    sched = scheduler(1, max_streams=1)
    gate, _ = runs.occupy(sched, "a", 3)  # 1 s of audio a step: never SETTLED_AHEAD_S ahead
    runs.submit(sched, "b", 2)
    assert sched.held_back() == 1
    gate.set()
    runs.wait_ended("a", "b")
    assert runs.runs == ["a0", "a1", "a2", "b0", "b1"]  # with no limit b0 would come right after a0
    assert sched.held_back() == 0


def test_a_stream_far_ahead_of_its_listener_no_longer_counts(scheduler):
    """A long text made seconds ahead needs the CPU only later: it must not keep new sessions waiting."""
    runs = Recorder()
    sched = scheduler(1, max_streams=1, clock=lambda: 0.0)  # time stands still: audio made is audio ahead
    gate, _ = runs.occupy(sched, "far", 3, duration_s=SETTLED_AHEAD_S + 0.5)
    runs.submit(sched, "next", 2)
    gate.set()
    runs.wait_ended("far", "next")
    assert runs.runs[:2] == ["far0", "next0"]


def test_cancelling_a_stream_in_its_making_lets_a_waiting_one_start_at_once(scheduler):
    runs = Recorder()
    sched = scheduler(1, max_streams=1, clock=lambda: 0.0, horizon_s=0.01)
    # its 2.5 s chunk puts it past the horizon, so it waits for 2.49 s, and under SETTLED_AHEAD_S: still counted
    first = runs.submit(sched, "first", 5, duration_s=2.5)
    runs.wait_for_runs(1)
    runs.submit(sched, "waiting", 1)
    time.sleep(0.1)
    assert runs.runs == ["first0"] and sched.held_back() == 1
    cancelled_at = time.monotonic()
    sched.cancel(first)  # a barge-in or /stop
    runs.wait_for_runs(2)
    assert runs.runs == ["first0", "waiting0"]
    assert time.monotonic() - cancelled_at < 1.0  # woken by the cancel, not by the horizon's 2.49 s


class CoverRecorder:
    """Streams of two 0.1 s steps (on a fake clock) that record what each step is asked to cover; a held
    stream's first step waits for `gate`, asking before it or (ASK_LATE) after it."""

    def __init__(self, scheduler_factory):
        self.now = [0.0]
        self.sched = scheduler_factory(1, clock=lambda: self.now[0])
        self.covers: dict[str, float] = {}
        self.gate, self.started = threading.Event(), threading.Event()
        self.ended: dict[str, threading.Event] = {}

    def _steps(self, name: str, held: bool, ask_late: bool):
        for index in range(2):
            if not ask_late or index > 0:
                self.covers[f"{name}{index}"] = stages.cover_s()
            if held and index == 0:
                self.started.set()
                assert self.gate.wait(WAIT_S)
                if ask_late:
                    self.covers[f"{name}{index}"] = stages.cover_s()
            self.now[0] += 0.1
            yield (name, index, 1.0)

    def submit(self, name: str, held: bool = False, ask_late: bool = False) -> None:
        self.ended[name] = threading.Event()
        self.sched.submit(self._steps(name, held, ask_late), lambda item: item[2],
                          lambda item, name=name: item is END and self.ended[name].set())

    def learn_the_cost(self) -> None:
        """A stream alone: nothing learnt yet, nothing asked; its first step teaches the cost (0.1 s)."""
        self.submit("a")
        assert self.ended["a"].wait(WAIT_S)
        assert self.covers["a0"] == 0.0

    def wait_ended(self, *names: str) -> None:
        for name in names:
            assert self.ended[name].wait(WAIT_S)


def test_a_first_chunk_is_asked_to_cover_the_first_chunks_queued_behind_it(scheduler):
    """First chunks go first, so a stream that has just started waits for those queued behind it: its first
    step is asked (stages.cover_s) for audio lasting a round of them per worker plus its own next step."""
    recorder = CoverRecorder(scheduler)
    recorder.learn_the_cost()
    recorder.submit("hold", held=True)
    assert recorder.started.wait(WAIT_S)
    for name in "bcd":
        recorder.submit(name)
    recorder.gate.set()
    recorder.wait_ended("hold", "b", "c", "d")
    covers = recorder.covers
    assert covers["hold0"] == pytest.approx(COVER_MARGIN * 1 * 0.1)
    assert covers["b0"] == pytest.approx(COVER_MARGIN * 3 * 0.1)  # c and d queued behind it, then its own
    assert covers["c0"] == pytest.approx(COVER_MARGIN * 2 * 0.1)
    assert covers["d0"] == pytest.approx(COVER_MARGIN * 1 * 0.1)
    assert all(covers[f"{name}1"] == 0.0 for name in ("a", "hold", "b", "c", "d"))  # later steps: by deadline


def test_a_first_chunk_counts_the_streams_that_came_before_its_length_was_decided(scheduler):
    """Sessions speaking together send their requests over some milliseconds: the first to start must know
    of those that came while its sentence stage ran, or it makes too little audio to last their turns."""
    recorder = CoverRecorder(scheduler)
    recorder.learn_the_cost()
    recorder.submit("early", held=True, ask_late=True)
    assert recorder.started.wait(WAIT_S)
    for name in "bc":
        recorder.submit(name)
    recorder.gate.set()
    recorder.wait_ended("early", "b", "c")
    assert recorder.covers["early0"] == pytest.approx(COVER_MARGIN * 3 * 0.1)  # b and c, then its own


def test_a_stream_run_to_its_end_teaches_the_cost_of_a_first_step(scheduler):
    """The server's warm-up runs on the workers: the first sessions to speak after it are asked to cover."""
    recorder = CoverRecorder(scheduler)
    made = []

    def warm_up():
        made.append(stages.cover_s())  # nothing learnt yet
        recorder.now[0] += 0.2
        yield ("warm", 0, 0.5)
        made.append("second")

    recorder.sched.run_to_end([warm_up()], lambda item: item[2])
    assert made == [0.0, "second"]  # both steps ran before it returned
    recorder.submit("after")
    recorder.wait_ended("after")
    assert recorder.covers["after0"] == pytest.approx(COVER_MARGIN * 1 * 0.2)


def test_streams_run_to_their_end_run_at_once_on_the_workers(scheduler):
    """The warm-up runs a first step on every worker at once, as sessions starting together will."""
    both_running = threading.Barrier(2, timeout=WAIT_S)  # broken (an error) unless both first steps overlap
    made = []

    def steps(name):
        both_running.wait()
        yield 1.0
        made.append(name)

    scheduler(2).run_to_end([steps("a"), steps("b")], lambda item: item)
    assert sorted(made) == ["a", "b"]  # both streams ran to their ends before it returned


def test_a_stream_run_to_its_end_raises_what_failed(scheduler):
    def failing():
        yield 1.0
        raise RuntimeError("the voice broke")

    with pytest.raises(RuntimeError, match="the voice broke"):
        scheduler(1).run_to_end([failing()], lambda item: item)


def test_closing_the_scheduler_ends_a_wait_for_a_stream(scheduler):
    sched = scheduler(1)
    gate, _ = Recorder().occupy(sched, "busy")  # the only worker is held, so the stream below never starts
    waited = threading.Thread(target=sched.run_to_end, args=([iter([1.0])], lambda item: item))
    waited.start()
    time.sleep(0.05)
    sched.close()
    waited.join(WAIT_S)
    assert not waited.is_alive()
    gate.set()


def _busy(cpu_s: float) -> None:
    """Take CPU_S of this thread's CPU time (a model run's work, not a wait)."""
    started = time.thread_time()
    while time.thread_time() - started < cpu_s:
        pass


def test_totals_count_the_audio_made_and_the_cpu_each_step_took(scheduler):
    sched = scheduler(1)
    before = sched.totals()

    def steps():
        for _ in range(2):
            _busy(0.02)
            yield 0.5
        time.sleep(0.05)  # waiting takes no CPU

    sched.run_to_end([steps()], lambda item: item)
    made = sched.totals().since(before)
    assert made.chunks == 2 and made.audio_s == pytest.approx(1.0)
    assert 0.04 <= made.cpu_s < 0.04 + 0.04  # both steps' work (the wait and the bookkeeping add little)
    assert made.cpu_per_audio_s == pytest.approx(made.cpu_s / 1.0)


def test_a_cancelled_step_counts_its_cpu_but_no_audio(scheduler):
    sched = scheduler(1)
    started, gate, ended = threading.Event(), threading.Event(), threading.Semaphore(0)

    def steps():
        _busy(0.02)
        started.set()
        assert gate.wait(WAIT_S)
        yield 0.5

    stream = sched.submit(steps(), lambda item: item, lambda item: None)
    assert started.wait(WAIT_S)
    sched.cancel(stream)  # while its step runs: what it makes is discarded
    gate.set()
    sched.submit(iter([0.25]), lambda item: item, lambda item: item is END and ended.release())
    assert ended.acquire(timeout=WAIT_S)
    made = sched.totals()
    assert made.chunks == 1 and made.audio_s == pytest.approx(0.25)  # the second stream's only
    assert made.cpu_s >= 0.02  # the discarded step's work was done all the same
    assert math.isnan(scheduler(1).totals().cpu_per_audio_s)  # no audio yet: no ratio
