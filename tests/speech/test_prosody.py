"""Prosody frames: loudness exact for a sine, pitch tracked on tones and chirps, silence unvoiced, accents."""

from __future__ import annotations

import numpy as np
import pytest

from photoavatar.speech.phoneme_map import shapes_for
from photoavatar.speech.prosody import ProsodyError, analyze_prosody
from photoavatar.speech.types import AudioChunk, PhonemeTiming

RATE = 22050


def _tone(frequency_hz: float, amplitude: float = 0.5, duration_s: float = 1.0) -> np.ndarray:
    t = np.arange(int(duration_s * RATE)) / RATE
    return amplitude * np.sin(2 * np.pi * frequency_hz * t)


def _interior(frames, margin: int = 5):
    return frames[margin:-margin]


@pytest.mark.parametrize("frequency_hz", [70.0, 100.0, 180.0, 261.6, 350.0])
def test_a_steady_tone_is_tracked_within_one_percent(frequency_hz):
    frames = _interior(analyze_prosody(_tone(frequency_hz), RATE))
    pitches = np.array([f.pitch_hz for f in frames])
    assert np.all(np.abs(pitches / frequency_hz - 1) < 0.01)


def test_a_voice_like_tone_with_harmonics_is_tracked_at_its_fundamental():
    t = np.arange(RATE) / RATE
    signal = sum(0.2 / k * np.sin(2 * np.pi * 130 * k * t) for k in range(1, 6))
    pitches = np.array([f.pitch_hz for f in _interior(analyze_prosody(signal, RATE))])
    assert np.all(np.abs(pitches / 130 - 1) < 0.02)


def test_a_chirp_is_tracked_within_three_percent():
    instantaneous = np.linspace(80.0, 320.0, 2 * RATE)
    signal = 0.4 * np.sin(2 * np.pi * np.cumsum(instantaneous) / RATE)
    frames = _interior(analyze_prosody(signal, RATE))
    errors = [abs(f.pitch_hz / instantaneous[round(f.time_s * RATE)] - 1) for f in frames]
    assert max(errors) < 0.03


@pytest.mark.parametrize("amplitude", [0.9, 0.5, 0.05])
def test_loudness_of_a_sine_is_its_rms_in_dbfs(amplitude):
    expected_db = 20 * np.log10(amplitude / np.sqrt(2))
    for signal in (_tone(173.0, amplitude), (_tone(173.0, amplitude) * 32767).astype(np.int16)):
        frames = _interior(analyze_prosody(signal, RATE), margin=10)
        assert all(abs(f.loudness_db - expected_db) < 0.02 for f in frames)


def test_silence_is_unvoiced_at_the_floor_and_noise_is_unvoiced():
    silent = analyze_prosody(np.zeros(RATE, dtype=np.int16), RATE)
    assert {f.pitch_hz for f in silent} == {0.0} and {f.loudness_db for f in silent} == {-100.0}
    noise = np.random.default_rng(7).normal(0, 0.1, RATE)
    voiced = sum(f.pitch_hz > 0 for f in analyze_prosody(noise, RATE))
    assert voiced <= 2


def test_frames_every_ten_ms_on_the_utterance_clock():
    frames = analyze_prosody(_tone(150.0, duration_s=0.5), RATE, start_sample=RATE)
    assert len(frames) == 50
    assert frames[0].time_s == pytest.approx(1.0)
    assert np.allclose(np.diff([f.time_s for f in frames]), 0.01, atol=1 / RATE)


def test_a_tone_that_stops_goes_unvoiced_after_it():
    signal = np.concatenate([_tone(200.0, duration_s=0.5), np.zeros(RATE // 2)])
    frames = analyze_prosody(signal, RATE)
    assert all(f.pitch_hz > 0 for f in frames if 0.05 < f.time_s < 0.45)
    assert all(f.pitch_hz == 0 for f in frames if f.time_s > 0.55)


def test_accents_fall_on_stressed_vowels_of_real_speech(piper_engine):
    chunks = list(piper_engine.synthesize("I never said she stole my money."))
    chunk = AudioChunk(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate_hz, 0,
                       tuple(p for c in chunks for p in c.phonemes))
    frames = analyze_prosody(chunk.samples, chunk.sample_rate_hz, chunk.start_sample, chunk.phonemes)
    accented = [f for f in frames if f.accent > 0]
    assert accented and all(0 < f.accent <= 1 for f in accented)
    stressed = [(p.start_sample / chunk.sample_rate_hz, p.end_sample / chunk.sample_rate_hz)
                for p in chunk.phonemes if p.stress and shapes_for(p.phoneme)]
    assert all(any(a <= f.time_s < b for a, b in stressed) for f in accented)
    voiced = [f.pitch_hz for f in frames if f.pitch_hz > 0]
    assert len(voiced) > len(frames) / 3 and 70 < np.median(voiced) < 250  # a male voice


def test_accents_without_phonemes_come_from_loudness_peaks(piper_engine):
    chunks = list(piper_engine.synthesize("Nobody expected the rain to stop so suddenly."))
    frames = analyze_prosody(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate_hz)
    accented = [f for f in frames if f.accent > 0]
    assert accented
    assert min(np.diff([f.time_s for f in accented]), default=1.0) >= 0.2 - 1e-9


def test_bad_input_is_refused_with_the_fix():
    with pytest.raises(ProsodyError, match="mono"):
        analyze_prosody(np.zeros((100, 2)), RATE)
    with pytest.raises(ProsodyError, match="8000 Hz"):
        analyze_prosody(np.zeros(100), 400)
    with pytest.raises(ProsodyError, match="int16"):
        analyze_prosody(np.zeros(100, dtype=np.int32), RATE)
    assert analyze_prosody(np.zeros(0, dtype=np.int16), RATE) == []


def _accent_test_signal() -> np.ndarray:
    """1 s of a quiet 120 Hz tone, louder and higher (180 Hz) from 0.4 to 0.6 s, phase-continuous."""
    t = np.arange(RATE) / RATE
    prominent = (t >= 0.4) & (t < 0.6)
    phase = 2 * np.pi * np.cumsum(np.where(prominent, 180.0, 120.0)) / RATE
    return np.where(prominent, 0.4, 0.1) * np.sin(phase)


@pytest.mark.parametrize(("phoneme", "stress", "accented"), [
    ("a", 1, True), ("aɪ", 2, True), ("a", 0, False), ("s", 1, False), (" ", 1, False),
])
def test_a_loud_high_stretch_is_an_accent_only_on_a_stressed_vowel(phoneme, stress, accented):
    quarter = int(0.4 * RATE)
    phonemes = [PhonemeTiming("n", 0, quarter), PhonemeTiming(phoneme, quarter, int(0.2 * RATE), stress),
                PhonemeTiming("n", quarter + int(0.2 * RATE), RATE - quarter - int(0.2 * RATE))]
    frames = analyze_prosody(_accent_test_signal(), RATE, 0, phonemes)
    accents = [f for f in frames if f.accent > 0]
    assert bool(accents) == accented
    assert all(0.4 <= f.time_s < 0.6 for f in accents)
