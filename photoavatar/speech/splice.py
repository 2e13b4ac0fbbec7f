"""A short head now, the whole sentence's own voice after it: the first chunk made short without a seam.

The listener waits for the first model run, and a run costs about 15 ms plus 45 ms per second of audio
(bench/seam.py prints it), so the first words are synthesised alone ("the head") and played at once, while
the whole piece is synthesised next. Playback then continues from the whole piece's audio at the gap after
the head's last word: same gap position in both runs, so the pause heard there is the whole run's own pause,
and everything after the join (pitch contour, timing, loudness) is the unsplit sentence's. The head run is
given the next word as look-ahead (it is synthesised but never played) so its last word is not said as the
end of a phrase. The join is a short raised-cosine crossfade at the quietest point of that gap.

The head is played up to HOLD_S before the gap; that tail is held back, so the crossfade can be placed once
both runs are known. Phoneme timings follow the audio exactly: the head run's up to the join, the whole
run's after it, so the viseme timeline is as exact as for any other chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from photoavatar.speech.ipa import SILENCE, is_silence  # a pause is labelled " " or with its punctuation
from photoavatar.speech.types import AudioChunk, PhonemeTiming

HEAD_WORDS = 2  # words played from the head run: about 0.6 s of speech for about 40 ms of synthesis
LOOKAHEAD_WORDS = 1  # synthesised after the head so its last word keeps a phrase-medial pitch and length
MIN_WORDS_TO_SPLIT = HEAD_WORDS + 2  # shorter pieces cost little more than their head: synthesise them whole
HOLD_S = 0.020  # the head's audio held back before the gap, room to place the crossfade
CROSSFADE_S = 0.005
SEARCH_STEP_S = 0.001


def word_count(phonemes: list[str]) -> int:
    """Words in one sentence's phonemes (Piper writes a space between words)."""
    return len([word for word in "".join(phonemes).split(SILENCE) if word.strip()])


def head_phonemes(phonemes: list[str], head_words: int = HEAD_WORDS,
                  lookahead_words: int = LOOKAHEAD_WORDS) -> list[str] | None:
    """The phonemes to synthesise for the head (its words plus the look-ahead), or None: not worth a split."""
    if head_words < 1 or word_count(phonemes) < max(MIN_WORDS_TO_SPLIT, head_words + lookahead_words + 1):
        return None
    spaces = [i for i, symbol in enumerate(phonemes) if symbol == SILENCE]
    words_kept = head_words + lookahead_words
    return list(phonemes[:spaces[words_kept - 1]]) if len(spaces) >= words_kept else None


def word_gaps(phonemes: tuple[PhonemeTiming, ...], include_end: bool = False) -> list[tuple[int, int]]:
    """(start, end) samples of each silence after a word, in order: between two words, and with INCLUDE_END
    the silence after the last word too (never the one before the first)."""
    gaps: list[tuple[int, int]] = []
    seen_speech = False
    pending: tuple[int, int] | None = None
    for timing in phonemes:
        if is_silence(timing.phoneme):
            if seen_speech:
                start = pending[0] if pending else timing.start_sample
                pending = (start, timing.end_sample)
            continue
        if pending:
            gaps.append(pending)
            pending = None
        seen_speech = True
    if pending and include_end:
        gaps.append(pending)
    return gaps


@dataclass(frozen=True)
class HeadPart:
    """The head run, cut where it plays now; the rest is held for the join with the whole run."""

    chunk: AudioChunk  # plays at once
    held: AudioChunk  # the head run from chunk.end_sample on (its tail, look-ahead and end pad)
    gap_start_sample: int  # utterance sample where the gap after the head's last word begins
    gap_index: int  # which word gap of the runs the join is in (0: after the first word)


def play_head(head_run: AudioChunk, head_words: int = HEAD_WORDS) -> HeadPart:
    """Split the head run (timings utterance-relative, from head_run.start_sample) into now and held."""
    gaps = word_gaps(head_run.phonemes, include_end=True)
    if len(gaps) < head_words:
        raise ValueError(f"the head run has {len(gaps)} word gaps; {head_words} are needed to play "
                         f"{head_words} words from it")
    gap_start = gaps[head_words - 1][0]
    hold = round(HOLD_S * head_run.sample_rate_hz)
    cut = max(head_run.start_sample, gap_start - hold)
    now, held = _split(head_run, cut)
    return HeadPart(now, held, gap_start, head_words - 1)


def continue_from_whole(part: HeadPart, whole_run: AudioChunk) -> AudioChunk:
    """The audio after part.chunk: the held head tail crossfaded into the whole run in the same word gap.

    WHOLE_RUN's timings start at its own start_sample; the result starts where part.chunk ends.
    """
    rate = whole_run.sample_rate_hz
    if rate != part.held.sample_rate_hz:
        raise ValueError(f"the whole run is at {rate} Hz, the head at {part.held.sample_rate_hz} Hz")
    gaps = word_gaps(whole_run.phonemes)
    if len(gaps) <= part.gap_index:
        raise ValueError(f"the whole run has {len(gaps)} word gaps; the head joins at gap {part.gap_index + 1}: "
                         "synthesise the whole run from the same phonemes as the head")
    head_gap = _gap_at(part.held.phonemes, part.gap_start_sample)
    whole_gap = gaps[part.gap_index]
    offset = _quietest_offset(part, head_gap, whole_run, whole_gap)
    head_cut, whole_cut = head_gap[0] + offset, whole_gap[0] + offset
    kept, _ = _split(part.held, head_cut)
    _, rest = _split(whole_run, whole_cut)
    fade = round(CROSSFADE_S * rate)
    return _join(kept, part.held, rest, whole_run, whole_cut, fade)


