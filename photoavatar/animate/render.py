"""`photoavatar say`: render a talking video offline with the same pipeline as the live path.

Text -> speech segments (audio + viseme events + prosody) -> frames from animate/frames.py, the renderer the
server's video track uses too (the mixer at the middle of each frame's time on screen, the loudness rule, the
web client's compose on the idle loop) -> H.264 + AAC in one MP4.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from photoavatar.animate.frames import talk_frames
from photoavatar.avatar.bundle import AvatarBundle, load_bundle
from photoavatar.speech.types import ProsodyFrame, SpeechSegment, VisemeEvent

log = logging.getLogger(__name__)

TAIL_S = 0.4  # let the mouth settle back to Rest after the last sound
AUDIO_OUT_RATE_HZ = 44_100


@dataclass(frozen=True)
class SpokenText:
    """A whole utterance gathered from the speech stage: audio plus its timeline."""

    samples: np.ndarray  # int16 mono
    sample_rate_hz: int
    visemes: tuple[VisemeEvent, ...]
    prosody: tuple[ProsodyFrame, ...]
    text: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz

    def timeline_json(self) -> dict:
        return {
            "format_version": 1,
            "text": self.text,
            "sample_rate_hz": self.sample_rate_hz,
            "duration_samples": len(self.samples),
            "duration_s": self.duration_s,
            "visemes": [event.to_json() for event in self.visemes],
            "prosody": [frame.to_json() for frame in self.prosody],
        }


def gather(segments: Iterable[SpeechSegment], text: str) -> SpokenText:
    audio, visemes, prosody, rate = [], [], [], 0
    for segment in segments:
        rate = segment.audio.sample_rate_hz
        audio.append(segment.audio.samples)
        visemes.extend(segment.visemes)
        prosody.extend(segment.prosody)
    samples = np.concatenate(audio) if audio else np.zeros(0, dtype=np.int16)
    return SpokenText(samples.astype(np.int16), rate or 22_050, tuple(visemes), tuple(prosody), text)


def speak_text(text: str, *, engine: str = "piper", voice: str | None = None) -> SpokenText:
    from photoavatar.speech.pipeline import stream_speech
    from photoavatar.speech.voices import make_engine

    return gather(stream_speech(make_engine(engine), text, voice), text)


def speak_audio(audio: Path, text: str | None = None, language: str = "en-us") -> SpokenText:
    """A recording's speech (its transcript TEXT aligned when given, else recognised): speech/audio_speech.py."""
    from photoavatar.speech.audio_input import decode_audio
    from photoavatar.speech.audio_speech import segments_from_audio

    return gather(segments_from_audio(decode_audio(audio), text, language), text or "")


def render_talk(*, avatar: Path, text: str | None, out: Path, voice: str | None = None, engine: str = "piper",
                timeline_path: Path | None = None, plot_path: Path | None = None, audio: Path | None = None,
                language: str = "en-us") -> Path:
    """Render TEXT spoken by ENGINE, or, given AUDIO, that recording (TEXT then is its optional transcript)."""
    bundle = load_bundle(Path(avatar))
    spoken = speak_audio(audio, text, language) if audio else speak_text(text, engine=engine, voice=voice)
    if timeline_path:
        Path(timeline_path).write_text(json.dumps(spoken.timeline_json(), indent=1) + "\n")
        log.info("timeline written to %s", timeline_path)
    if plot_path:
        from photoavatar.animate.plot import plot_timeline

        plot_timeline(spoken, Path(plot_path))
        log.info("timeline plot written to %s", plot_path)
    write_talk_video(bundle, spoken, Path(out))
    return Path(out)


def write_talk_video(bundle: AvatarBundle, spoken: SpokenText, out: Path) -> None:
    """Encode the composed frames and the speech audio; written beside `out`, renamed when complete."""
    width, height = bundle.manifest.frame_size_px
    partial = out.with_name(f".{out.name}.partial.mp4")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(partial), "w", options={"movflags": "+faststart"}) as container:
            video = _add_video_stream(container, (height, width), bundle.manifest.fps)
            audio = container.add_stream("aac", rate=AUDIO_OUT_RATE_HZ, layout="mono")
            for frame in talk_frames(bundle, spoken.visemes, spoken.prosody, spoken.duration_s + TAIL_S):
                container.mux(video.encode(av.VideoFrame.from_ndarray(frame.picture, format="rgb24")))
            container.mux(video.encode())
            _encode_audio(container, audio, spoken)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)


def _add_video_stream(container, shape: tuple[int, ...], fps: int):
    stream = container.add_stream("libx264", rate=fps)
    stream.height, stream.width = shape[0] - shape[0] % 2, shape[1] - shape[1] % 2
    stream.pix_fmt = "yuv420p"
    stream.options = {"preset": "veryfast", "crf": "20"}
    return stream


def _encode_audio(container, stream, spoken: SpokenText) -> None:
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=AUDIO_OUT_RATE_HZ)
    source = av.AudioFrame.from_ndarray(spoken.samples.reshape(1, -1), format="s16", layout="mono")
    source.sample_rate = spoken.sample_rate_hz
    source.time_base = Fraction(1, spoken.sample_rate_hz)
    source.pts = 0
    for frame in resampler.resample(source) + resampler.resample(None):
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
