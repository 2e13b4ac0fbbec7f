"""Phoneme timings become the viseme timeline: coarticulated target events for the mixer.

The rules (docs/timeline.md explains them with numbers):
- Each sound shows its shape (phoneme_map) from LEAD_S before it starts, so the mixer's springs have the mouth
  formed as the sound begins; the next shape takes over LEAD_S before the next sound (coarticulation).
- Rounded sounds (/u o w/) round the lips up to ROUNDING_LEAD_S earlier, over consonants that leave the lips free.
- MBP and FV are emphasised: a closure owns the mouth alone for `closure_window_s` before its release, long
  enough for the mixer to reach 0.9 of the shape and hold it CLOSURE_HOLD_S, however short the sound. At the
  release the closure simply ends ("pop open"); the springs close the mouth more slowly than that.
- Pauses: shorter than HOLD_PAUSE_S hold the shape; up to RELAX_PAUSE_S relax it to RELAX_WEIGHT; longer ones
  return to Rest. No non-closure shape lasts less than MIN_SHAPE_S (short ones merge into a neighbour).
- Events cover the audio from its first to its last sample; the last one ends exactly at the audio's end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from photoavatar.speech.ipa import SILENCE
from photoavatar.speech.phoneme_map import TRANSPARENT, shapes_for
from photoavatar.speech.types import AudioChunk, PhonemeTiming, VisemeEvent
from photoavatar.spring import DEFAULT_TIME_CONSTANT_S, settle_time_s
from photoavatar.visemes import CLOSURES, REST

LEAD_S = 0.06
ROUNDING_LEAD_S = 0.2
ROUNDING_WEIGHT = 0.6
ROUNDED = frozenset({"U", "O", "WQ"})
LIP_FREE = frozenset({"E", "L", "R", "CH"})  # shapes the rounding of a following vowel can ride on
MIN_SHAPE_S = 0.07
HOLD_PAUSE_S = 0.12
RELAX_PAUSE_S = 0.35
RELAX_WEIGHT = 0.35
CLOSURE_HOLD_S = 0.04
CLOSURE_MARGIN_S = 0.012  # room for springs that were still moving when the closure began
def closure_window_s(time_constant_s: float = DEFAULT_TIME_CONSTANT_S) -> float:
    """How long before its release a closure must own the mouth to reach 0.9 and hold it CLOSURE_HOLD_S."""
    return settle_time_s(time_constant_s) + CLOSURE_HOLD_S + CLOSURE_MARGIN_S


class TimelineError(ValueError):
    pass


@dataclass
class _Piece:
    """A stretch of one shape on the audio clock (before coarticulation shifts it)."""

    viseme: str | None  # None: a pause
    weight: float
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def is_closure(self) -> bool:
        return self.viseme in CLOSURES


def build_viseme_events(phonemes: Sequence[PhonemeTiming], sample_rate_hz: int,
                        time_constant_s: float = DEFAULT_TIME_CONSTANT_S) -> list[VisemeEvent]:
    """The viseme events of one utterance (seconds of its audio), from its phoneme timings."""
    _check_phonemes(phonemes, sample_rate_hz)
    if not phonemes:
        return []
    start_s = phonemes[0].start_sample / sample_rate_hz
    end_s = phonemes[-1].end_sample / sample_rate_hz
    return _events(phonemes, sample_rate_hz, start_s, end_s, start_s, time_constant_s)


class VisemeTimeline:
    """The incremental form: `add(chunk)` gives each chunk's events as it arrives (chunks are sentences, or
    stretches of one that carry its timings).

    A chunk's first shapes may ramp in during the silence that ended the previous chunk (a look-back), never
    over a shape already sent.
    """

    def __init__(self, sample_rate_hz: int, time_constant_s: float = DEFAULT_TIME_CONSTANT_S, lead_s: float = 0.0):
        """LEAD_S: the first chunk's events may start this long before its first sample (negative times), so
        a closure the utterance starts with ("Papa...") forms before the first sound without added silence."""
        if sample_rate_hz <= 0:
            raise TimelineError(f"sample rate must be positive, got {sample_rate_hz}")
        if lead_s < 0:
            raise TimelineError(f"lead_s is how early the first events may start: give 0 or more, got {lead_s}")
        self.sample_rate_hz = sample_rate_hz
        self.time_constant_s = time_constant_s
        self._end_sample = 0
        self._last_shape_end_s = -lead_s  # where the last non-Rest event sent so far ends

    def add(self, chunk: AudioChunk) -> list[VisemeEvent]:
        """CHUNK's events. A stretch of a longer phrase (chunk.phrase) brings the whole phrase's events with its
        first stretch, so coarticulation looks across the stretches; the later stretches bring none."""
        if chunk.sample_rate_hz != self.sample_rate_hz:
            raise TimelineError(f"chunk at {chunk.sample_rate_hz} Hz in a {self.sample_rate_hz} Hz timeline; "
                                "resample it or start a new timeline")
        if chunk.start_sample != self._end_sample:
            raise TimelineError(f"chunk starts at sample {chunk.start_sample} but the previous one ended at "
                                f"{self._end_sample}; add the chunks in order, without gaps")
        self._end_sample = chunk.end_sample
        if len(chunk.samples) == 0:
            return []
        if chunk.phrase and chunk.phrase[0].start_sample < chunk.start_sample:
            return []  # a later stretch: its events came with the phrase's first
        timings, end_sample = (chunk.phrase, chunk.phrase[-1].end_sample) if chunk.phrase else (chunk.phonemes, chunk.end_sample)
        phonemes = _phonemes_filling(timings, chunk.start_sample, end_sample)
        _check_phonemes(phonemes, self.sample_rate_hz)
        start_s = chunk.start_sample / self.sample_rate_hz
        end_s = end_sample / self.sample_rate_hz
        earliest_s = min(start_s, self._last_shape_end_s)
        events = _events(phonemes, self.sample_rate_hz, start_s, end_s, earliest_s, self.time_constant_s)
        shapes = [e.end_s for e in events if e.viseme != REST]
        if shapes:
            self._last_shape_end_s = max(shapes)
        return events


def _phonemes_filling(timings: Sequence[PhonemeTiming], start_sample: int, end_sample: int) -> list[PhonemeTiming]:
    """TIMINGS, with silence where they leave part of START_SAMPLE..END_SAMPLE untimed (or none are given)."""
    phonemes = list(timings)
    if not phonemes:
        return [PhonemeTiming(SILENCE, start_sample, end_sample - start_sample)]
    if phonemes[0].start_sample > start_sample:
        phonemes.insert(0, PhonemeTiming(SILENCE, start_sample, phonemes[0].start_sample - start_sample))
    if phonemes[-1].end_sample < end_sample:
        phonemes.append(PhonemeTiming(SILENCE, phonemes[-1].end_sample, end_sample - phonemes[-1].end_sample))
    if phonemes[-1].end_sample > end_sample:
        raise TimelineError(f"phoneme timings run to sample {phonemes[-1].end_sample}, past the chunk's audio "
                            f"end {end_sample}; the engine's timings do not match its audio")
    return phonemes


def _check_phonemes(phonemes: Sequence[PhonemeTiming], sample_rate_hz: int) -> None:
    if sample_rate_hz <= 0:
        raise TimelineError(f"sample rate must be positive, got {sample_rate_hz}")
    for before, after in zip(phonemes, phonemes[1:], strict=False):
        if after.start_sample != before.end_sample:
            raise TimelineError(f"phoneme {after.phoneme!r} starts at sample {after.start_sample} but the one "
                                f"before ends at {before.end_sample}; timings must be back to back")
    for phoneme in phonemes:
        if phoneme.duration_samples < 0:
            raise TimelineError(f"phoneme {phoneme.phoneme!r} has a negative duration")


def _events(phonemes: Sequence[PhonemeTiming], rate: int, start_s: float, end_s: float, earliest_s: float,
            time_constant_s: float) -> list[VisemeEvent]:
    pieces = _merge_same(_resolve_transparent(_pieces(phonemes, rate)))
    pieces = _merge_short(pieces)
    shapes, rests = _coarticulate(pieces, start_s, end_s)
    shapes += _rounding(pieces)
    closures = _closure_windows(pieces, time_constant_s, earliest_s)
    events = [*closures, *_carve(shapes, closures), *_carve(rests, closures)]
    return _finish(events, earliest_s, end_s)


def _pieces(phonemes: Sequence[PhonemeTiming], rate: int) -> list[_Piece]:
    pieces: list[_Piece] = []
    for phoneme in phonemes:
        start, end = phoneme.start_sample / rate, phoneme.end_sample / rate
        shapes = shapes_for(phoneme.phoneme)
        if not shapes:
            pieces.append(_Piece(None, 0.0, start, end))
            continue
        step = (end - start) / len(shapes)  # a glide spends equal time on each shape
        for index, shape in enumerate(shapes):
            piece_end = end if index == len(shapes) - 1 else start + (index + 1) * step
            pieces.append(_Piece(shape.viseme, shape.weight, start + index * step, piece_end))
    return pieces


def _resolve_transparent(pieces: list[_Piece]) -> list[_Piece]:
    """h, ʔ and bare marks take the shape of the next sound, else of the previous one, else they are a pause."""
    resolved = list(pieces)
    for index, piece in enumerate(resolved):
        if piece.viseme != TRANSPARENT:
            continue
        donor = _neighbour_shape(resolved, index, +1) or _neighbour_shape(resolved, index, -1)
        resolved[index] = replace(piece, viseme=donor.viseme if donor else None, weight=donor.weight if donor else 0.0)
    return resolved


def _neighbour_shape(pieces: list[_Piece], index: int, step: int) -> _Piece | None:
    index += step
    while 0 <= index < len(pieces):
        if pieces[index].viseme is None:
            return None
        if pieces[index].viseme != TRANSPARENT:
            return pieces[index]
        index += step
    return None


def _merge_same(pieces: list[_Piece]) -> list[_Piece]:
    """Join neighbours with the same shape (two pauses, "mm", a glide ending where the next sound begins)."""
    merged: list[_Piece] = []
    for piece in pieces:
        if merged and merged[-1].viseme == piece.viseme and not piece.is_closure:  # each release keeps its window
            last = merged[-1]
            merged[-1] = _Piece(last.viseme, max(last.weight, piece.weight), last.start_s, piece.end_s)
        else:
            merged.append(piece)
    return merged


def _merge_short(pieces: list[_Piece]) -> list[_Piece]:
    """Shapes shorter than MIN_SHAPE_S merge with a speaking neighbour; the stronger shape of the two wins."""
    pieces = list(pieces)
    while True:
        index = _shortest_mergeable(pieces)
        if index is None:
            return pieces
        partner = _merge_partner(pieces, index)
        low, high = sorted((index, partner))
        first, second = pieces[low], pieces[high]
        winner = max((first, second), key=lambda p: (p.weight, p.duration_s))
        pieces[low:high + 1] = [_Piece(winner.viseme, winner.weight, first.start_s, second.end_s)]
        pieces = _merge_same(pieces)


def _is_free_shape(piece: _Piece) -> bool:
    return piece.viseme is not None and not piece.is_closure


def _shortest_mergeable(pieces: list[_Piece]) -> int | None:
    candidates = [i for i, piece in enumerate(pieces)
                  if _is_free_shape(piece) and piece.duration_s < MIN_SHAPE_S and _merge_partner(pieces, i) is not None]
    return min(candidates, key=lambda i: pieces[i].duration_s, default=None)


def _merge_partner(pieces: list[_Piece], index: int) -> int | None:
    neighbours = [i for i in (index - 1, index + 1) if 0 <= i < len(pieces) and _is_free_shape(pieces[i])]
    return min(neighbours, key=lambda i: pieces[i].duration_s, default=None)


def _coarticulate(pieces: list[_Piece], start_s: float, end_s: float) -> tuple[list[VisemeEvent], list[VisemeEvent]]:
    """Shape events, each from LEAD_S before its sound to LEAD_S before the next; pauses by their length."""
    shapes: list[VisemeEvent] = []
    rests: list[VisemeEvent] = []
    for index, piece in enumerate(pieces):
        if piece.viseme is None:
            rests += _pause_events(pieces, index, shapes, start_s, end_s)
            continue
        if piece.is_closure:
            continue  # closures get their own windows
        begin = piece.start_s - LEAD_S
        if index + 1 < len(pieces) and pieces[index + 1].viseme is not None:
            finish = pieces[index + 1].start_s - LEAD_S
        else:
            finish = piece.end_s  # before a pause: decided by the pause
        shapes.append(VisemeEvent(piece.viseme, begin, finish, piece.weight))
    return shapes, rests


def _pause_events(pieces: list[_Piece], index: int, shapes: list[VisemeEvent], start_s: float,
                  end_s: float) -> list[VisemeEvent]:
    """Hold a short pause, relax during a medium one, rest in a long one (and before the first sound)."""
    pause = pieces[index]
    before = pieces[index - 1] if index > 0 else None
    after = pieces[index + 1] if index + 1 < len(pieces) else None
    rest_end = after.start_s - LEAD_S if after else end_s
    if before is None:
        return [VisemeEvent(REST, start_s, rest_end)]
    if pause.duration_s < HOLD_PAUSE_S and after is not None:
        _extend_last(shapes, before, rest_end)
        return []
    if pause.duration_s <= RELAX_PAUSE_S and after is not None and not before.is_closure:
        shapes.append(VisemeEvent(before.viseme, pause.start_s, rest_end, before.weight * RELAX_WEIGHT))
        return []
    return [VisemeEvent(REST, pause.start_s, rest_end)]


def _extend_last(shapes: list[VisemeEvent], before: _Piece, until_s: float) -> None:
    if before.is_closure:  # a closure's window is fixed by its release; the mouth opens after it
        shapes.append(VisemeEvent(REST, before.end_s, until_s))
    elif shapes:
        shapes[-1] = replace(shapes[-1], end_s=until_s)


def _rounding(pieces: list[_Piece]) -> list[VisemeEvent]:
    """Anticipatory rounding: lips round during lip-free consonants up to ROUNDING_LEAD_S before /u o w/."""
    events = []
    for index, piece in enumerate(pieces):
        if piece.viseme not in ROUNDED or piece.weight < 1.0:
            continue
        first = index
        while (first > 0 and pieces[first - 1].viseme in LIP_FREE and pieces[first - 1].weight < 1.0
               and piece.start_s - pieces[first - 1].start_s <= ROUNDING_LEAD_S):
            first -= 1
        if first < index:
            begin = max(pieces[first].start_s - LEAD_S, piece.start_s - ROUNDING_LEAD_S)
            events.append(VisemeEvent(piece.viseme, begin, piece.end_s - LEAD_S, ROUNDING_WEIGHT))
    return events


@dataclass
class _Window:
    viseme: str
    start_s: float
    end_s: float  # the release


def _closure_windows(pieces: list[_Piece], time_constant_s: float, earliest_s: float) -> list[VisemeEvent]:
    """Each MBP/FV owns the mouth from `closure_window_s` (or LEAD_S, if longer) before its release to it."""
    full = closure_window_s(time_constant_s)
    reach = settle_time_s(time_constant_s) + CLOSURE_MARGIN_S  # what a squeezed FV still gets
    windows: list[_Window] = []
    for piece in (p for p in pieces if p.is_closure):
        window = _Window(piece.viseme, min(piece.start_s - LEAD_S, piece.end_s - full), piece.end_s)
        previous = windows[-1] if windows else None
        if previous is None or window.start_s >= previous.end_s:
            windows.append(window)
        elif previous.viseme == window.viseme:
            previous.end_s = window.end_s
            previous.start_s = min(previous.start_s, window.start_s)
        elif window.viseme == "MBP":  # lips pressed beat lip on teeth: the FV before moves earlier
            floor_s = windows[-2].end_s if len(windows) > 1 else -math.inf  # never into the closure before it
            previous.end_s = window.start_s
            previous.start_s = max(floor_s, min(previous.start_s, previous.end_s - reach))
            if previous.end_s <= previous.start_s:
                windows.pop()
            windows.append(window)
        else:  # FV right after MBP: it forms after the release, reaching its shape a little late
            window.start_s = previous.end_s
            window.end_s = max(window.end_s, previous.end_s + reach)
            windows.append(window)
    return [VisemeEvent(w.viseme, max(w.start_s, earliest_s), w.end_s) for w in windows if w.end_s > max(w.start_s, earliest_s)]


def _carve(events: list[VisemeEvent], closures: list[VisemeEvent]) -> list[VisemeEvent]:
    """Remove the closure windows from other events, so a closure has the mouth to itself."""
    carved = events
    for closure in closures:
        next_round = []
        for event in carved:
            if event.end_s <= closure.start_s or event.start_s >= closure.end_s:
                next_round.append(event)
                continue
            if event.start_s < closure.start_s:
                next_round.append(replace(event, end_s=closure.start_s))
            if event.end_s > closure.end_s:
                next_round.append(replace(event, start_s=closure.end_s))
        carved = next_round
    return carved


def _finish(events: list[VisemeEvent], earliest_s: float, end_s: float) -> list[VisemeEvent]:
    """Clip to the audio, drop empty events, sort, and make the timeline end at the audio's last sample."""
    clipped = [replace(e, start_s=max(e.start_s, earliest_s), end_s=min(e.end_s, end_s)) for e in events]
    clipped = [e for e in clipped if e.end_s - e.start_s > 1e-9]
    clipped.sort(key=lambda e: (e.start_s, e.end_s))
    last_end = max((e.end_s for e in clipped), default=earliest_s)
    if last_end < end_s:
        clipped.append(VisemeEvent(REST, last_end, end_s))
    return clipped


def lead_in_samples(phonemes: Sequence[PhonemeTiming], sample_rate_hz: int,
                    time_constant_s: float = DEFAULT_TIME_CONSTANT_S) -> int:
    """Silence to put before an utterance whose first sounds are a closure ("Bob...") so the lips can close.

    Speakers close their lips before the first /b/ is heard; audio that starts at the release leaves the
    mixer no time, so the pipeline prepends this much silence (0 when the first closure has room).
    """
    if not phonemes:
        return 0
    origin = phonemes[0].start_sample
    needed_s = closure_window_s(time_constant_s)
    for phoneme in phonemes:
        release_s = (phoneme.end_sample - origin) / sample_rate_hz
        if release_s >= needed_s:
            return 0
        shapes = shapes_for(phoneme.phoneme)
        if any(shape.viseme in CLOSURES for shape in shapes):
            return math.ceil((needed_s - release_s) * sample_rate_hz)
    return 0
