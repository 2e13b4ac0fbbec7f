"""Where the time of one chunk goes: each stage adds its seconds to the collector of the thread running it.

The live session collects the stages of an utterance's first chunk (text preparation, phonemisation, model
run, timeline, prosody, resampling) and adds its own (waiting for a worker, the hop to the event loop, the
wait for the next 20 ms frame slot), so bench/live_sessions.py and the page can show where first audio goes.
Nothing is collected (and nothing costs more than a clock read) where no one asked. The same way, whoever
runs a step may say how much audio its chunk should hold at least (`covering`): when other streams' first
chunks go first, a stream's next step runs that much later, and a longer chunk keeps its listener from a gap.
The engine asks only once it decides the chunk's length (after the sentence stage), so the answer counts the
streams that arrived meanwhile: sessions that speak together send their requests over 10-20 ms.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar

TEXT = "text"
PHONEMIZE = "phonemize"
SYNTHESIS = "synthesis"
TIMELINE = "timeline"
PROSODY = "prosody"
RESAMPLE = "resample"

_collector: ContextVar[dict[str, float] | None] = ContextVar("photoavatar_stage_times", default=None)
_cover: ContextVar[Callable[[], float] | None] = ContextVar("photoavatar_chunk_cover", default=None)


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
def covering(seconds: Callable[[], float]) -> Iterator[None]:
    """The chunk made in this block should hold at least SECONDS() of audio: its stream's next step will not
    run sooner than that. Called when the chunk's length is decided, not before."""
    token = _cover.set(seconds)
    try:
        yield
    finally:
        _cover.reset(token)


def cover_s() -> float:
    """Seconds of audio the chunk being made should hold at least (0: no one said)."""
    seconds = _cover.get()
    return 0.0 if seconds is None else seconds()
