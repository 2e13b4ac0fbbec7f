"""Decoding callers' audio: common formats decode to the same speech; bad audio gets a clear error."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from photoavatar.speech.audio_input import (
    MAX_SAMPLE_RATE_HZ,
    AudioInputError,
    checked_audio,
    decode_audio,
)
from photoavatar.speech.viseme_accuracy import speak

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_files import FORMATS, encode, tone  # noqa: E402


@pytest.fixture(scope="module")
def sentence(piper_engine):
    return speak(piper_engine, "Bob bought a bag of plums.")


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_common_formats_decode_to_the_same_speech(sentence, kind):
    decoded = decode_audio(encode(sentence.samples, sentence.sample_rate_hz, kind))
    assert decoded.samples.dtype == np.int16 and decoded.samples.ndim == 1
    assert abs(decoded.duration_s - len(sentence.samples) / sentence.sample_rate_hz) < 0.08
    # the same waveform: correlate the loudness envelopes (codecs change samples, not speech)
    envelope = _envelope(decoded.samples, decoded.sample_rate_hz)
    original = _envelope(sentence.samples, sentence.sample_rate_hz)
    n = min(len(envelope), len(original))
    assert np.corrcoef(envelope[:n], original[:n])[0, 1] > 0.9


def _envelope(samples: np.ndarray, rate: int) -> np.ndarray:
    hop = rate // 100
    frames = samples[: len(samples) // hop * hop].astype(np.float64).reshape(-1, hop)
    return np.sqrt((frames ** 2).mean(axis=1))


def test_stereo_is_mixed_down_and_high_rates_are_resampled(sentence):
    stereo = decode_audio(encode(sentence.samples, sentence.sample_rate_hz, "wav", channels=2))
    assert stereo.samples.ndim == 1 and abs(stereo.duration_s - len(sentence.samples) / sentence.sample_rate_hz) < 0.01
    high = decode_audio(encode(tone(1.0, 96000), 96000, "flac"))
    assert high.source_sample_rate_hz == 96000 and high.sample_rate_hz == MAX_SAMPLE_RATE_HZ
    assert abs(high.duration_s - 1.0) < 0.01


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"this is a text file, not a recording\n" * 20, "not audio"),
    (bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)), "not audio"),
])
def test_what_is_not_audio_is_refused_clearly(data, message):
    with pytest.raises(AudioInputError, match=message):
        decode_audio(data)


def test_silence_is_refused():
    with pytest.raises(AudioInputError, match="silent"):
        decode_audio(encode(np.zeros(16000, dtype=np.int16), 16000))


def test_a_sample_rate_too_low_for_speech_is_refused():
    with pytest.raises(AudioInputError, match="too low"):
        decode_audio(encode(tone(1.0, 4000, (440.0,)), 4000))


def test_ten_minutes_is_refused_with_the_limit():
    ten_minutes = encode(tone(600.0, 8000), 8000)
    with pytest.raises(AudioInputError, match="longer than 300 s"):
        decode_audio(ten_minutes)


def test_clipped_audio_is_measured_not_refused(sentence):
    loud = np.clip(sentence.samples.astype(np.int32) * 8, -32768, 32767).astype(np.int16)
    decoded = checked_audio(loud, sentence.sample_rate_hz)
    assert decoded.clipped_fraction > 0.05
    assert checked_audio(sentence.samples, sentence.sample_rate_hz).clipped_fraction < 0.001


def test_a_missing_file_names_the_path(tmp_path):
    with pytest.raises(AudioInputError, match="not found"):
        decode_audio(tmp_path / "nothing.wav")
