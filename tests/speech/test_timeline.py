"""The viseme timeline on real Piper timings: closures reach their shape, pauses, no flicker, exact ends."""

from __future__ import annotations

import numpy as np
import pytest

from photoavatar.animate.mixer import VisemeMixer, mix
from photoavatar.speech.ipa import SILENCE
from photoavatar.speech.phoneme_map import shapes_for
from photoavatar.speech.piper_engine import group_phonemes
from photoavatar.speech.timeline import (
    MIN_SHAPE_S,
    RELAX_WEIGHT,
    TimelineError,
    VisemeTimeline,
    build_viseme_events,
    closure_window_s,
    lead_in_samples,
)
from photoavatar.speech.types import AudioChunk, PhonemeTiming
from photoavatar.spring import settle_time_s

BILABIAL = ["Bob bought a big blue paper map.", "My mom made maple muffins.", "Pam picked a pumpkin."]
LABIODENTAL = ["Five vivid fevers of Vivian.", "Of course we move with the wave of a hand."]
SPEEDS = {"normal": 1.0, "fast": 0.6}


def synthesize(engine, text: str, length_scale: float = 1.0) -> list[PhonemeTiming]:
    """Real Piper timings for one sentence at a speaking rate (length_scale < 1 is faster)."""
    voice = engine.loaded_voice()
    (phonemes,) = voice.phonemize(text)
    phrase = voice.begin(phonemes, length_scale)
    return group_phonemes(phrase.symbols, phrase.id_samples)


def with_lead_in(phonemes: list[PhonemeTiming], rate: int) -> list[PhonemeTiming]:
    pad = lead_in_samples(phonemes, rate)
    shifted = [PhonemeTiming(p.phoneme, p.start_sample + pad, p.duration_samples, p.stress) for p in phonemes]
    return [PhonemeTiming(SILENCE, 0, pad), *shifted] if pad else shifted


def mixed_weights(events, end_s: float, viseme: str, step_s: float = 0.001):
    times = np.arange(0.0, end_s + step_s, step_s)
    return times, np.array([frame.weights[viseme] for frame in mix(events, [], times)])


def releases(phonemes, rate: int, viseme: str) -> list[tuple[float, str | None]]:
    """Release time of each sound ending in VISEME, with the shape of the sound right before it."""
    found = []
    for index, phoneme in enumerate(phonemes):
        shapes = shapes_for(phoneme.phoneme)
        if shapes and shapes[-1].viseme == viseme:
            before = shapes_for(phonemes[index - 1].phoneme) if index else ()
            found.append((phoneme.end_sample / rate, before[-1].viseme if before else None))
    return found


@pytest.fixture(scope="module")
def rate(piper_engine) -> int:
    return piper_engine.loaded_voice().sample_rate_hz


def shape_around_releases(engine, rate: int, text: str, speed: str, viseme: str):
    """(times, VISEME's mixed weight, releases, phonemes) for one real sentence with its lead-in; at least 4
    releases."""
    phonemes = with_lead_in(synthesize(engine, text, SPEEDS[speed]), rate)
    times, weights = mixed_weights(build_viseme_events(phonemes, rate), phonemes[-1].end_sample / rate, viseme)
    found = releases(phonemes, rate, viseme)
    assert len(found) >= 4
    return times, weights, found, phonemes


def held_before(times, weights, release_s: float, hold_s: float = 0.040):
    """The weights over the HOLD_S seconds before a release."""
    return weights[(times >= release_s - hold_s) & (times < release_s)]


@pytest.mark.parametrize("speed", SPEEDS)
@pytest.mark.parametrize("text", BILABIAL)
def test_every_bilabial_closes_fully_for_40_ms_before_its_release(piper_engine, rate, text, speed):
    times, weights, found, _ = shape_around_releases(piper_engine, rate, text, speed, "MBP")
    for release_s, _ in found:
        hold = held_before(times, weights, release_s)
        assert len(hold) >= 39 and hold.min() >= 0.9, f"{text} ({speed}): MBP {hold.min():.2f} before {release_s:.3f}s"


@pytest.mark.parametrize("speed", SPEEDS)
@pytest.mark.parametrize("text", LABIODENTAL)
def test_every_labiodental_reaches_its_shape(piper_engine, rate, text, speed):
    times, weights, found, phonemes = shape_around_releases(piper_engine, rate, text, speed, "FV")
    bilabial_releases = [r for r, _ in releases(phonemes, rate, "MBP")]
    for release_s, before in found:
        after_closure = [r for r in bilabial_releases if release_s - closure_window_s() < r < release_s]
        if before == "MBP" or after_closure:
            # "comfort", or "move" said fast: the lips leave a closure less than a closure window before the
            # lip-teeth contact, so the contact forms as they come (it cannot be held 40 ms before)
            window = (times >= release_s - 0.1) & (times < release_s + settle_time_s() + 0.02)
            assert weights[window].max() >= 0.9
            continue
        hold = held_before(times, weights, release_s)
        assert hold.min() >= 0.9, f"{text} ({speed}): FV {hold.min():.2f} before {release_s:.3f}s"


def test_an_utterance_starting_with_a_closure_gets_a_lead_in_only_when_needed(piper_engine, rate):
    starts_closed = synthesize(piper_engine, "Bob is here.")
    starts_open = synthesize(piper_engine, "Anne is here.")
    pad = lead_in_samples(starts_closed, rate)
    first_release = next(p.end_sample for p in starts_closed if shapes_for(p.phoneme))
    assert pad > 0 and (first_release + pad) / rate == pytest.approx(closure_window_s(), abs=1.5 / rate)
    assert lead_in_samples(starts_open, rate) == 0


