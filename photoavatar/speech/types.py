"""Values that flow out of the speech stage. Times are samples (int) or seconds (float), named in the field."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PhonemeTiming:
    """One speech sound as the engine timed it, relative to the start of the utterance."""

    phoneme: str  # IPA for one sound: stress marks removed, length marks and diphthongs merged
    start_sample: int
    duration_samples: int
    stress: int = 0  # 0 none, 1 primary, 2 secondary (from the stress mark that preceded it)

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.duration_samples


@dataclass(frozen=True)
class AudioChunk:
    """Mono 16-bit PCM as an engine yields it, with the timing of the sounds it contains."""

    samples: np.ndarray  # int16, shape (n,)
    sample_rate_hz: int
    start_sample: int  # where this chunk starts in the utterance
    phonemes: tuple[PhonemeTiming, ...] = ()  # utterance-relative times
    text: str = ""  # the text this chunk speaks
    # The timings of the whole phrase (one model run) this chunk is a stretch of, when the engine knows them
    # before the phrase's audio; () when the chunk is a whole phrase. The viseme timeline coarticulates over it.
    phrase: tuple[PhonemeTiming, ...] = ()

    @property
    def end_sample(self) -> int:
        return self.start_sample + len(self.samples)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz


@dataclass(frozen=True)
class VisemeEvent:
    """The mixer's target weight for one viseme from start_s to end_s (seconds of utterance audio)."""

    viseme: str
    start_s: float
    end_s: float
    weight: float = 1.0

    def to_json(self) -> dict:
        return {"viseme": self.viseme, "start_s": self.start_s, "end_s": self.end_s, "weight": self.weight}

    @classmethod
    def from_json(cls, data: dict) -> VisemeEvent:
        return cls(str(data["viseme"]), float(data["start_s"]), float(data["end_s"]), float(data.get("weight", 1.0)))


@dataclass(frozen=True)
class ProsodyFrame:
    """Loudness, pitch and accent of the audio around time_s (seconds of utterance audio)."""

    time_s: float
    loudness_db: float  # RMS in dBFS (full-scale sine is about -3 dB); -100 for digital silence
    pitch_hz: float  # 0.0 where unvoiced
    accent: float = 0.0  # 0 none, up to 1 for a strong pitch/loudness peak on a stressed syllable

    def to_json(self) -> dict:
        return {"time_s": self.time_s, "loudness_db": self.loudness_db, "pitch_hz": self.pitch_hz, "accent": self.accent}

    @classmethod
    def from_json(cls, data: dict) -> ProsodyFrame:
        return cls(float(data["time_s"]), float(data["loudness_db"]), float(data["pitch_hz"]), float(data.get("accent", 0.0)))


@dataclass(frozen=True)
class SpeechSegment:
    """One chunk of audio with everything a renderer or a transport needs to animate it."""

    audio: AudioChunk
    visemes: tuple[VisemeEvent, ...] = ()
    prosody: tuple[ProsodyFrame, ...] = ()


@dataclass(frozen=True)
class VoiceInfo:
    voice_id: str
    name: str
    language: str  # BCP-47-ish, e.g. "en-US"
    engine: str
    sample_rate_hz: int = 0
    details: dict = field(default_factory=dict)
