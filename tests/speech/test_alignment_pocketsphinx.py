"""An independent check of the Piper timings: force-align the same audio with pocketsphinx and compare onsets.

pocketsphinx (CMU Sphinx, its wheel ships an English acoustic model and dictionary) aligns words, then phones,
with 10 ms frames. Its ARPAbet phones are matched to our IPA phonemes by sound class, and the start times of
matched phones are compared.
"""

from __future__ import annotations

import difflib
import statistics

import numpy as np

from photoavatar.speech import sphinx
from photoavatar.speech.ipa import core_symbol, is_vowel

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "Please call me back when you have a moment.",
    "My mother made a big pot of vegetable soup.",
    "We watched the sunset from the top of the hill.",
    "The children played football in the park until dark.",
    "Bright light reflected off the surface of the water.",
    "Thank you very much for your patience and your help.",
]
FRAME_S = sphinx.FRAME_SAMPLES / sphinx.SAMPLE_RATE_HZ  # pocketsphinx frames (10 ms)

# Our IPA (espeak-ng en-us) to coarse ARPAbet classes, for this comparison only: speech/sphinx.py owns the full
# table, and this check stays independent of it so as not to share its mistakes. Vowel qualities differ between
# the two dictionaries (schwa vs IH...), so vowels are compared as one class; so are the alveolar stops (espeak
# writes the flap ɾ for CMU's T or D).
IPA_CLASS = {
    "p": "P", "b": "B", "t": "T", "d": "T", "ɾ": "T", "k": "K", "ɡ": "G", "g": "G", "f": "F", "v": "V",
    "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "tʃ": "CH", "dʒ": "JH",
    "m": "M", "n": "N", "ŋ": "NG", "l": "L", "ɹ": "R", "r": "R", "w": "W", "j": "Y",
}
ARPABET_CLASS = {"D": "T"}
ARPABET_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}


def ipa_class(phoneme: str) -> str | None:
    core = core_symbol(phoneme)
    if core in IPA_CLASS:
        return IPA_CLASS[core]
    return "V" if is_vowel(core) else None


def arpabet_class(phone: str) -> str | None:
    if phone in ARPABET_VOWELS:
        return "V"
    return None if phone == "SIL" else ARPABET_CLASS.get(phone, phone)


def pocketsphinx_phones(samples: np.ndarray, sample_rate_hz: int, text: str) -> list[tuple[str, float]]:
    """(ARPAbet phone, start_s) from a two-pass forced alignment of the audio to TEXT."""
    alignment = sphinx.align_to_dictionary(samples, sample_rate_hz, text)
    return [(phone.name, phone.start * FRAME_S) for word in alignment for phone in word]


def onset_differences_s(engine, text: str) -> list[float]:
    chunks = list(engine.synthesize(text))
    rate = chunks[0].sample_rate_hz
    ours = [(ipa_class(p.phoneme), p.start_sample / rate) for c in chunks for p in c.phonemes]
    ours = [(cls, start) for cls, start in ours if cls]
    theirs = [(arpabet_class(name), start) for name, start in pocketsphinx_phones(
        np.concatenate([c.samples for c in chunks]), rate, text)]
    theirs = [(cls, start) for cls, start in theirs if cls]
    matcher = difflib.SequenceMatcher(a=[c for c, _ in ours], b=[c for c, _ in theirs], autojunk=False)
    differences = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            their_start = theirs[block.b + k][1]
            if their_start > 0:  # the first phone absorbs any leading silence in pocketsphinx
                differences.append(abs(ours[block.a + k][1] - their_start))
    return differences


def test_piper_phoneme_onsets_agree_with_pocketsphinx(piper_engine):
    differences = []
    for text in SENTENCES:
        per_sentence = onset_differences_s(piper_engine, text)
        assert len(per_sentence) >= 10, f"too few phones matched in {text!r}"
        differences.extend(per_sentence)
    median_ms = 1000 * statistics.median(differences)
    print(f"\nPiper vs pocketsphinx phone onsets: median |difference| {median_ms:.1f} ms "
          f"over {len(differences)} phones in {len(SENTENCES)} sentences")
    assert median_ms <= 20, f"median onset difference {median_ms:.1f} ms is over 20 ms"