@pytest.mark.parametrize("text", [*BILABIAL, *LABIODENTAL, "Strew blue tools to the school, then rest."])
def test_events_tile_the_audio_and_end_at_its_last_sample(piper_engine, rate, text):
    phonemes = synthesize(piper_engine, text)
    events = build_viseme_events(phonemes, rate)
    assert sum(p.duration_samples for p in phonemes) == phonemes[-1].end_sample
    assert round(max(e.end_s for e in events) * rate) == phonemes[-1].end_sample
    assert max(e.end_s for e in events) == phonemes[-1].end_sample / rate
    assert min(e.start_s for e in events) == 0.0
    covered_until = 0.0
    for event in sorted(events, key=lambda e: e.start_s):  # no gap: the mixer always has a plan
        assert event.start_s <= covered_until + 1e-9
        covered_until = max(covered_until, event.end_s)


@pytest.mark.parametrize("text", [*BILABIAL, *LABIODENTAL, "The weather was lovely all through the long summer."])
def test_no_shape_flickers(piper_engine, rate, text):
    phonemes = synthesize(piper_engine, text)
    events = build_viseme_events(phonemes, rate)
    end_s = phonemes[-1].end_sample / rate
    closures = [e for e in events if e.viseme in ("MBP", "FV")]
    for event in events:
        squeezed = any(abs(event.end_s - c.start_s) < 1e-9 or abs(event.start_s - c.end_s) < 1e-9 for c in closures)
        at_edge = event.start_s == 0.0 or event.end_s == end_s
        if event not in closures and not squeezed and not at_edge:
            assert event.end_s - event.start_s >= MIN_SHAPE_S - 1e-9, event


def test_lips_round_ahead_of_u(piper_engine, rate):
    phonemes = synthesize(piper_engine, "He stood in the street, sipping his stew.")
    events = build_viseme_events(phonemes, rate)
    u_start = next(p.start_sample for p in reversed(phonemes) if p.phoneme.startswith("u")) / rate
    times, weights = mixed_weights(events, phonemes[-1].end_sample / rate, "U")
    assert weights[np.searchsorted(times, u_start - 0.08)] > 0.15  # rounding already on during "st"
    assert weights[np.searchsorted(times, u_start)] > 0.5


def _vowel_pause_vowel(pause_s: float, rate: int = 22050) -> list[PhonemeTiming]:
    lengths = [0.05, 0.25, pause_s, 0.25, 0.3]
    names = [SILENCE, "ɑ", SILENCE, "i", SILENCE]
    starts = np.concatenate([[0], np.cumsum([round(s * rate) for s in lengths])])
    return [PhonemeTiming(n, int(a), int(b - a)) for n, a, b in zip(names, starts[:-1], starts[1:], strict=True)]


@pytest.mark.parametrize(("pause_s", "expected"), [(0.08, "hold"), (0.25, "relax"), (0.6, "rest")])
def test_pauses_hold_relax_or_rest_by_length(pause_s, expected):
    phonemes = _vowel_pause_vowel(pause_s)
    mixer = VisemeMixer()
    mixer.add_events(build_viseme_events(phonemes, 22050))
    pause_start_s = phonemes[2].start_sample / 22050
    if expected == "hold":  # the mouth never heads for Rest: the vowel holds until the next one takes over
        assert all(mixer.targets(pause_start_s + f * pause_s)["Rest"] == 0.0 for f in np.linspace(0, 1, 20))
        return
    targets = mixer.targets(pause_start_s + 0.3 * pause_s)
    shown = {"relax": RELAX_WEIGHT, "rest": 0.0}[expected]
    assert targets["AI"] == pytest.approx(shown)
    assert targets["Rest"] == pytest.approx(1.0 - shown)


def test_streaming_chunks_each_end_at_their_audio_and_never_rewrite_sent_shapes(piper_engine):
    chunks = list(piper_engine.synthesize("Hello there, my friend. Maybe we meet by the beach. Bring a map."))
    assert len(chunks) >= 3
    stream = VisemeTimeline(chunks[0].sample_rate_hz)
    sent_until = 0.0
    for chunk in chunks:
        events = stream.add(chunk)
        if chunk.phrase and chunk.phrase[0].start_sample < chunk.start_sample:
            assert events == []  # a later stretch of a phrase: its events came with the first
            continue
        phrase_end = (chunk.phrase or chunk.phonemes)[-1].end_sample
        assert max(e.end_s for e in events) == phrase_end / chunk.sample_rate_hz
        assert min(e.start_s for e in events) >= min(sent_until, chunk.start_sample / chunk.sample_rate_hz) - 1e-9
        sent_until = max([sent_until, *(e.end_s for e in events if e.viseme != "Rest")])


def test_streaming_rejects_out_of_order_chunks_and_bad_timings(piper_engine):
    first, *_ = piper_engine.synthesize("One. Two.")
    stream = VisemeTimeline(first.sample_rate_hz)
    with pytest.raises(TimelineError, match="in order"):
        stream.add(AudioChunk(first.samples, first.sample_rate_hz, 100, first.phonemes))
    with pytest.raises(TimelineError, match="Hz"):
        stream.add(AudioChunk(first.samples, 16000, 0, first.phonemes))
    gap = [PhonemeTiming("a", 0, 100), PhonemeTiming("b", 150, 100)]
    with pytest.raises(TimelineError, match="back to back"):
        build_viseme_events(gap, 22050)
    assert build_viseme_events([], 22050) == []
