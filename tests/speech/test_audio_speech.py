"""Visemes from audio we did not synthesise, measured against the true timing of Piper audio (loose bounds;
bench/audio_visemes.py measures the targets), and what bad audio gets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from photoavatar.speech.audio_input import checked_audio, decode_audio
from photoavatar.speech.audio_speech import (
    ALIGNED,
    MAX_SEGMENT_S,
    PHONES,
    WORDS,
    segments_from_audio,
    speech_segments,
    split_at_pauses,
    time_phonemes,
)
from photoavatar.speech.forced_align import AlignmentError, align_transcript, transcript_words
from photoavatar.speech.phone_recognition import recognise_phones
from photoavatar.speech.timeline import build_viseme_events
from photoavatar.speech.types import PhonemeTiming
from photoavatar.speech.viseme_accuracy import compare, speak

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_files import encode, tone  # noqa: E402

SENTENCES = (
    "My father bought five fine violins and put them above the piano.",
    "Bob baked a batch of plum muffins for the members of the band.",
    "Please call me back when you have a moment.",
)


@pytest.fixture(scope="module")
def spoken(piper_engine):
    return [speak(piper_engine, text) for text in SENTENCES]


def _accuracy(spoken, timings):
    total = None
    for sample, phonemes in zip(spoken, timings, strict=True):
        accuracy = compare(build_viseme_events(sample.phonemes, sample.sample_rate_hz),
                           build_viseme_events(phonemes, sample.sample_rate_hz))
        total = accuracy if total is None else total + accuracy
    return total


def _tiles(phonemes, total_samples):
    assert phonemes[0].start_sample == 0 and phonemes[-1].end_sample == total_samples
    assert all(a.end_sample == b.start_sample for a, b in zip(phonemes, phonemes[1:], strict=False))


def _timed(spoken, with_transcript: bool, method: str):
    """Each sample's phonemes as time_phonemes finds them, checked to be by METHOD and to tile the audio."""
    timings = []
    for sample in spoken:
        timing = time_phonemes(checked_audio(sample.samples, sample.sample_rate_hz),
                               sample.text if with_transcript else None)
        assert timing.method == method
        _tiles(timing.phonemes, len(sample.samples))
        timings.append(timing.phonemes)
    return timings


def test_a_transcript_is_aligned_close_to_the_true_timing(spoken):
    accuracy = _accuracy(spoken, _timed(spoken, True, ALIGNED))
    assert accuracy.onset_median_ms <= 40, accuracy
    assert accuracy.closure_recall >= 0.85, accuracy
    assert accuracy.onsets_matched >= 0.5, accuracy


def test_without_a_transcript_recognised_words_are_aligned(spoken):
    accuracy = _accuracy(spoken, _timed(spoken, False, WORDS))
    assert accuracy.onset_median_ms <= 60, accuracy
    assert accuracy.closure_recall >= 0.7, accuracy


def test_the_phone_loop_finds_most_closures(spoken):
    timings = [recognise_phones(s.samples, s.sample_rate_hz) for s in spoken]
    for sample, phonemes in zip(spoken, timings, strict=True):
        _tiles(phonemes, len(sample.samples))
    accuracy = _accuracy(spoken, timings)
    assert accuracy.onset_median_ms <= 90, accuracy
    assert accuracy.closure_recall >= 0.6, accuracy


def test_telephone_and_clipped_audio_still_align(spoken):
    sample = spoken[0]
    narrowband = decode_audio(encode(_resampled(sample.samples, sample.sample_rate_hz, 8000), 8000))
    assert narrowband.sample_rate_hz == 8000
    loud = np.clip(sample.samples.astype(np.int32) * 6, -32768, 32767).astype(np.int16)
    clipped = checked_audio(loud, sample.sample_rate_hz)
    assert clipped.clipped_fraction > 0.02
    for audio in (narrowband, clipped):
        timing = time_phonemes(audio, sample.text)
        assert timing.method == ALIGNED
        scale = sample.sample_rate_hz / audio.sample_rate_hz
        truth = build_viseme_events(sample.phonemes, sample.sample_rate_hz)
        estimated = build_viseme_events(timing.phonemes, audio.sample_rate_hz)
        accuracy = compare(truth, estimated)
        assert accuracy.onset_median_ms <= 50 and accuracy.closure_recall >= 0.7, (scale, accuracy)


