"""Visemes for speech audio that arrives in real time (a voice agent's PCM frames): frames in, segments out.

`AudioStreamAnalyser.push(pcm)` feeds the phone loop (phone_recognition.PhoneLoop) and returns the
SpeechSegments that are ready. Audio is held back HOLD_BACK_S: phones that recent may still change as the
search sees more audio, and the timeline needs to know the next sounds to shape the mouth before them
(coarticulation lead, a closure's window before its release). A segment is emitted once EMIT_STEP_S of audio
is ready, and the decoder itself trails the input by up to DECODER_LAG_S, so emitted audio trails the input by
at most MAX_DELAY_S = 140 ms (tests/speech/test_audio_stream.py measures it with 10 and 20 ms frames). A longer
hold-back does not help: bench/audio_visemes.py measured the same accuracy with 100 ms, 300 ms and 2 s.

Each segment's events come from the same timeline rules as the offline path (timeline.build_viseme_events),
computed over a window of CONTEXT_S of the phonemes already sent, the segment, and the look-ahead, then
clipped to the segment: shapes that begin before a segment's first sound are in the segment before it.

A long stream is decoded by a chain of phone loops, each started in a pause (RESTART_AFTER_S), with the audio
since that point fed again and the previous loop's channel estimate, so the cost per frame stays flat.
"""

from __future__ import annotations

from dataclasses import replace

import av
import numpy as np

from photoavatar.speech import sphinx
from photoavatar.speech.audio_input import AudioInputError, check_sample_rate
from photoavatar.speech.audio_speech import clip_phonemes
from photoavatar.speech.ipa import is_silence
from photoavatar.speech.phone_recognition import PhoneLoop, timings_from_phones
from photoavatar.speech.prosody import analyze_prosody
from photoavatar.speech.timeline import build_viseme_events
from photoavatar.speech.types import AudioChunk, PhonemeTiming, SpeechSegment, VisemeEvent
from photoavatar.visemes import REST

HOLD_BACK_S = 0.06
EMIT_STEP_S = 0.04
DECODER_LAG_S = 0.04  # pocketsphinx's frames (10 ms, a 25 ms window) and its feature look-ahead, measured
MAX_DELAY_S = HOLD_BACK_S + EMIT_STEP_S + DECODER_LAG_S  # how far emitted audio may trail the input
CONTEXT_S = 0.5
PROSODY_PAD_S = 0.05  # audio either side of a segment for the pitch tracker's windows
MAX_STREAM_S = 600.0
# The phone loop's best path is re-read on every push, so its cost grows with its length: a long stream starts a
# new loop in a pause once the loop holds RESTART_AFTER_S, and anywhere once it holds RESTART_BY_S.
RESTART_AFTER_S = 8.0
RESTART_BY_S = 30.0


