"""A transcript aligned to its audio: the transcript's phonemes, each with the time it is spoken.

The transcript is phonemised with espeak-ng (`phonemize.phonemize_word`, the same IPA as the Piper engine, any
language espeak-ng speaks); each word becomes a pseudo-word of pocketsphinx's dictionary whose pronunciation is
the English stand-in of its phonemes (`sphinx.arpabet_for`); pocketsphinx aligns words, then phones (two
passes, 10 ms frames), with optional silence between words. Each phoneme takes the span of its stand-in phones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from photoavatar.speech import sphinx
from photoavatar.speech.engine import SpeechError
from photoavatar.speech.phonemize import Phone, phonemize_word, silence, spread_over_span
from photoavatar.speech.types import PhonemeTiming

MAX_TRANSCRIPT_WORDS = 3000
MAX_PHONES_PER_S = 25.0  # fast speech is about 15; more means the transcript is not this audio's
_WORD = re.compile(r"[\w'’-]+")


class AlignmentError(ValueError):
    """The transcript could not be aligned to the audio (it does not match, or it cannot be phonemised)."""


@dataclass(frozen=True)
class _Word:
    phones: tuple[Phone, ...]
    stand_ins: tuple[tuple[str, ...], ...]  # the ARPAbet phones of each phone (glottal stops have none)


def transcript_words(transcript: str, language: str) -> list[_Word]:
    words = []
    try:
        for text in _WORD.findall(transcript):
            phones = tuple(p for p in phonemize_word(text, language) if sphinx.arpabet_for(p.ipa))
            if phones:
                words.append(_Word(phones, tuple(sphinx.arpabet_for(p.ipa) for p in phones)))
    except (SpeechError, sphinx.UnalignablePhonemeError) as error:  # an unknown language or sound
        raise AlignmentError(f"the transcript cannot be phonemised: {error}") from error
    if len(words) > MAX_TRANSCRIPT_WORDS:
        raise AlignmentError(f"the transcript has {len(words)} words; the limit is {MAX_TRANSCRIPT_WORDS}")
    return words


def align_transcript(samples: np.ndarray, sample_rate_hz: int, transcript: str,
                     language: str = "en-us") -> list[PhonemeTiming]:
    """Phoneme timings (samples at SAMPLE_RATE_HZ) tiling the whole audio, silence between and around words."""
    words = transcript_words(transcript, language)
    if not words:
        raise AlignmentError(f"the transcript {transcript[:60]!r} has no words to align")
    audio_16k = sphinx.to_16k(samples, sample_rate_hz)
    phone_count = sum(len(stand_in) for word in words for stand_in in word.stand_ins)
    if phone_count > MAX_PHONES_PER_S * len(audio_16k) / sphinx.SAMPLE_RATE_HZ:
        raise AlignmentError(f"the transcript has {phone_count} sounds for {len(audio_16k) / 16000:.1f} s of "
                             "audio: too many to be this recording's words")
    aligned = _run_alignment(audio_16k, words)
    return _timings(aligned, words, sample_rate_hz, len(samples))


def _run_alignment(audio_16k: np.ndarray, words: list[_Word]) -> list[tuple[str, list[tuple[str, int, int]]]]:
    """pocketsphinx's alignment: (word, [(phone, start frame, frames)]) in order, "<sil>" words included."""
    # bestpath off: its lattice can give a phone fewer frames than its HMM has states, failing pass two.
    decoder = sphinx.decoder(lm=None, bestpath=False)
    for index, word in enumerate(words):
        decoder.add_word(f"w{index}", " ".join(p for stand_in in word.stand_ins for p in stand_in),
                         index == len(words) - 1)
    try:
        alignment = sphinx.two_pass_alignment(decoder, audio_16k.tobytes(),
                                              " ".join(f"w{index}" for index in range(len(words))))
    except RuntimeError as error:  # pocketsphinx raises when no path through the transcript fits the audio
        raise AlignmentError(f"the transcript does not fit the audio ({error})") from error
    if alignment is None:
        raise AlignmentError("the transcript does not fit the audio (no alignment found)")
    return [(word.name, [(phone.name, phone.start, phone.duration) for phone in word]) for word in alignment]


def _timings(aligned, words: Sequence[_Word], sample_rate_hz: int, total_samples: int) -> list[PhonemeTiming]:
    timings: list[PhonemeTiming] = []
    cursor = 0

    def at(frame: int) -> int:
        return min(total_samples, sphinx.frames_to_samples(frame, sample_rate_hz))

    for name, phones in aligned:
        if not name.startswith("w"):  # <sil> and friends
            continue
        word = words[int(name[1:])]
        if len(phones) != sum(len(stand_in) for stand_in in word.stand_ins):  # not the phones we asked for
            start, end = max(cursor, at(phones[0][1])), max(cursor, at(phones[-1][1] + phones[-1][2]))
            timings += silence(cursor, start) + spread_over_span(word.phones, start, end)
            cursor = max(cursor, end)
            continue
        position = 0
        for phone, stand_in in zip(word.phones, word.stand_ins, strict=True):
            first, last = phones[position], phones[position + len(stand_in) - 1]
            position += len(stand_in)
            start, end = max(cursor, at(first[1])), max(cursor, at(last[1] + last[2]))
            timings += silence(cursor, start)
            timings.append(PhonemeTiming(phone.ipa, start, end - start, phone.stress))
            cursor = end
    if len(timings) == 0:
        raise AlignmentError("the transcript does not fit the audio (no words aligned)")
    return timings + silence(cursor, total_samples)