def _gap_at(phonemes: tuple[PhonemeTiming, ...], start_sample: int) -> tuple[int, int]:
    end = start_sample
    for timing in phonemes:
        if is_silence(timing.phoneme) and timing.start_sample <= end < timing.end_sample:
            end = timing.end_sample
    return start_sample, max(end, start_sample)


def _quietest_offset(part: HeadPart, head_gap: tuple[int, int], whole: AudioChunk,
                     whole_gap: tuple[int, int]) -> int:
    """Offset from the gap start (same in both runs) where the two signals are quietest together."""
    rate = whole.sample_rate_hz
    half_fade = round(CROSSFADE_S * rate / 2)
    earliest = part.held.start_sample - head_gap[0] + half_fade
    latest = min(head_gap[1] - head_gap[0], whole_gap[1] - whole_gap[0])
    latest = min(latest, part.held.end_sample - head_gap[0] - half_fade, whole.end_sample - whole_gap[0] - half_fade)
    if latest <= earliest:
        return max(earliest, min(0, latest))
    step = max(1, round(SEARCH_STEP_S * rate))
    best, best_energy = earliest, float("inf")
    for offset in range(earliest, latest + 1, step):
        energy = (_rms(part.held, head_gap[0] + offset, half_fade) + _rms(whole, whole_gap[0] + offset, half_fade))
        if energy < best_energy:
            best, best_energy = offset, energy
    return best


def _rms(chunk: AudioChunk, centre_sample: int, half_width: int) -> float:
    lo = max(0, centre_sample - half_width - chunk.start_sample)
    hi = min(len(chunk.samples), centre_sample + half_width - chunk.start_sample)
    if hi <= lo:
        return 0.0
    window = chunk.samples[lo:hi].astype(np.float64)
    return float(np.sqrt(np.mean(window * window)))


def _split(chunk: AudioChunk, at_sample: int) -> tuple[AudioChunk, AudioChunk]:
    """CHUNK before and from AT_SAMPLE (utterance-relative); a timing across the cut is split in two."""
    at = min(max(at_sample, chunk.start_sample), chunk.end_sample)
    index = at - chunk.start_sample
    before = AudioChunk(chunk.samples[:index], chunk.sample_rate_hz, chunk.start_sample,
                        _clip(chunk.phonemes, chunk.start_sample, at), chunk.text)
    after = AudioChunk(chunk.samples[index:], chunk.sample_rate_hz, at,
                       _clip(chunk.phonemes, at, chunk.end_sample), chunk.text)
    return before, after


def _clip(phonemes: tuple[PhonemeTiming, ...], start: int, end: int) -> tuple[PhonemeTiming, ...]:
    clipped = []
    for timing in phonemes:
        lo, hi = max(timing.start_sample, start), min(timing.end_sample, end)
        if hi > lo:
            clipped.append(PhonemeTiming(timing.phoneme, lo, hi - lo, timing.stress))
    return tuple(clipped)


def _join(kept: AudioChunk, held: AudioChunk, rest: AudioChunk, whole: AudioChunk, whole_cut: int,
          fade: int) -> AudioChunk:
    """KEPT (held head audio up to the cut), then REST (whole run from its cut) with a crossfade at the cut."""
    head_cut = kept.end_sample
    half = fade // 2
    shift = head_cut - whole_cut  # whole-run sample + shift = utterance sample
    head_index, whole_index = head_cut - held.start_sample, whole_cut - whole.start_sample
    lo = min(half, len(kept.samples), whole_index)
    hi = min(fade - half, len(held.samples) - head_index, len(rest.samples))
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(lo + hi) + 0.5) / max(1, lo + hi))
    head_part = held.samples[head_index - lo:head_index + hi].astype(np.float64)
    whole_part = whole.samples[whole_index - lo:whole_index + hi].astype(np.float64)
    mixed = np.clip(np.round(head_part * (1 - ramp) + whole_part * ramp), -32768, 32767).astype(np.int16)
    samples = np.concatenate([kept.samples[:len(kept.samples) - lo], mixed, rest.samples[hi:]])
    timings = _merge_silences(kept.phonemes + tuple(
        PhonemeTiming(t.phoneme, t.start_sample + shift, t.duration_samples, t.stress) for t in rest.phonemes))
    return AudioChunk(samples, whole.sample_rate_hz, kept.start_sample, timings, whole.text)


def _merge_silences(phonemes: tuple[PhonemeTiming, ...]) -> tuple[PhonemeTiming, ...]:
    merged: list[PhonemeTiming] = []
    for timing in phonemes:
        previous = merged[-1] if merged else None
        if previous and is_silence(previous.phoneme) and is_silence(timing.phoneme):
            merged[-1] = PhonemeTiming(previous.phoneme, previous.start_sample,
                                       previous.duration_samples + timing.duration_samples)
        else:
            merged.append(timing)
    return tuple(merged)