class AudioStreamAnalyser:
    """One utterance of streamed mono int16 PCM at SAMPLE_RATE_HZ, analysed as it arrives."""

    def __init__(self, sample_rate_hz: int, hold_back_s: float = HOLD_BACK_S, emit_step_s: float = EMIT_STEP_S,
                 restart_after_s: float = RESTART_AFTER_S):
        check_sample_rate(sample_rate_hz)
        self.sample_rate_hz = sample_rate_hz
        self._hold = round(hold_back_s * sample_rate_hz)
        self._step = max(1, round(emit_step_s * sample_rate_hz))
        self._context = round(CONTEXT_S * sample_rate_hz)
        self._loop = PhoneLoop()
        self._to_16k = av.AudioResampler(format="s16", layout="mono", rate=sphinx.SAMPLE_RATE_HZ)
        self._audio = np.zeros(0, dtype=np.int16)  # received samples from _audio_start on
        self._audio_start = 0
        self._received = 0
        self._audio_16k = np.zeros(0, dtype=np.int16)  # fed to the loop, from _loop_origin_16k on
        self._loop_origin_16k = 0  # where the current phone loop starts (a multiple of a frame)
        self._emitted = 0  # segments cover [0, _emitted)
        self._sent: list[PhonemeTiming] = []  # the phonemes of segments already emitted (the recent ones)
        self._finished = False
        self._restart_after_s = restart_after_s

    @property
    def hold_back_s(self) -> float:
        return self._hold / self.sample_rate_hz

    def push(self, pcm: np.ndarray | bytes) -> list[SpeechSegment]:
        """Add PCM (int16 samples, or little-endian bytes); the segments that became ready."""
        if self._finished:
            raise AudioInputError("this audio stream has ended; start a new one")
        samples = _as_samples(pcm)
        if self._received + len(samples) > MAX_STREAM_S * self.sample_rate_hz:
            raise AudioInputError(f"an audio stream may last {MAX_STREAM_S:.0f} s; end it and start another")
        if len(samples) == 0:
            return []
        self._audio = np.concatenate([self._audio, samples])
        self._received += len(samples)
        self._feed(self._resample(samples))
        ready = min(self._received, self._decoded_samples()) - self._hold
        if ready - self._emitted < self._step:
            return []
        return [self._segment(ready, final=False)]

    def finish(self) -> list[SpeechSegment]:
        """The end of the utterance: everything still held back, as the last segment."""
        if self._finished:
            return []
        self._finished = True
        self._feed(_frames_samples(self._to_16k.resample(None)))
        self._loop.finish()
        if self._received <= self._emitted:
            return []
        return [self._segment(self._received, final=True)]

    # -- internals ------------------------------------------------------------------------------------

    def _resample(self, samples: np.ndarray) -> np.ndarray:
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = self.sample_rate_hz
        return _frames_samples(self._to_16k.resample(frame))

    def _feed(self, audio_16k: np.ndarray) -> None:
        self._loop.push(audio_16k)
        self._audio_16k = np.concatenate([self._audio_16k, audio_16k])

    def _origin_frames(self) -> int:
        return self._loop_origin_16k // sphinx.FRAME_SAMPLES

    def _decoded_samples(self) -> int:
        return sphinx.frames_to_samples(self._loop.frames + self._origin_frames(), self.sample_rate_hz)

    def _phones(self) -> list[tuple[str, int, int]]:
        origin = self._origin_frames()
        return [(phone, first + origin, end + origin) for phone, first, end in self._loop.phones()]

    def _restart_if_long(self, ahead: list[PhonemeTiming]) -> None:
        """Start a new loop at the emitted end when this one is long and the audio there is a pause."""
        loop_s = self._loop.frames * sphinx.FRAME_SAMPLES / sphinx.SAMPLE_RATE_HZ
        in_pause = bool(ahead) and all(is_silence(p.phoneme) for p in ahead)
        if self._finished or loop_s < self._restart_after_s or (loop_s < RESTART_BY_S and not in_pause):
            return
        emitted_16k = self._emitted * sphinx.SAMPLE_RATE_HZ // self.sample_rate_hz
        origin = emitted_16k // sphinx.FRAME_SAMPLES * sphinx.FRAME_SAMPLES
        replay = self._audio_16k[origin - self._loop_origin_16k:]
        cepstral_mean = self._loop.cepstral_mean()
        self._loop.finish()
        self._loop = PhoneLoop(cepstral_mean)
        self._loop_origin_16k = origin
        self._audio_16k = np.zeros(0, dtype=np.int16)
        self._feed(replay)

    def _segment(self, end: int, final: bool) -> SpeechSegment:
        known_end = self._received if final else max(end, min(self._received, self._decoded_samples()))
        ahead = timings_from_phones(self._phones(), self.sample_rate_hz, self._emitted, known_end)
        inside = clip_phonemes(ahead, self._emitted, end)
        window = [*self._recent(), *ahead]
        events = _clip_events(build_viseme_events(window, self.sample_rate_hz), self._emitted / self.sample_rate_hz,
                              end / self.sample_rate_hz)
        chunk = AudioChunk(self._slice(self._emitted, end), self.sample_rate_hz, self._emitted, tuple(inside))
        prosody = self._prosody(self._emitted, end, known_end, inside)
        self._sent += inside
        self._emitted = end
        self._forget_old()
        self._restart_if_long(clip_phonemes(ahead, end, known_end))
        return SpeechSegment(chunk, tuple(events), tuple(prosody))

    def _recent(self) -> list[PhonemeTiming]:
        floor = self._emitted - self._context
        recent = [p for p in self._sent if p.end_sample > floor]
        return recent

    def _prosody(self, start: int, end: int, known_end: int, phonemes: list[PhonemeTiming]):
        pad = round(PROSODY_PAD_S * self.sample_rate_hz)
        begin = max(self._audio_start, start - pad)
        stop = min(known_end, end + pad)
        frames = analyze_prosody(self._slice(begin, stop), self.sample_rate_hz, begin, phonemes)
        start_s, end_s = start / self.sample_rate_hz, end / self.sample_rate_hz
        return [f for f in frames if start_s <= f.time_s < end_s]

    def _slice(self, begin: int, end: int) -> np.ndarray:
        return self._audio[begin - self._audio_start:end - self._audio_start]

    def _forget_old(self) -> None:
        keep_from = max(self._audio_start, self._emitted - self._context)
        self._audio = self._audio[keep_from - self._audio_start:]
        self._audio_start = keep_from
        self._sent = self._recent()


def _as_samples(pcm: np.ndarray | bytes) -> np.ndarray:
    if isinstance(pcm, bytes | bytearray | memoryview):
        if len(pcm) % 2:
            raise AudioInputError("PCM bytes come in pairs (int16 little-endian); got an odd number of bytes")
        return np.frombuffer(bytes(pcm), dtype="<i2").astype(np.int16)
    samples = np.asarray(pcm)
    if samples.ndim != 1 or samples.dtype != np.int16:
        raise AudioInputError(f"PCM must be mono int16, got {samples.dtype} with shape {samples.shape}")
    return samples


def _frames_samples(frames: list[av.AudioFrame]) -> np.ndarray:
    if not frames:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16, copy=False)


def _clip_events(events: list[VisemeEvent], start_s: float, end_s: float) -> list[VisemeEvent]:
    clipped = [replace(e, start_s=max(e.start_s, start_s), end_s=min(e.end_s, end_s)) for e in events]
    clipped = [e for e in clipped if e.end_s - e.start_s > 1e-9]
    if not clipped:
        return [VisemeEvent(REST, start_s, end_s)]
    return clipped
