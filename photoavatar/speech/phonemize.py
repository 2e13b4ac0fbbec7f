"""Words to phonemes with espeak-ng (the copy bundled in the piper-tts wheel), cut into sounds as `ipa.py` says.

Every engine shares those conventions (stress, marks, two-symbol sounds, silence), so one viseme table serves all.

Engines that only know when a *word* was spoken (ElevenLabs aligns characters) spread the word's phonemes across
its time span with `spread_over_span`: vowels get more time than consonants, as in real speech.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

from photoavatar.speech.engine import SpeechError
from photoavatar.speech.ipa import SILENCE, espeak_symbols, group_sounds, is_long, is_silence, is_vowel
from photoavatar.speech.types import PhonemeTiming

# Relative share of a word's time: vowels carry the syllable, consonants are short transitions.
CONSONANT_WEIGHT = 1.0
VOWEL_WEIGHT = 2.0
LONG_VOWEL_BONUS = 0.6  # long vowels and diphthongs last longer still

_espeak_lock = threading.Lock()  # espeak-ng keeps one global voice: one caller at a time
_espeak_ready = False


@dataclass(frozen=True)
class Phone:
    """One speech sound with the stress of its syllable, before it is placed in time."""

    ipa: str
    stress: int = 0

    @property
    def is_vowel(self) -> bool:
        return is_vowel(self.ipa)

    @property
    def weight(self) -> float:
        if not self.is_vowel:
            return CONSONANT_WEIGHT
        return VOWEL_WEIGHT + (LONG_VOWEL_BONUS if is_long(self.ipa) else 0.0)


def espeak_voice_for(language: str) -> str:
    """The espeak-ng voice name for a BCP-47-ish language tag: "en-US" -> "en-us", "de-DE" -> "de"."""
    tag = language.strip().replace("_", "-").lower()
    if not tag:
        raise SpeechError("no language given for phonemisation; use a tag such as en-us or de")
    if tag.startswith("en"):
        return "en-gb" if tag in ("en-gb", "en-uk") else "en-us"
    return tag.split("-")[0]


def group_ipa(ipa: str) -> list[Phone]:
    """Split an espeak IPA string into phonemes (ipa.group_sounds' conventions). Spaces and punctuation are dropped."""
    sounds = group_sounds((symbol, 0) for symbol in espeak_symbols(ipa))
    return [Phone(sound.phoneme, sound.stress) for sound in sounds if not is_silence(sound.phoneme)]


def phonemize_word(word: str, language: str = "en-us") -> tuple[Phone, ...]:
    """The phonemes of one written word (numbers and abbreviations are spelled out by espeak)."""
    return _phonemize_cached(word.strip(), espeak_voice_for(language))


@lru_cache(maxsize=8192)
def _phonemize_cached(word: str, voice: str) -> tuple[Phone, ...]:
    if not word:
        return ()
    with _espeak_lock:
        _ensure_espeak()
        try:
            from piper import espeakbridge

            espeakbridge.set_voice(voice)
            clauses = espeakbridge.get_phonemes(word)
        except RuntimeError as error:
            raise SpeechError(f"espeak-ng has no voice {voice!r} ({error}); use a language such as en-us or de") from error
    return tuple(group_ipa(" ".join(phonemes for phonemes, _terminator, _end in clauses)))


def _ensure_espeak() -> None:
    global _espeak_ready
    if not _espeak_ready:
        from piper import espeakbridge
        from piper.phonemize_espeak import ESPEAK_DATA_DIR

        espeakbridge.initialize(str(ESPEAK_DATA_DIR))
        _espeak_ready = True


def spread_over_span(phones: tuple[Phone, ...] | list[Phone], start_sample: int, end_sample: int) -> list[PhonemeTiming]:
    """Place PHONES back to back over [start_sample, end_sample), each taking time in proportion to its weight.

    Boundaries are rounded from cumulative weights, so the timings tile the span exactly with no gaps.
    """
    if not phones or end_sample <= start_sample:
        return []
    total_weight = sum(phone.weight for phone in phones)
    span = end_sample - start_sample
    timings: list[PhonemeTiming] = []
    cumulative = 0.0
    begin = start_sample
    for phone in phones:
        cumulative += phone.weight
        end = start_sample + round(span * cumulative / total_weight)
        timings.append(PhonemeTiming(phone.ipa, begin, end - begin, phone.stress))
        begin = end
    return timings


def silence(start_sample: int, end_sample: int) -> list[PhonemeTiming]:
    """A silence span, or nothing when the span is empty."""
    return [PhonemeTiming(SILENCE, start_sample, end_sample - start_sample)] if end_sample > start_sample else []
