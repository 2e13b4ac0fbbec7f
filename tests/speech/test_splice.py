"""The short head + whole sentence splice: exact timings, and no seam the unsplit sentence does not have."""

from __future__ import annotations

import numpy as np
import pytest

from photoavatar.speech import splice
from photoavatar.speech.piper_engine import group_phonemes
from photoavatar.speech.prosody import analyze_prosody
from photoavatar.speech.timeline import VisemeTimeline
from photoavatar.speech.types import AudioChunk, PhonemeTiming

RATE = 22050
SENTENCE = "Thanks for asking about the weather this morning."


def _run(voice, phonemes: list[str]) -> AudioChunk:
    samples, symbols, id_samples = voice.speak(phonemes)
    return AudioChunk(samples, voice.sample_rate_hz, 0, tuple(group_phonemes(symbols, id_samples, 0)))


@pytest.fixture(scope="module")
def voice(piper_engine):
    return piper_engine.loaded_voice()


def _spliced(voice, phonemes):
    part = splice.play_head(_run(voice, splice.head_phonemes(phonemes)))
    whole = _run(voice, phonemes)
    return part, whole, splice.continue_from_whole(part, whole)


def _quiet_run_ms(samples: np.ndarray, at_sample: int) -> float:
    """Length of the stretch of 10 ms frames under -45 dBFS that contains AT_SAMPLE (0 if it is loud)."""
    frames = analyze_prosody(samples, RATE)
    times = np.array([f.time_s for f in frames])
    quiet = np.array([f.loudness_db < -45 for f in frames])
    centre = int(np.argmin(np.abs(times - at_sample / RATE)))
    if not quiet[centre]:
        return 0.0
    lo, hi = centre, centre
    while lo > 0 and quiet[lo - 1]:
        lo -= 1
    while hi < len(quiet) - 1 and quiet[hi + 1]:
        hi += 1
    return (hi - lo + 1) * 10.0


def test_head_is_a_prefix_with_lookahead(voice):
    phonemes = voice.phonemize(SENTENCE)[0]
    head = splice.head_phonemes(phonemes, head_words=2, lookahead_words=1)
    assert phonemes[:len(head)] == head
    assert splice.word_count(head) == 3
    assert splice.head_phonemes(voice.phonemize("Thanks a lot.")[0]) is None  # too short to be worth it


def test_spliced_chunks_tile_the_audio_and_the_timeline_accepts_them(voice):
    part, whole, rest = _spliced(voice, voice.phonemize(SENTENCE)[0])
    assert part.chunk.start_sample == 0 and rest.start_sample == part.chunk.end_sample
    for chunk in (part.chunk, rest):
        assert sum(t.duration_samples for t in chunk.phonemes) == len(chunk.samples)
    timeline = VisemeTimeline(RATE)
    assert timeline.add(part.chunk) and timeline.add(rest)
    # after the join it is the whole run, sample for sample
    tail = rest.samples[-len(whole.samples) // 2:]
    assert np.array_equal(tail, whole.samples[-len(tail):])


def test_the_join_keeps_the_unsplit_pause_and_loudness(voice):
    """A loose bound that a naive split (head alone, then the rest alone) fails: it adds a phrase-end pause."""
    phonemes = voice.phonemize(SENTENCE)[0]
    part, whole, rest = _spliced(voice, phonemes)
    audio = np.concatenate([part.chunk.samples, rest.samples])
    whole_gap = splice.word_gaps(whole.phonemes)[part.gap_index]
    silence_at_join = [t for t in rest.phonemes if splice.is_silence(t.phoneme)][0]
    assert silence_at_join.duration_samples == whole_gap[1] - whole_gap[0]  # the whole run's own pause
    spliced_pause = _quiet_run_ms(audio, part.gap_start_sample)
    unsplit_pause = _quiet_run_ms(whole.samples, whole_gap[0])
    assert abs(spliced_pause - unsplit_pause) <= 40.0

    spaces = [i for i, s in enumerate(phonemes) if s == splice.SILENCE]
    head_alone, rest_alone = _run(voice, phonemes[:spaces[1]]), _run(voice, phonemes[spaces[1] + 1:])
    naive = np.concatenate([head_alone.samples, rest_alone.samples])
    assert _quiet_run_ms(naive, len(head_alone.samples)) - unsplit_pause > 60.0


def test_no_click_at_the_join(voice):
    part, _, rest = _spliced(voice, voice.phonemize(SENTENCE)[0])
    audio = np.concatenate([part.chunk.samples, rest.samples]).astype(np.float64)
    steps = np.abs(np.diff(audio))
    join = part.gap_start_sample
    assert steps[join - 200:join + 400].max() <= 2 * np.percentile(steps, 99.9)


def _tone_chunk(pattern: list[tuple[str, int]], seed: int) -> AudioChunk:
    """Loud noise for a sound, near silence for a pause, timed as PATTERN (phoneme, samples)."""
    rng = np.random.default_rng(seed)
    timings, parts, position = [], [], 0
    for phoneme, samples in pattern:
        level = 40 if splice.is_silence(phoneme) else 8000
        parts.append((rng.standard_normal(samples) * level).astype(np.int16))
        timings.append(PhonemeTiming(phoneme, position, samples))
        position += samples
    return AudioChunk(np.concatenate(parts), RATE, 0, tuple(timings))


def test_join_on_synthetic_runs_is_in_the_gap_and_exact_after_it():
    words = [("a", 4000), (" ", 1500), ("b", 4000), (" ", 900), ("c", 4000), (" ", 600)]
    head = _tone_chunk(words, 1)
    whole = _tone_chunk([("a", 3500), (" ", 1200), ("b", 4500), (" ", 700), ("c", 3000), (" ", 800), ("d", 5000)], 2)
    part = splice.play_head(head, head_words=2)
    assert part.gap_start_sample == 8000 + 1500
    rest = splice.continue_from_whole(part, whole)
    whole_gap = splice.word_gaps(whole.phonemes)[1]
    assert len(part.chunk.samples) + len(rest.samples) == part.gap_start_sample + (whole.end_sample - whole_gap[0])
    # the whole run's last word comes through untouched, at its place after the join
    assert np.array_equal(rest.samples[-5000:], whole.samples[-5000:])
    with pytest.raises(ValueError, match="word gaps"):
        splice.play_head(head, head_words=5)


def test_a_late_continuation_is_cut_shorter_so_it_comes_in_time(piper_engine):
    """Many sessions starting at once: the whole run after the head is shortened to what fits before the head
    has played (stages.deadline), and the rest follows as a run of its own; with time to spare it is whole."""
    import time

    from photoavatar.speech import stages
    from photoavatar.speech.piper_engine import _in_time

    voice = piper_engine.loaded_voice()
    phonemes = voice.phonemize("The quick brown fox jumps over the lazy dog and runs all the way home.")[0]
    head = splice.head_phonemes(phonemes)
    voice.speak(phonemes)  # a run to learn the cost from
    assert _in_time(voice, phonemes, len(head)) == (phonemes, [])  # no deadline given
    with stages.deadline(time.monotonic() + 60):
        assert _in_time(voice, phonemes, len(head)) == (phonemes, [])
    cost_s = voice.run_cost_s(phonemes)
    with stages.deadline(time.monotonic() + cost_s / 2):
        whole, rest = _in_time(voice, phonemes, len(head))
    assert len(head) < len(whole) < len(phonemes) and rest
    assert whole + [splice.SILENCE] + rest == phonemes  # cut at a word gap, nothing lost
    assert voice.run_cost_s(whole) <= cost_s / 2
