"""The adapter to pocketsphinx (CMU Sphinx): its English acoustic model, its phone set, its 10 ms frames.

pocketsphinx's wheel ships a 16 kHz US-English acoustic model, a dictionary and a phone language model, so
both uses here run offline: forced alignment of a known phone sequence (forced_align.py) and phone-loop
recognition when there is no transcript (audio_visemes.py). Its phones are ARPAbet; this module owns the one
table between ARPAbet and the IPA our engines write (espeak-ng conventions), in both directions.

Sounds of other languages are aligned with the English model through the nearest English phone (a German
/y/ as UW, /x/ as HH): the boundaries of a sequence whose order is known are found well enough by a
neighbouring sound, and the IPA of the transcript, not the English stand-in, is what the timeline shows.
"""

from __future__ import annotations

import re

import numpy as np

from photoavatar.speech.ipa import core_symbol

SAMPLE_RATE_HZ = 16000
FRAME_SAMPLES = 160  # 10 ms frames
SILENCE_PHONE = "SIL"

# IPA (core symbol, espeak-ng) -> the English phones pocketsphinx aligns it as.
IPA_TO_ARPABET: dict[str, tuple[str, ...]] = {
    # vowels and diphthongs
    "a": ("AA",), "ɑ": ("AA",), "ɒ": ("AA",), "æ": ("AE",), "ɐ": ("AH",), "ʌ": ("AH",), "ə": ("AH",),
    "ɛ": ("EH",), "e": ("EY",), "ɪ": ("IH",), "ᵻ": ("IH",), "ɨ": ("IH",), "i": ("IY",), "o": ("OW",),
    "ɔ": ("AO",), "u": ("UW",), "ʊ": ("UH",), "ɜ": ("ER",), "ɝ": ("ER",), "ɚ": ("ER",), "ɘ": ("AH",),
    "ɯ": ("UW",), "ɤ": ("AH",), "y": ("UW",), "ʏ": ("UH",), "ʉ": ("UW",), "ø": ("ER",), "œ": ("ER",),
    "ɵ": ("ER",), "ɞ": ("ER",), "ɶ": ("AA",),
    "aɪ": ("AY",), "aʊ": ("AW",), "eɪ": ("EY",), "oʊ": ("OW",), "əʊ": ("OW",), "ɔɪ": ("OY",),
    "eə": ("EH", "AH"), "ɪə": ("IH", "AH"), "ʊə": ("UH", "AH"), "ɔø": ("OY",), "ɔʏ": ("OY",),
    # consonants
    "p": ("P",), "b": ("B",), "t": ("T",), "d": ("D",), "ɾ": ("D",), "k": ("K",), "ɡ": ("G",), "g": ("G",),
    "f": ("F",), "v": ("V",), "θ": ("TH",), "ð": ("DH",), "s": ("S",), "z": ("Z",), "ʃ": ("SH",),
    "ʒ": ("ZH",), "h": ("HH",), "tʃ": ("CH",), "dʒ": ("JH",), "m": ("M",), "n": ("N",), "ŋ": ("NG",),
    "l": ("L",), "ɫ": ("L",), "ɹ": ("R",), "r": ("R",), "ɻ": ("R",), "ʁ": ("R",), "ʀ": ("R",),
    "w": ("W",), "ʍ": ("W",), "j": ("Y",), "ts": ("T", "S"), "dz": ("D", "Z"), "pf": ("P", "F"),
    "x": ("HH",), "χ": ("HH",), "ç": ("HH",), "ɣ": ("G",), "ɲ": ("N",), "ʎ": ("L",), "ɱ": ("M",),
    "ʋ": ("V",), "β": ("V",), "ɸ": ("F",), "ɕ": ("SH",), "ʑ": ("ZH",), "ʂ": ("SH",), "ʐ": ("ZH",),
    "ɦ": ("HH",), "c": ("K",), "ɟ": ("G",), "q": ("K",), "ɢ": ("G",), "ɴ": ("NG",), "ɭ": ("L",),
    "ʈ": ("T",), "ɖ": ("D",), "ɳ": ("N",), "ɽ": ("D",), "ɬ": ("L",), "ʝ": ("Y",), "ɥ": ("W",),
    "ɰ": ("W",), "ʔ": (), "ʕ": ("HH",), "ħ": ("HH",),
}

