"""Loudness, pitch and accents of speech audio, one ProsodyFrame per 10 ms hop, for head nods and the jaw.

Pitch is a vectorised YIN (de Cheveigné & Kawahara 2002): the difference function of every frame at once
through one FFT, the cumulative-mean normalisation, the first dip under a threshold, parabolic interpolation.
Everything is numpy over the whole chunk, so a second of audio costs a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from photoavatar.speech.ipa import is_vowel
from photoavatar.speech.types import PhonemeTiming, ProsodyFrame

HOP_S = 0.010
WINDOW_S = 0.025  # YIN integration window; loudness uses the same window plus the lag span
MIN_PITCH_HZ = 60.0
MAX_PITCH_HZ = 400.0
YIN_THRESHOLD = 0.15  # first dip under this is the period
VOICED_MAX_APERIODICITY = 0.3  # frames whose best dip stays above this are unvoiced
VOICED_MIN_DB = -50.0
SILENCE_DB = -100.0
ACCENT_MIN_GAP_S = 0.2
ACCENT_MIN_RISE_DB = 3.0
FULL_SCALE_INT16 = 32768.0


class ProsodyError(ValueError):
    pass


def analyze_prosody(samples: np.ndarray, sample_rate_hz: int, start_sample: int = 0,
                    phonemes: Sequence[PhonemeTiming] = ()) -> list[ProsodyFrame]:
    """Frames every 10 ms from START_SAMPLE (utterance-relative time_s). PHONEMES, if given, pick accents."""
    signal = _as_float(samples, sample_rate_hz)
    if len(signal) == 0:
        return []
    hop = HOP_S * sample_rate_hz  # fractional at 22050 Hz: frames stay on the 10 ms grid, rounded to a sample
    centres = np.round(np.arange(int(np.ceil(len(signal) / hop))) * hop).astype(np.int64)
    windows = _frame_windows(signal, centres, sample_rate_hz)
    loudness_db = _loudness_db(windows)
    pitch_hz = _pitch_hz(windows, sample_rate_hz, loudness_db)
    times_s = (start_sample + centres) / sample_rate_hz
    accents = _accents(times_s, loudness_db, pitch_hz, phonemes, sample_rate_hz)
    return [ProsodyFrame(float(t), float(db), float(f0), float(a))
            for t, db, f0, a in zip(times_s, loudness_db, pitch_hz, accents, strict=True)]


def _as_float(samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    if sample_rate_hz < 2 * MAX_PITCH_HZ:
        raise ProsodyError(f"sample rate {sample_rate_hz} Hz is too low for pitch tracking; use 8000 Hz or more")
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ProsodyError(f"prosody wants mono samples (one dimension), got shape {array.shape}; mix down first")
    if array.dtype == np.int16:
        return array.astype(np.float64) / FULL_SCALE_INT16
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float64)
    raise ProsodyError(f"samples must be int16 PCM or floats in [-1, 1], got {array.dtype}")


def _lags(sample_rate_hz: int) -> tuple[int, int, int]:
    window = round(WINDOW_S * sample_rate_hz)
    return window, int(sample_rate_hz // MAX_PITCH_HZ), int(np.ceil(sample_rate_hz / MIN_PITCH_HZ))


def _frame_windows(signal: np.ndarray, centres: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """One row per frame: WINDOW + max lag samples centred on the frame time (zeros beyond the audio)."""
    window, _, max_lag = _lags(sample_rate_hz)
    span = window + max_lag
    padded = np.pad(signal, (span // 2, span))
    index = centres[:, None] + np.arange(span)[None, :]
    return padded[index]


def _loudness_db(windows: np.ndarray) -> np.ndarray:
    # Hann-weighted mean square: a steady sine reads its exact RMS whatever its period.
    taper = np.hanning(windows.shape[1] + 2)[1:-1]
    rms = np.sqrt((windows * windows) @ taper / taper.sum())
    with np.errstate(divide="ignore"):
        return np.maximum(20.0 * np.log10(rms), SILENCE_DB)


def _pitch_hz(windows: np.ndarray, sample_rate_hz: int, loudness_db: np.ndarray) -> np.ndarray:
    window, min_lag, max_lag = _lags(sample_rate_hz)
    difference = _difference(windows, window, max_lag)
    normalised = _cumulative_mean_normalised(difference)
    lag, dip = _first_dip(normalised, min_lag, max_lag)
    voiced = (dip < VOICED_MAX_APERIODICITY) & (loudness_db > VOICED_MIN_DB)
    with np.errstate(divide="ignore"):
        return np.where(voiced, sample_rate_hz / np.maximum(lag, 1e-9), 0.0)


def _difference(windows: np.ndarray, window: int, max_lag: int) -> np.ndarray:
    """YIN's d(tau) = sum_j (x_j - x_{j+tau})^2 over j < WINDOW, for tau in 0..max_lag, all frames at once."""
    size = 1 << int(np.ceil(np.log2(window + max_lag + 1)))
    head = np.fft.rfft(windows[:, :window], size)
    whole = np.fft.rfft(windows, size)
    cross = np.fft.irfft(np.conj(head) * whole, size)[:, :max_lag + 1]
    squares = np.concatenate([np.zeros((len(windows), 1)), np.cumsum(windows * windows, axis=1)], axis=1)
    head_energy = squares[:, window:window + 1]
    lags = np.arange(max_lag + 1)
    shifted_energy = squares[:, lags + window] - squares[:, lags]
    return np.maximum(head_energy + shifted_energy - 2.0 * cross, 0.0)


