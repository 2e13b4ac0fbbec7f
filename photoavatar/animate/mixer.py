"""The viseme mixer: critically damped springs that follow the timeline's targets, at any frame rate.

`web/mixer.js` is its twin; both are held to the JSON vectors in `tests/vectors/`. Change one, change
both, and regenerate the vectors with `python -m photoavatar.animate.mixer_vectors`.

Targets. At time t a viseme's target is the largest weight among its events with start_s <= t < end_s.
If the non-Rest targets add up to more than 1 they are scaled to 1; Rest takes what is left.

Springs (photoavatar/spring.py). Each weight x follows its target g as x'' = -w^2 (x - g) - 2 w x' (critical
damping: no overshoot from rest, no jumps). The state is advanced in closed form between the moments where a
target changes, so the result does not depend on the frame rate.

Output. Weights clipped to [0, 1] and normalised to sum 1, plus three prosody values in [0, 1]:
loudness (smoothed like a weight, drives jaw opening), nod and brow (a bump u*e^(1-u) per accent).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from photoavatar.speech.types import ProsodyFrame, VisemeEvent
from photoavatar.spring import DEFAULT_TIME_CONSTANT_S, omega, spring_step
from photoavatar.visemes import REST, VISEMES

LOUDNESS_FLOOR_DB = -50.0
LOUDNESS_RANGE_DB = 40.0
PROSODY_HOLD_S = 0.1  # a prosody frame speaks for this long at most
NOD_TIME_S = 0.15
BROW_TIME_S = 0.25
BROW_MIN_ACCENT = 0.6
BUMP_HORIZON = 20.0  # bumps older than this many time constants are negligible (< 1e-7)


@dataclass(frozen=True)
class MixerConfig:
    time_constant_s: float = DEFAULT_TIME_CONSTANT_S  # 63 % rise time (photoavatar/spring.py)
    time_constant_overrides_s: dict[str, float] = field(default_factory=dict)
    visemes: tuple[str, ...] = VISEMES

    def omega(self, viseme: str) -> float:
        return omega(self.time_constant_overrides_s.get(viseme, self.time_constant_s))

    def to_json(self) -> dict:
        return {
            "time_constant_s": self.time_constant_s,
            "time_constant_overrides_s": dict(self.time_constant_overrides_s),
            "visemes": list(self.visemes),
        }

    @classmethod
    def from_json(cls, data: dict) -> MixerConfig:
        return cls(
            float(data.get("time_constant_s", DEFAULT_TIME_CONSTANT_S)),
            {k: float(v) for k, v in data.get("time_constant_overrides_s", {}).items()},
            tuple(data.get("visemes", VISEMES)),
        )


@dataclass(frozen=True)
class MixerFrame:
    time_s: float
    weights: dict[str, float]  # over the config's visemes, summing to 1
    loudness: float
    nod: float
    brow: float

    def to_json(self) -> dict:
        return {"time_s": self.time_s, "weights": self.weights, "loudness": self.loudness, "nod": self.nod, "brow": self.brow}


def bump(u: float) -> float:
    return u * math.exp(1.0 - u) if 0.0 <= u <= BUMP_HORIZON else 0.0


class VisemeMixer:
    def __init__(self, config: MixerConfig | None = None, start_time_s: float = 0.0):
        self.config = config or MixerConfig()
        self.time_s = start_time_s
        self._events: list[VisemeEvent] = []
        self._prosody: list[ProsodyFrame] = []  # sorted by time
        self._position = {name: (1.0 if name == REST else 0.0) for name in self.config.visemes}
        self._velocity = dict.fromkeys(self.config.visemes, 0.0)
        self._loudness = (0.0, 0.0)

    def add_events(self, events: Iterable[VisemeEvent]) -> None:
        self._events.extend(e for e in events if e.viseme in self._position and e.end_s > e.start_s)

    def add_prosody(self, frames: Iterable[ProsodyFrame]) -> None:
        for frame in frames:
            bisect.insort(self._prosody, frame, key=lambda f: f.time_s)

    def clear(self) -> None:
        """Drop all pending events (barge-in); the mouth relaxes to Rest from where it is."""
        self._events.clear()
        self._prosody.clear()

    def targets(self, t: float) -> dict[str, float]:
        targets = dict.fromkeys(self.config.visemes, 0.0)
        for event in self._events:
            if event.viseme != REST and event.start_s <= t < event.end_s:
                targets[event.viseme] = max(targets[event.viseme], event.weight)
        total = sum(targets.values())
        if total > 1.0:
            targets = {name: value / total for name, value in targets.items()}
            total = 1.0
        if REST in targets:
            targets[REST] = 1.0 - total
        return targets

    def loudness_target(self, t: float) -> float:
        index = bisect.bisect_right(self._prosody, t, key=lambda f: f.time_s) - 1
        if index < 0 or t - self._prosody[index].time_s > PROSODY_HOLD_S:
            return 0.0
        level = (self._prosody[index].loudness_db - LOUDNESS_FLOOR_DB) / LOUDNESS_RANGE_DB
        return min(1.0, max(0.0, level))

    def advance_to(self, t: float) -> MixerFrame:
        """Move the springs to time t (seconds, never backwards) and return the frame there."""
        if t < self.time_s:
            raise ValueError(f"the mixer cannot go back in time: at {self.time_s}, asked for {t}")
        for start, end in self._pieces(self.time_s, t):
            self._step(start, end)
        self.time_s = t
        return self.frame()

    def frame(self) -> MixerFrame:
        t = self.time_s
        clipped = {name: min(1.0, max(0.0, x)) for name, x in self._position.items()}
        total = sum(clipped.values())
        if total < 1e-9:
            weights = {name: (1.0 if name == REST else 0.0) for name in clipped}
        else:
            weights = {name: value / total for name, value in clipped.items()}
        return MixerFrame(t, weights, min(1.0, max(0.0, self._loudness[0])), self._bump_sum(t, NOD_TIME_S, 0.0),
                          self._bump_sum(t, BROW_TIME_S, BROW_MIN_ACCENT))

    def _pieces(self, start: float, end: float) -> list[tuple[float, float]]:
        cuts = {start, end}
        for event in self._events:
            cuts.update(x for x in (event.start_s, event.end_s) if start < x < end)
        for frame in self._prosody:
            cuts.update(x for x in (frame.time_s, frame.time_s + PROSODY_HOLD_S) if start < x < end)
        ordered = sorted(cuts)
        return list(zip(ordered[:-1], ordered[1:], strict=False))

    def _step(self, start: float, end: float) -> None:
        dt = end - start
        targets = self.targets(start)
        for name in self.config.visemes:
            self._position[name], self._velocity[name] = spring_step(
                self._position[name], self._velocity[name], targets[name], self.config.omega(name), dt)
        x, v = self._loudness
        self._loudness = spring_step(x, v, self.loudness_target(start), self.config.omega(REST), dt)

    def _bump_sum(self, t: float, time_constant_s: float, min_accent: float) -> float:
        total = 0.0
        for frame in self._prosody:
            if frame.accent > 0.0 and frame.accent >= min_accent:
                total += frame.accent * bump((t - frame.time_s) / time_constant_s)
        return min(1.0, total)


def mix(events: Iterable[VisemeEvent], prosody: Iterable[ProsodyFrame], frame_times_s: Iterable[float],
        config: MixerConfig | None = None) -> list[MixerFrame]:
    """Run a mixer over a whole timeline and sample it at the given (increasing) times."""
    times = list(frame_times_s)
    mixer = VisemeMixer(config, start_time_s=min(times, default=0.0))
    mixer.add_events(events)
    mixer.add_prosody(prosody)
    return [mixer.advance_to(t) for t in times]
