"""Text to speech segments: each audio chunk with its viseme events and prosody frames, as soon as it is ready.

The pipeline is lazy (nothing runs until the first segment is asked for) and cancellable: closing the iterator
closes the engine's, which stops synthesis. When the text starts with a closure ("Bob..."), the first chunk gets
a little leading silence (timeline.lead_in_samples) so the lips can close before the first sound; every later
time moves with it, so audio, phonemes, visemes and prosody stay on one clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from photoavatar.speech.engine import SpeechEngine
from photoavatar.speech.ipa import SILENCE
from photoavatar.speech.prosody import analyze_prosody
from photoavatar.speech.timeline import VisemeTimeline, lead_in_samples
from photoavatar.speech.types import AudioChunk, PhonemeTiming, SpeechSegment


def stream_speech(engine: SpeechEngine, text: str, voice_id: str | None = None) -> Iterator[SpeechSegment]:
    """Yield one SpeechSegment per chunk the engine yields (SpeechError for text it cannot speak)."""
    chunks = iter(engine.synthesize(text, voice_id))
    try:
        timeline: VisemeTimeline | None = None
        shift = 0
        for chunk in chunks:
            if timeline is None:
                timeline = VisemeTimeline(chunk.sample_rate_hz)
                shift = lead_in_samples(chunk.phonemes, chunk.sample_rate_hz)
                chunk = prepend_silence(chunk, shift)
            else:
                chunk = delay(chunk, shift)
            yield analyze_chunk(chunk, timeline)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # cancel the engine's work too


def analyze_chunk(chunk: AudioChunk, timeline: VisemeTimeline) -> SpeechSegment:
    visemes = timeline.add(chunk)
    prosody = analyze_prosody(chunk.samples, chunk.sample_rate_hz, chunk.start_sample, chunk.phonemes)
    return SpeechSegment(chunk, tuple(visemes), tuple(prosody))


def prepend_silence(chunk: AudioChunk, samples: int) -> AudioChunk:
    """CHUNK (the utterance's first) with SAMPLES of silence before it, timed as a silence phoneme."""
    if samples <= 0:
        return chunk
    audio = np.concatenate([np.zeros(samples, dtype=chunk.samples.dtype), chunk.samples])
    phonemes = (PhonemeTiming(SILENCE, chunk.start_sample, samples), *_shifted(chunk.phonemes, samples))
    return AudioChunk(audio, chunk.sample_rate_hz, chunk.start_sample, phonemes, chunk.text)


def delay(chunk: AudioChunk, samples: int) -> AudioChunk:
    if samples <= 0:
        return chunk
    return AudioChunk(chunk.samples, chunk.sample_rate_hz, chunk.start_sample + samples,
                      _shifted(chunk.phonemes, samples), chunk.text)


def _shifted(phonemes: tuple[PhonemeTiming, ...], samples: int) -> tuple[PhonemeTiming, ...]:
    return tuple(PhonemeTiming(p.phoneme, p.start_sample + samples, p.duration_samples, p.stress) for p in phonemes)