def _cumulative_mean_normalised(difference: np.ndarray) -> np.ndarray:
    lags = np.arange(difference.shape[1])
    running = np.cumsum(difference, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = difference * lags / running
    normalised[:, 0] = 1.0
    return np.nan_to_num(normalised, nan=1.0, posinf=1.0)


def _first_dip(normalised: np.ndarray, min_lag: int, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the period (fractional lag) and its aperiodicity: the first local minimum under the threshold,
    else the global minimum."""
    span = normalised[:, min_lag:max_lag]
    below = span < YIN_THRESHOLD
    has_dip = below.any(axis=1)
    first = np.where(has_dip, below.argmax(axis=1), span.argmin(axis=1))
    rows = np.arange(len(span))
    # walk down from the first point under the threshold to the bottom of that dip
    for _ in range(span.shape[1]):
        step = (first + 1 < span.shape[1]) & has_dip
        nxt = np.minimum(first + 1, span.shape[1] - 1)
        moving = step & (span[rows, nxt] < span[rows, first])
        if not moving.any():
            break
        first = np.where(moving, nxt, first)
    return _parabolic(span, first) + min_lag, span[rows, first]


def _parabolic(span: np.ndarray, index: np.ndarray) -> np.ndarray:
    rows = np.arange(len(span))
    left = span[rows, np.maximum(index - 1, 0)]
    centre = span[rows, index]
    right = span[rows, np.minimum(index + 1, span.shape[1] - 1)]
    curvature = left - 2.0 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curvature > 1e-12, 0.5 * (left - right) / curvature, 0.0)
    return index + np.clip(shift, -0.5, 0.5)


def _accents(times_s: np.ndarray, loudness_db: np.ndarray, pitch_hz: np.ndarray,
             phonemes: Sequence[PhonemeTiming], sample_rate_hz: int) -> np.ndarray:
    """Accent strength at the loudness peak of each prominent syllable, 0 elsewhere."""
    accents = np.zeros(len(times_s))
    voiced = pitch_hz > 0
    if voiced.sum() < 3:
        return accents
    median_db = float(np.median(loudness_db[voiced]))
    median_hz = float(np.median(pitch_hz[voiced]))
    last_s = -np.inf
    for begin_s, end_s, stress in _syllables(times_s, loudness_db, voiced, phonemes, sample_rate_hz):
        inside = np.flatnonzero((times_s >= begin_s) & (times_s < end_s) & voiced)
        if len(inside) == 0:
            continue
        peak = inside[np.argmax(loudness_db[inside])]
        rise_db = loudness_db[peak] - median_db
        rise_semitones = 12.0 * np.log2(max(pitch_hz[inside].max(), 1.0) / median_hz)
        strength = (0.5 * rise_db / 6.0 + 0.5 * rise_semitones / 4.0) * (1.0 if stress == 1 else 0.6)
        if strength > 0.1 and rise_db > -ACCENT_MIN_RISE_DB and times_s[peak] - last_s >= ACCENT_MIN_GAP_S:
            accents[peak] = min(1.0, strength)
            last_s = times_s[peak]
    return accents


def _syllables(times_s, loudness_db, voiced, phonemes, sample_rate_hz) -> list[tuple[float, float, int]]:
    """Candidate accented syllables: stressed vowels when the phonemes are known, else loudness peaks."""
    if phonemes:
        return [(p.start_sample / sample_rate_hz, p.end_sample / sample_rate_hz, p.stress) for p in phonemes
                if p.stress and is_vowel(p.phoneme)]
    peaks = []
    for i in range(1, len(times_s) - 1):
        if voiced[i] and loudness_db[i] >= loudness_db[i - 1] and loudness_db[i] > loudness_db[i + 1]:
            peaks.append((times_s[i] - HOP_S / 2, times_s[i] + HOP_S / 2, 1))
    loud = sorted(peaks, key=lambda p: -loudness_db[np.searchsorted(times_s, p[0] + HOP_S / 2)])
    return sorted(loud[: max(1, len(peaks) // 3)])
