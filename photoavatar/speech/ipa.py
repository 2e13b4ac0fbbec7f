"""The phonetic conventions every engine and stage shares: what a sound, a pause and a stress are in IPA text.

One owner, so Piper's phoneme ids, ElevenLabs' characters (phonemised with espeak-ng), the viseme table, the
timeline and prosody all cut speech into the same sounds:
- a stress mark is not a sound: it goes to the sound after it (stress 1 primary, 2 secondary), and a sound after
  a stress mark starts a new syllable, so it never joins the sound before the mark;
- `MODIFIERS` (length, aspiration, palatalisation, pharyngealisation, rhotacisation) and combining diacritics
  stay on the sound before them ("iː", "n̩", "tʰ"); after a tie bar the next letter joins too ("t͡ʃ");
- the diphthongs and affricates of `TWO_SYMBOL_SOUNDS` ("aɪ", "oʊ", "tʃ", "dʒ"...) are one sound;
- silence is whitespace, punctuation and Piper's sentence markers; the pause phoneme is `SILENCE` (" ").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from photoavatar.speech.types import PhonemeTiming

SILENCE = " "  # the phoneme of a pause (Piper's word separator)
PRIMARY_STRESS = "ˈ"
SECONDARY_STRESS = "ˌ"
STRESS_MARKS = {PRIMARY_STRESS: 1, SECONDARY_STRESS: 2}
# Spacing letters that modify the sound before them: length, half-length, palatalisation, aspiration,
# labialisation, rhotacisation, pharyngealisation (Arabic "sˤ").
MODIFIERS = frozenset("ːˑʲʰʷ˞ˤ")
LENGTH_MARKS = frozenset("ːˑ")
TIE_BARS = frozenset("\u0361\u035c")
SYLLABIC_MARK = "\u0329"
# Combining marks that leave the lips as they are (syllabic, non-syllabic, dental, nasal, centralised, short,
# unreleased, voiceless, breathy). Not the cedilla: "ç" is its own letter with its own shape.
LIP_NEUTRAL_DIACRITICS = frozenset("\u0329\u032f\u032a\u0303\u0308\u0306\u031a\u0325\u0324")
LIP_NEUTRAL_MARKS = MODIFIERS | frozenset(STRESS_MARKS) | TIE_BARS | LIP_NEUTRAL_DIACRITICS
VOWELS = frozenset("aeiouyæɑɒɐəɘɚɛɜɝɞɤɪɨʉɯʊʌɔøœɶʏɵᵻ")
# Sounds espeak writes as two symbols but the mouth makes as one.
DIPHTHONGS = frozenset({"aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "əʊ", "eə", "ɪə", "ʊə"})
AFFRICATES = frozenset({"tʃ", "dʒ"})
TWO_SYMBOL_SOUNDS = DIPHTHONGS | AFFRICATES
# Piper's phoneme-id framing: sentence begin, pad between phonemes, sentence end (all silence).
SENTENCE_BEGIN, PAD, SENTENCE_END = "^", "_", "$"
_PAUSE_MARKERS = frozenset({SENTENCE_BEGIN, PAD, SENTENCE_END})
_LANGUAGE_FLAG = re.compile(r"\([^)]*\)")  # espeak marks foreign words as "(en)...(de)"


def is_silence(phoneme: str) -> bool:
    """True for pauses: empty, whitespace, punctuation and Piper's sentence/pad markers."""
    return all(char.isspace() or char in _PAUSE_MARKERS or unicodedata.category(char).startswith("P")
               for char in phoneme)


def is_modifier(symbol: str) -> bool:
    """True for a mark that belongs to the sound before it (a modifier letter or a combining diacritic)."""
    return symbol[:1] in MODIFIERS or unicodedata.combining(symbol[:1] or " ") > 0


def is_vowel(phoneme: str) -> bool:
    """Vowels and diphthongs; syllabic consonants ("n̩") count as vowels, since they carry the syllable."""
    return bool(phoneme) and (phoneme[0] in VOWELS or SYLLABIC_MARK in unicodedata.normalize("NFD", phoneme))


def is_long(phoneme: str) -> bool:
    """Long vowels and diphthongs (they last longer than short vowels)."""
    return any(mark in phoneme for mark in LENGTH_MARKS) or phoneme in DIPHTHONGS


def core_symbol(phoneme: str) -> str:
    """The phoneme without the marks that leave the lips alone, in composed form ("ç" stays one letter)."""
    kept = "".join(char for char in unicodedata.normalize("NFD", phoneme) if char not in LIP_NEUTRAL_MARKS)
    return unicodedata.normalize("NFC", kept)


def espeak_symbols(ipa: str) -> list[str]:
    """An espeak IPA string as symbols for `group_sounds`: decomposed, language flags dropped, and anything
    that is neither a letter, a mark nor a stress (digits, stray symbols) read as a pause."""
    chars = unicodedata.normalize("NFD", _LANGUAGE_FLAG.sub("", ipa))
    return [char if char.isalpha() or char in STRESS_MARKS or is_modifier(char) else SILENCE for char in chars]


def group_sounds(symbols: Iterable[tuple[str, int]], start_sample: int = 0) -> list[PhonemeTiming]:
    """(symbol, samples) pairs, back to back from START_SAMPLE, grouped into one timing per sound.

    The conventions of the module docstring; a stress mark's time goes to the sound after it (or, at the end,
    to the sound before), a mark's time to its sound; consecutive pauses merge. Durations add up exactly.
    """
    grouper = _Grouper()
    position = start_sample
    for symbol, samples in symbols:
        grouper.add(symbol, position, int(samples))
        position += int(samples)
    return grouper.finish()


class _Grouper:
    def __init__(self):
        self.timings: list[list] = []  # [phoneme, start, duration, stress], mutable while merging
        self.stress = 0
        self.stress_start: int | None = None  # a stress mark is waiting for its sound
        self.stress_samples = 0
        self.glue_next = False  # after a tie bar the next letter belongs to the same sound

    def add(self, symbol: str, start: int, samples: int) -> None:
        if symbol in STRESS_MARKS:
            new = STRESS_MARKS[symbol]
            self.stress = min(self.stress, new) if self.stress else new  # primary beats secondary
            self.stress_start = start if self.stress_start is None else self.stress_start
            self.stress_samples += samples
            return
        previous = self.timings[-1] if self.timings else None
        if is_silence(symbol):
            if previous and is_silence(previous[0]) and self.stress_start is None:
                previous[2] += samples
                return
            self._open(SILENCE if symbol.isspace() or symbol in _PAUSE_MARKERS else symbol, start, samples, 0)
        elif previous and not is_silence(previous[0]) and self.stress_start is None and (
                is_modifier(symbol) or self.glue_next or previous[0] + symbol in TWO_SYMBOL_SOUNDS):
            previous[0] += symbol
            previous[2] += samples
            self.glue_next = symbol in TIE_BARS
            return
        else:
            self._open(symbol, start, samples, self.stress)
        self.glue_next = symbol in TIE_BARS

    def _open(self, phoneme: str, start: int, samples: int, stress: int) -> None:
        begin = start if self.stress_start is None else self.stress_start
        self.timings.append([phoneme, begin, samples + self.stress_samples, stress])
        self.stress, self.stress_start, self.stress_samples = 0, None, 0

    def finish(self) -> list[PhonemeTiming]:
        if self.stress_samples and self.timings:
            self.timings[-1][2] += self.stress_samples  # a stress mark with nothing after it: keep its time
        return [PhonemeTiming(phoneme, start, duration, stress) for phoneme, start, duration, stress in self.timings]