def _resampled(samples: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    from scipy.signal import resample_poly

    return np.clip(resample_poly(samples.astype(np.float64), new_rate, rate), -32768, 32767).astype(np.int16)


def test_other_languages_use_the_phone_loop(spoken):
    sample = spoken[0]
    timing = time_phonemes(checked_audio(sample.samples, sample.sample_rate_hz), language="de")
    assert timing.method == PHONES


def test_german_transcripts_are_phonemised_for_alignment():
    words = transcript_words("Grüße aus München, ich möchte zwei Pfannkuchen.", "de")
    assert len(words) == 7
    assert all(all(stand_in for stand_in in word.stand_ins) for word in words)


def test_a_language_espeak_does_not_speak_falls_back_to_recognition(spoken):
    sample = spoken[2]
    audio = checked_audio(sample.samples, sample.sample_rate_hz)
    with pytest.raises(AlignmentError, match="phonemised"):
        align_transcript(audio.samples, audio.sample_rate_hz, sample.text, "xx-nowhere")
    timing = time_phonemes(audio, sample.text, "xx-nowhere")
    assert timing.method == PHONES and "phonemised" in timing.note


def test_a_transcript_that_does_not_fit_falls_back_to_recognition(spoken):
    sample = spoken[2]
    audio = checked_audio(sample.samples, sample.sample_rate_hz)
    too_long = " ".join([sample.text] * 12)
    with pytest.raises(AlignmentError, match="too many"):
        align_transcript(audio.samples, audio.sample_rate_hz, too_long)
    timing = time_phonemes(audio, too_long)
    assert timing.method == WORDS and "transcript not used" in timing.note


def test_segments_carry_the_audio_its_visemes_and_prosody(spoken):
    sample = spoken[1]  # starts with a closure: a lead-in of silence goes before it, as for Piper
    decoded = decode_audio(encode(sample.samples, sample.sample_rate_hz, "flac"))
    segments = list(segments_from_audio(decoded, sample.text))
    audio = np.concatenate([s.audio.samples for s in segments])
    lead_in = len(audio) - len(decoded.samples)
    assert 0 < lead_in < 0.2 * decoded.sample_rate_hz
    assert np.array_equal(audio[lead_in:], decoded.samples)
    for before, after in zip(segments, segments[1:], strict=False):
        assert after.audio.start_sample == before.audio.end_sample
    for segment in segments:
        start_s = segment.audio.start_sample / decoded.sample_rate_hz
        end_s = segment.audio.end_sample / decoded.sample_rate_hz
        assert segment.visemes and segment.prosody
        assert all(start_s - 0.5 <= e.start_s < e.end_s <= end_s + 1e-9 for e in segment.visemes)
    visemes = [e.viseme for s in segments for e in s.visemes]
    assert visemes.count("MBP") >= 6  # Bob, baked, batch, plum, muffins, members, band


def test_long_pauses_split_segments(spoken):
    sample = spoken[2]
    pause = np.zeros(sample.sample_rate_hz, dtype=np.int16)
    audio = checked_audio(np.concatenate([sample.samples, pause, sample.samples]), sample.sample_rate_hz)
    segments = list(speech_segments(audio, time_phonemes(audio, f"{sample.text} {sample.text}")))
    assert len(segments) >= 2
    middle = (len(sample.samples) + sample.sample_rate_hz // 2) / sample.sample_rate_hz
    assert any(abs(s.audio.start_sample / sample.sample_rate_hz - middle) < 0.5 for s in segments[1:])


def test_speech_without_pauses_is_still_cut_into_bounded_segments():
    rate = 16000
    audio = checked_audio(tone(20.0, rate), rate)
    sounds = [PhonemeTiming("a" if k % 2 else "m", k * 1600, 1600) for k in range(200)]  # 20 s, no pause
    chunks = split_at_pauses(audio, tuple(sounds))
    assert len(chunks) >= 3 and all(c.duration_s <= MAX_SEGMENT_S + 0.1 for c in chunks)
    assert [p for c in chunks for p in c.phonemes] == sounds
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), audio.samples)


@pytest.mark.parametrize("name, signal, rate", [
    ("steady tone", tone(2.0, 16000, (220.0,)), 16000),
    ("chord", tone(3.0, 22050, (261.6, 329.6, 392.0)), 22050),
    ("noise", (np.random.default_rng(2).normal(0, 3000, 32000)).astype(np.int16), 16000),
])
def test_music_and_noise_give_a_valid_timeline_not_a_crash(name, signal, rate):
    audio = checked_audio(signal, rate)
    for transcript in (None, "hello there"):
        segments = list(segments_from_audio(audio, transcript))
        assert segments, name
        covered = sum(len(s.audio.samples) for s in segments)
        assert covered >= len(signal)
        for segment in segments:
            assert all(e.end_s > e.start_s for e in segment.visemes)
        assert abs(max(e.end_s for e in segments[-1].visemes) - segments[-1].audio.end_sample / rate) < 1e-6
    # without a transcript nothing is heard as speech: the mouth stays at rest
    speaking = [p for p in time_phonemes(audio).phonemes if p.phoneme.strip()]
    assert sum(p.duration_samples for p in speaking) < 0.1 * len(signal), speaking
