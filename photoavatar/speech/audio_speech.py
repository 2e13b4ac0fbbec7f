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
    """AudioChunks, back to back over the whole audio, each ending in the middle of a pause where there is one."""
    limit = int(MAX_SEGMENT_S * audio.sample_rate_hz)
    min_pause = int(SEGMENT_PAUSE_S * audio.sample_rate_hz)
    chunks: list[AudioChunk] = []
    begin, pending = 0, []
    best_cut: tuple[int, int] | None = None  # (pause length, index in pending after which to cut)
    for phoneme in phonemes:
        pending.append(phoneme)
        if is_silence(phoneme.phoneme) and len(pending) > 1:
            best_cut = max(best_cut or (0, 0), (phoneme.duration_samples, len(pending) - 1))
            if phoneme.duration_samples >= min_pause:
                best_cut = (phoneme.duration_samples, len(pending) - 1)
                begin, pending = _cut(audio, chunks, begin, pending, best_cut[1], text if not chunks else "")
                best_cut = None
                continue
        if phoneme.end_sample - begin > limit and best_cut is not None:
            begin, pending = _cut(audio, chunks, begin, pending, best_cut[1], text if not chunks else "")
            best_cut = None
    if pending:
        _cut(audio, chunks, begin, pending, len(pending) - 1, text if not chunks else "", whole=True)
    return chunks


def _cut(audio: DecodedAudio, chunks: list[AudioChunk], begin: int, pending: list[PhonemeTiming], index: int,
         text: str, whole: bool = False) -> tuple[int, list[PhonemeTiming]]:
    """Close a chunk in the middle of pending[index] (a pause), or at the end of everything when WHOLE."""
    if whole:
        end, kept, rest = pending[-1].end_sample, pending, []
    else:
        pause = pending[index]
        end = pause.start_sample + pause.duration_samples // 2
        kept = [*pending[:index], PhonemeTiming(pause.phoneme, pause.start_sample, end - pause.start_sample)]
        rest = [PhonemeTiming(pause.phoneme, end, pause.end_sample - end), *pending[index + 1:]]
        rest = [p for p in rest if p.duration_samples > 0]
    chunks.append(AudioChunk(audio.samples[begin:end], audio.sample_rate_hz, begin, tuple(kept), text))
    return end, rest

