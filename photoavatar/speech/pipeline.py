"""Text to speech segments: each audio chunk with its viseme events and prosody frames, as soon as it is ready.

The pipeline is lazy (nothing runs until the first segment is asked for) and cancellable: closing the iterator
closes the engine's, which stops synthesis. When the text starts with a closure ("Bob..."), the lips must close
before the first sound (timeline.lead_in_samples says for how long). Two ways, on one clock for audio, phonemes,
visemes and prosody:
- LEAD_IN_SILENCE (offline video, which starts at the first sample): that much silence before the first chunk,
  every later time moved with it;
- LEAD_IN_EVENTS (live): no added silence; the first events start before time 0 (negative start_s). Events
  reach a live client ahead of the audio they describe (its jitter buffer holds the audio), so it can close
  the lips before the first sample plays; the listener hears the first word that much sooner.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from photoavatar.speech import stages
from photoavatar.speech.engine import SpeechEngine
from photoavatar.speech.ipa import SILENCE
from photoavatar.speech.prosody import analyze_prosody
from photoavatar.speech.timeline import VisemeTimeline, lead_in_samples
from photoavatar.speech.types import AudioChunk, PhonemeTiming, SpeechSegment

LEAD_IN_SILENCE = "silence"
LEAD_IN_EVENTS = "events"


def stream_speech(engine: SpeechEngine, text: str, voice_id: str | None = None,
                  lead_in: str = LEAD_IN_SILENCE) -> Iterator[SpeechSegment]:
    """Yield one SpeechSegment per chunk the engine yields (SpeechError for text it cannot speak)."""
    if lead_in not in (LEAD_IN_SILENCE, LEAD_IN_EVENTS):
        raise ValueError(f"lead_in must be {LEAD_IN_SILENCE!r} or {LEAD_IN_EVENTS!r}, got {lead_in!r}")
    chunks = iter(engine.synthesize(text, voice_id))
    try:
        timeline: VisemeTimeline | None = None
        shift = 0
        for chunk in chunks:
            if timeline is None:
                lead = lead_in_samples(chunk.phonemes, chunk.sample_rate_hz)
                if lead_in == LEAD_IN_EVENTS:
                    timeline = VisemeTimeline(chunk.sample_rate_hz, lead_s=lead / chunk.sample_rate_hz)
                else:
                    timeline, shift = VisemeTimeline(chunk.sample_rate_hz), lead
                    chunk = prepend_silence(chunk, shift)
            else:
                chunk = delay(chunk, shift)
            yield analyze_chunk(chunk, timeline)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # cancel the engine's work too


def analyze_chunk(chunk: AudioChunk, timeline: VisemeTimeline) -> SpeechSegment:
    with stages.timed(stages.TIMELINE):
        visemes = timeline.add(chunk)
    with stages.timed(stages.PROSODY):
        prosody = analyze_prosody(chunk.samples, chunk.sample_rate_hz, chunk.start_sample, chunk.phonemes)
    return SpeechSegment(chunk, tuple(visemes), tuple(prosody))


def prepend_silence(chunk: AudioChunk, samples: int) -> AudioChunk:
    """CHUNK (the utterance's first) with SAMPLES of silence before it, timed as a silence phoneme."""
    if samples <= 0:
        return chunk
    audio = np.concatenate([np.zeros(samples, dtype=chunk.samples.dtype), chunk.samples])
    silence = PhonemeTiming(SILENCE, chunk.start_sample, samples)
    phrase = (silence, *_shifted(chunk.phrase, samples)) if chunk.phrase else ()
    return AudioChunk(audio, chunk.sample_rate_hz, chunk.start_sample, (silence, *_shifted(chunk.phonemes, samples)),
                      chunk.text, phrase)


def delay(chunk: AudioChunk, samples: int) -> AudioChunk:
    if samples <= 0:
        return chunk
    return AudioChunk(chunk.samples, chunk.sample_rate_hz, chunk.start_sample + samples,
                      _shifted(chunk.phonemes, samples), chunk.text, _shifted(chunk.phrase, samples))


def _shifted(phonemes: tuple[PhonemeTiming, ...], samples: int) -> tuple[PhonemeTiming, ...]:
    return tuple(PhonemeTiming(p.phoneme, p.start_sample + samples, p.duration_samples, p.stress) for p in phonemes)
