"""Where the time of one chunk goes: each stage adds its seconds to the collector of the thread running it.

The live session collects the stages of an utterance's first chunk (text preparation, phonemisation, model
run, timeline, prosody, resampling) and adds its own (waiting for a worker, the hop to the event loop, the
wait for the next 20 ms frame slot), so bench/live_sessions.py and the page can show where first audio goes.
Nothing is collected (and nothing costs more than a clock read) where no one asked. The same way, whoever
runs a step may say by when its chunk is needed (`deadline`), so an engine can make a smaller chunk in time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

TEXT = "text"
PHONEMIZE = "phonemize"
SYNTHESIS = "synthesis"
TIMELINE = "timeline"
PROSODY = "prosody"
RESAMPLE = "resample"

_collector: ContextVar[dict[str, float] | None] = ContextVar("photoavatar_stage_times", default=None)
_deadline: ContextVar[float | None] = ContextVar("photoavatar_chunk_deadline", default=None)


@contextlib.contextmanager
def collecting(into: dict[str, float]) -> Iterator[dict[str, float]]:
    """Stages timed inside this block (on this thread) add their seconds to INTO."""
    token = _collector.set(into)
    try:
        yield into
    finally:
        _collector.reset(token)


@contextlib.contextmanager
def timed(stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        into = _collector.get()
        if into is not None:
            into[stage] = into.get(stage, 0.0) + time.perf_counter() - started


@contextlib.contextmanager
def deadline(at_s: float) -> Iterator[None]:
    """The chunk made in this block is needed by AT_S (time.monotonic()): its listener's audio ends then."""
    token = _deadline.set(at_s)
    try:
        yield
    finally:
        _deadline.reset(token)


def time_left_s() -> float | None:
    """Seconds until the chunk being made is needed (None: no one said; take as long as it takes)."""
    at_s = _deadline.get()
    return None if at_s is None else at_s - time.monotonic()
