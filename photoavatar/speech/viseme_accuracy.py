"""How close an estimated viseme timeline is to a true one: onset error and bilabial closures found.

Both timelines are reduced to the shape that dominates each 5 ms step (the heaviest event covering it, the
later one on a tie); an onset is a step where the dominant shape changes to a speaking shape. The two onset
sequences are matched in order, each true onset to at most one estimated onset of the same shape less than
MATCH_TOLERANCE_S away (the most matches, then the least total error: a longest common subsequence by dynamic
programming), and the error of each match is its time difference; `onsets_matched` says what share of true
onsets found a partner. A true MBP closure is found when an estimated MBP event overlaps it in time.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from photoavatar.speech.types import PhonemeTiming, VisemeEvent
from photoavatar.visemes import REST

STEP_S = 0.005
MATCH_TOLERANCE_S = 0.2  # about a syllable: farther apart, two onsets are not the same sound
BILABIAL = "MBP"


@dataclass(frozen=True)
class Spoken:
    """Synthesised speech with its true timing: the reference these measurements compare against."""

    text: str
    samples: np.ndarray
    sample_rate_hz: int
    phonemes: tuple[PhonemeTiming, ...]


def speak(engine, text: str) -> Spoken:
    """TEXT synthesised by ENGINE (a SpeechEngine whose phoneme timings are its own, e.g. Piper) in one piece."""
    chunks = list(engine.synthesize(text))
    return Spoken(text, np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate_hz,
                  tuple(p for c in chunks for p in c.phonemes))


@dataclass(frozen=True)
class Onset:
    viseme: str
    time_s: float


@dataclass(frozen=True)
class VisemeAccuracy:
    onset_errors_s: tuple[float, ...]  # |estimated - true| per matched onset
    true_onsets: int
    true_closures: int
    closures_found: int
    estimated_closures: int
    estimated_closures_true: int  # estimated MBP events that overlap a true one

    @property
    def onset_median_ms(self) -> float:
        return 1000 * statistics.median(self.onset_errors_s) if self.onset_errors_s else float("nan")

    @property
    def onsets_matched(self) -> float:
        return len(self.onset_errors_s) / self.true_onsets if self.true_onsets else float("nan")

    @property
    def closure_recall(self) -> float:
        return self.closures_found / self.true_closures if self.true_closures else float("nan")

    @property
    def closure_precision(self) -> float:
        return self.estimated_closures_true / self.estimated_closures if self.estimated_closures else float("nan")

    def __add__(self, other: VisemeAccuracy) -> VisemeAccuracy:
        return VisemeAccuracy(self.onset_errors_s + other.onset_errors_s, self.true_onsets + other.true_onsets,
                              self.true_closures + other.true_closures, self.closures_found + other.closures_found,
                              self.estimated_closures + other.estimated_closures,
                              self.estimated_closures_true + other.estimated_closures_true)


def dominant_onsets(events: Sequence[VisemeEvent]) -> list[Onset]:
    """Where the dominant speaking shape changes, on a STEP_S grid."""
    if not events:
        return []
    end_s = max(e.end_s for e in events)
    times = np.arange(0.0, end_s, STEP_S) + STEP_S / 2
    best_weight = np.zeros(len(times))
    label = np.full(len(times), REST, dtype=object)
    for event in sorted(events, key=lambda e: e.start_s):
        inside = (times >= event.start_s) & (times < event.end_s) & (event.weight >= best_weight)
        if event.viseme == REST:
            inside &= best_weight == 0
        best_weight[inside] = event.weight if event.viseme != REST else 0.0
        label[inside] = event.viseme
    onsets = []
    for index in range(len(times)):
        if label[index] != REST and (index == 0 or label[index] != label[index - 1]):
            onsets.append(Onset(str(label[index]), float(times[index] - STEP_S / 2)))
    return onsets


def compare(true_events: Sequence[VisemeEvent], estimated: Sequence[VisemeEvent]) -> VisemeAccuracy:
    truth, guess = dominant_onsets(true_events), dominant_onsets(estimated)
    errors = _matched_errors(truth, guess)
    true_closures = [e for e in true_events if e.viseme == BILABIAL]
    guessed_closures = [e for e in estimated if e.viseme == BILABIAL]
    found = sum(any(_overlap(t, g) for g in guessed_closures) for t in true_closures)
    right = sum(any(_overlap(g, t) for t in true_closures) for g in guessed_closures)
    return VisemeAccuracy(tuple(errors), len(truth), len(true_closures), found, len(guessed_closures), right)


def _matched_errors(truth: list[Onset], guess: list[Onset]) -> tuple[float, ...]:
    """Errors of the in-order matching with the most matches, then the least total error."""
    rows, cols = len(truth) + 1, len(guess) + 1
    count = np.zeros((rows, cols), dtype=np.int64)
    cost = np.zeros((rows, cols))
    for i in range(1, rows):
        for j in range(1, cols):
            best = max((count[i - 1, j], -cost[i - 1, j]), (count[i, j - 1], -cost[i, j - 1]))
            error = abs(truth[i - 1].time_s - guess[j - 1].time_s)
            if truth[i - 1].viseme == guess[j - 1].viseme and error < MATCH_TOLERANCE_S:
                best = max(best, (count[i - 1, j - 1] + 1, -(cost[i - 1, j - 1] + error)))
            count[i, j], cost[i, j] = best[0], -best[1]
    errors = []
    i, j = rows - 1, cols - 1
    while i > 0 and j > 0:
        error = abs(truth[i - 1].time_s - guess[j - 1].time_s)
        if (truth[i - 1].viseme == guess[j - 1].viseme and error < MATCH_TOLERANCE_S
                and count[i, j] == count[i - 1, j - 1] + 1 and np.isclose(cost[i, j], cost[i - 1, j - 1] + error)):
            errors.append(error)
            i, j = i - 1, j - 1
        elif (count[i - 1, j], -cost[i - 1, j]) >= (count[i, j - 1], -cost[i, j - 1]):
            i -= 1
        else:
            j -= 1
    return tuple(reversed(errors))


def _overlap(a: VisemeEvent, b: VisemeEvent) -> bool:
    return a.start_s < b.end_s and b.start_s < a.end_s