# ARPAbet -> IPA, for phones recognised without a transcript (the en-us espeak-ng spelling of each).
ARPABET_TO_IPA: dict[str, str] = {
    "AA": "ɑː", "AE": "æ", "AH": "ʌ", "AO": "ɔː", "AW": "aʊ", "AY": "aɪ", "EH": "ɛ", "ER": "ɚ", "EY": "eɪ",
    "IH": "ɪ", "IY": "iː", "OW": "oʊ", "OY": "ɔɪ", "UH": "ʊ", "UW": "uː",
    "B": "b", "CH": "tʃ", "D": "d", "DH": "ð", "F": "f", "G": "ɡ", "HH": "h", "JH": "dʒ", "K": "k", "L": "l",
    "M": "m", "N": "n", "NG": "ŋ", "P": "p", "R": "ɹ", "S": "s", "SH": "ʃ", "T": "t", "TH": "θ", "V": "v",
    "W": "w", "Y": "j", "Z": "z", "ZH": "ʒ",
}


class UnalignablePhonemeError(ValueError):
    pass


def arpabet_for(phoneme: str) -> tuple[str, ...]:
    """The English phones that stand for one IPA phoneme (() for a glottal stop, which has no phone)."""
    core = core_symbol(phoneme)
    if core in IPA_TO_ARPABET:
        return IPA_TO_ARPABET[core]
    phones: list[str] = []
    for char in core:  # a cluster espeak wrote as one sound ("iə", "ɔɪ̯"): letter by letter
        if char not in IPA_TO_ARPABET:
            raise UnalignablePhonemeError(f"no English stand-in for the sound {char!r} in {phoneme!r}; "
                                          "add it to IPA_TO_ARPABET in photoavatar/speech/sphinx.py")
        phones += IPA_TO_ARPABET[char]
    return tuple(phones)


def ipa_for(phone: str) -> str | None:
    """The IPA of a recognised ARPAbet phone; None for silence and noise (SIL, +NSN+...)."""
    return ARPABET_TO_IPA.get(phone.upper().rstrip("012"))


def model_path(name: str) -> str:
    import pocketsphinx

    return str(pocketsphinx.get_model_path() + "/" + name)


def to_16k(samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """int16 at the acoustic model's rate (zero-phase polyphase filter: no delay added to the timings)."""
    from math import gcd

    from scipy.signal import resample_poly

    if sample_rate_hz == SAMPLE_RATE_HZ:
        return np.asarray(samples, dtype=np.int16)
    divisor = gcd(SAMPLE_RATE_HZ, sample_rate_hz)
    resampled = resample_poly(np.asarray(samples, dtype=np.float32), SAMPLE_RATE_HZ // divisor,
                              sample_rate_hz // divisor)
    return np.clip(np.round(resampled), -32768, 32767).astype(np.int16)


def decoder(**options):
    """A pocketsphinx Decoder with the shipped English model, quiet, with options (allphone=..., lm=None...)."""
    import pocketsphinx

    return pocketsphinx.Decoder(loglevel="FATAL", **options)


def two_pass_alignment(decoder, pcm: bytes, align_text: str):
    """pocketsphinx's forced alignment of PCM (16 kHz int16 bytes) to ALIGN_TEXT: pass one places the words,
    pass two their phones. Returns the decoder's alignment (words, each iterable over its phones), or None;
    raises RuntimeError when no path through the text fits the audio."""
    decoder.set_align_text(align_text)
    for second_pass in (False, True):
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        if not second_pass:
            decoder.set_alignment()
    return decoder.get_alignment()


def align_to_dictionary(samples: np.ndarray, sample_rate_hz: int, text: str):
    """TEXT's words, as pocketsphinx's own dictionary (CMUdict, ARPAbet) says them, aligned to the audio:
    independent of our phonemiser, for checking it."""
    # bestpath off: its lattice can give a phone fewer frames than its HMM has states, failing pass two.
    words = " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())
    return two_pass_alignment(decoder(lm=None, bestpath=False), to_16k(samples, sample_rate_hz).tobytes(), words)


def frames_to_samples(frame: int, sample_rate_hz: int) -> int:
    """The sample (at SAMPLE_RATE_HZ of the caller) where 10 ms frame FRAME starts."""
    return round(frame * FRAME_SAMPLES * sample_rate_hz / SAMPLE_RATE_HZ)
