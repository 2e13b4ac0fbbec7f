"""Speech sounds found in audio with no transcript, by pocketsphinx's English acoustic model.

Two ways, both measured against the true timing of Piper audio in bench/audio_visemes.py:
- `recognise_words`: recognise English words (the shipped trigram language model and dictionary), then
  force-align them like a transcript. Misheard words are still words that sound alike ("violence" for
  "violins"), so their phones are close to what was said, and the alignment places them as precisely as a
  real transcript does. The default for English recordings.
- `PhoneLoop` / `recognise_phones`: the phone loop (phones under a phone-trigram model, no words). Less
  accurate (a phone sequence is only loosely constrained), but it knows no vocabulary, so it serves any
  language, and it decodes incrementally: the streaming form uses it.
Frame classification by spectrum (MFCC/formants, as Rhubarb or uLipSync do) was not chosen: it needs a
classifier trained on labelled speech, which pocketsphinx's model already is, and it cannot use what a
sequence model knows about which sounds follow which (so it cannot tell a short /b/ closure from a pause).

Phones that end well before the newest audio no longer change in the phone loop's search; the streaming
analyser keeps a hold-back for that.
"""

from __future__ import annotations

import numpy as np

from photoavatar.speech import sphinx
from photoavatar.speech.ipa import SILENCE, is_vowel
from photoavatar.speech.types import PhonemeTiming

PHONE_LM = "en-us/en-us-phone.lm.bin"
# Weight of the phone trigrams against the acoustics. pocketsphinx's default (6.5) is tuned for words; for
# phones it forces common sequences over what was said. 2.0 is best on bench/audio_visemes.py's sentences
# (onset median 32-35 ms vs 50-95 ms at 3.0-6.5; closures found 86 % vs 80 %).
PHONE_LANGUAGE_WEIGHT = 2.0


class PhoneLoop:
    """Incremental phone recognition over 16 kHz audio; times are 10 ms frames from the start."""

    def __init__(self, cepstral_mean: str | None = None):
        self._decoder = sphinx.decoder(allphone=sphinx.model_path(PHONE_LM), lm=None, bestpath=False,
                                       lw=PHONE_LANGUAGE_WEIGHT)
        if cepstral_mean:  # a loop that continues another starts from its channel estimate, not the prior
            self._decoder.set_cmn(cepstral_mean)
        self._decoder.start_utt()
        self.frames = 0
        self._ended = False

    def push(self, audio_16k: np.ndarray) -> None:
        if len(audio_16k):
            self._decoder.process_raw(np.ascontiguousarray(audio_16k, dtype=np.int16).tobytes(), full_utt=False)
            self.frames = self._decoder.n_frames()

    def finish(self) -> None:
        if not self._ended:
            self._decoder.end_utt()
            self._ended = True

    def cepstral_mean(self) -> str:
        """The channel estimate so far (live cepstral mean normalisation), to hand to a following loop."""
        return self._decoder.get_cmn(False)

    def phones(self) -> list[tuple[str, int, int]]:
        """(ARPAbet phone or SIL/noise, first frame, end frame exclusive) of the best path so far."""
        return [(seg.word, seg.start_frame, seg.end_frame + 1) for seg in self._decoder.seg()]


def recognise_words(samples: np.ndarray, sample_rate_hz: int) -> str:
    """The English words pocketsphinx hears (its trigram language model and dictionary), as plain text."""
    # One pass (no flat-lexicon rescoring, no lattice search): half the time, the same words on clean speech.
    decoder = sphinx.decoder(fwdflat=False, bestpath=False)
    decoder.start_utt()
    decoder.process_raw(sphinx.to_16k(samples, sample_rate_hz).tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def recognise_phones(samples: np.ndarray, sample_rate_hz: int) -> list[PhonemeTiming]:
    """Phoneme timings (samples at SAMPLE_RATE_HZ) tiling the whole audio: recognised sounds and silences."""
    loop = PhoneLoop()
    loop.push(sphinx.to_16k(samples, sample_rate_hz))
    loop.finish()
    return timings_from_phones(loop.phones(), sample_rate_hz, 0, len(samples))


def timings_from_phones(phones: list[tuple[str, int, int]], sample_rate_hz: int, start_sample: int,
                        end_sample: int) -> list[PhonemeTiming]:
    """Recognised phones as back-to-back IPA timings covering [start_sample, end_sample) exactly."""
    timings: list[PhonemeTiming] = []
    cursor = start_sample
    for phone, first, end in phones:
        stop = min(end_sample, sphinx.frames_to_samples(end, sample_rate_hz))
        begin = max(cursor, sphinx.frames_to_samples(first, sample_rate_hz))
        if stop <= cursor:
            continue
        ipa = sphinx.ipa_for(phone) or SILENCE
        if begin > cursor:
            timings.append(PhonemeTiming(SILENCE, cursor, begin - cursor))
        if timings and timings[-1].phoneme == ipa == SILENCE:
            last = timings.pop()
            begin = last.start_sample
        # Stress is unknown: every vowel is a candidate accent, and prosody keeps the prominent ones.
        stress = 1 if ipa != SILENCE and is_vowel(ipa) else 0
        timings.append(PhonemeTiming(ipa, begin, stop - begin, stress))
        cursor = stop
        if cursor >= end_sample:
            break
    if cursor < end_sample:
        timings.append(PhonemeTiming(SILENCE, cursor, end_sample - cursor))
    return timings
