"""Speech segments from audio we did not synthesise: the same SpeechSegments the Piper path yields.

With a transcript the phonemes come from forced alignment (forced_align.py); without one, or when the
transcript does not fit the audio, from recognition (phone_recognition.py): for English, recognised words
aligned like a transcript; for other languages, the phone loop. Either way the timings go
through the same pipeline as synthesised speech (a closure lead-in, VisemeTimeline, prosody), so every stage
after speech/ is unchanged. The audio is cut into segments at pauses so a session can send the timeline in
pieces; each segment is one AudioChunk with the phonemes it contains.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from photoavatar.speech.audio_input import DecodedAudio
from photoavatar.speech.forced_align import AlignmentError, align_transcript
from photoavatar.speech.ipa import is_silence
from photoavatar.speech.phone_recognition import recognise_phones, recognise_words
from photoavatar.speech.pipeline import analyze_chunk, delay, prepend_silence
from photoavatar.speech.timeline import VisemeTimeline, lead_in_samples
from photoavatar.speech.types import AudioChunk, PhonemeTiming, SpeechSegment

log = logging.getLogger(__name__)

ALIGNED = "transcript aligned"
WORDS = "recognised words aligned"
PHONES = "phone loop"
SEGMENT_PAUSE_S = 0.25  # a pause at least this long may end a segment
MAX_SEGMENT_S = 8.0  # segments are cut at the longest pause within this span when there is no long pause


@dataclass(frozen=True)
class AudioTiming:
    """The phonemes found in a recording, and how."""

    phonemes: tuple[PhonemeTiming, ...]
    method: str  # ALIGNED, WORDS or PHONES
    note: str = ""  # why alignment fell back to recognition, if it did


def time_phonemes(audio: DecodedAudio, transcript: str | None = None, language: str = "en-us") -> AudioTiming:
    """Phoneme timings tiling the whole audio: aligned to TRANSCRIPT when it fits, else recognised."""
    note = ""
    if transcript and transcript.strip():
        try:
            return AudioTiming(tuple(align_transcript(audio.samples, audio.sample_rate_hz, transcript, language)),
                               ALIGNED)
        except AlignmentError as error:
            log.warning("transcript not aligned, recognising instead: %s", error)
            note = f"transcript not used: {error}"
    if language.lower().startswith("en"):
        words = recognise_words(audio.samples, audio.sample_rate_hz)
        try:
            if words:
                return AudioTiming(tuple(align_transcript(audio.samples, audio.sample_rate_hz, words, "en-us")),
                                   WORDS, note)
        except AlignmentError as error:  # rare: the recogniser's own words should fit
            log.info("recognised words %r not aligned (%s); using the phone loop", words, error)
    return AudioTiming(tuple(recognise_phones(audio.samples, audio.sample_rate_hz)), PHONES, note)


def speech_segments(audio: DecodedAudio, timing: AudioTiming, text: str = "") -> Iterator[SpeechSegment]:
    """The audio as SpeechSegments (visemes and prosody), cut at pauses; lazily, segment by segment."""
    chunks = split_at_pauses(audio, timing.phonemes, text)
    if not chunks:
        return
    timeline = VisemeTimeline(audio.sample_rate_hz)
    shift = lead_in_samples(chunks[0].phonemes, audio.sample_rate_hz)
    for index, chunk in enumerate(chunks):
        chunk = prepend_silence(chunk, shift) if index == 0 else delay(chunk, shift)
        yield analyze_chunk(chunk, timeline)


def segments_from_audio(audio: DecodedAudio, transcript: str | None = None,
                        language: str = "en-us") -> Iterator[SpeechSegment]:
    """Everything in one call: time the phonemes (the slow part, done at the first next()), then segment."""
    timing = time_phonemes(audio, transcript, language)
    yield from speech_segments(audio, timing, transcript or "")


def split_at_pauses(audio: DecodedAudio, phonemes: tuple[PhonemeTiming, ...], text: str = "") -> list[AudioChunk]:
    """AudioChunks, back to back over the whole audio, cut in the middle of pauses (TEXT goes with the first)."""
    bounds = [0, *_cut_points(phonemes, audio.sample_rate_hz), len(audio.samples)]
    return [AudioChunk(audio.samples[begin:end], audio.sample_rate_hz, begin,
                       tuple(clip_phonemes(phonemes, begin, end)), text if index == 0 else "")
            for index, (begin, end) in enumerate(zip(bounds, bounds[1:], strict=False)) if end > begin]


def _cut_points(phonemes: tuple[PhonemeTiming, ...], rate_hz: int) -> list[int]:
    """Where segments end: the middle of every pause of SEGMENT_PAUSE_S or more; within MAX_SEGMENT_S of speech
    without one, the middle of its longest pause, or, with no pause at all, the end of a sound."""
    min_pause, limit = SEGMENT_PAUSE_S * rate_hz, MAX_SEGMENT_S * rate_hz
    cuts: list[int] = []
    begin, longest = 0, None  # the segment's start; (length, middle) of its longest pause so far
    for index, phoneme in enumerate(phonemes):
        if is_silence(phoneme.phoneme) and 0 < index < len(phonemes) - 1:
            middle = phoneme.start_sample + phoneme.duration_samples // 2
            longest = max(longest or (0, 0), (phoneme.duration_samples, middle))
            if phoneme.duration_samples >= min_pause:
                cuts.append(middle)
                begin, longest = middle, None
                continue
        if phoneme.end_sample - begin > limit:
            cut = longest[1] if longest else phoneme.end_sample
            cuts.append(cut)
            begin, longest = cut, None
    return cuts


def clip_phonemes(phonemes, start: int, end: int) -> list[PhonemeTiming]:
    """The timings inside [start, end), the ones at the edges cut to it."""
    clipped = []
    for p in phonemes:
        begin, stop = max(start, p.start_sample), min(end, p.end_sample)
        if stop > begin:
            clipped.append(PhonemeTiming(p.phoneme, begin, stop - begin, p.stress))
    return clipped
