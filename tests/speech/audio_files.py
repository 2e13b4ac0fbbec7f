"""Test audio: speech encoded to common formats with PyAV, and tones for bad audio."""

from __future__ import annotations

import io

import av
import numpy as np

# container, codec, encoder sample rate (None: the source's)
FORMATS = {
    "wav": ("wav", "pcm_s16le", None),
    "mp3": ("mp3", "libmp3lame", None),
    "ogg": ("ogg", "libopus", 48000),
    "flac": ("flac", "flac", None),
}


def encode(samples: np.ndarray, sample_rate_hz: int, kind: str = "wav", channels: int = 1) -> bytes:
    """SAMPLES (mono int16) as a file of KIND, through FFmpeg's own muxers and encoders."""
    container_format, codec, codec_rate = FORMATS[kind]
    buffer = io.BytesIO()
    layout = "mono" if channels == 1 else "stereo"
    with av.open(buffer, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=codec_rate or sample_rate_hz, layout=layout)
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout,
                                      rate=codec_rate or sample_rate_hz)
        planar = np.repeat(samples[None, :], channels, axis=0)
        frame = av.AudioFrame.from_ndarray(planar.astype(np.int16), format="s16p", layout=layout)
        frame.sample_rate = sample_rate_hz
        for resampled in resampler.resample(frame):
            for packet in stream.encode(resampled):
                container.mux(packet)
        for resampled in resampler.resample(None):
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def tone(seconds: float, sample_rate_hz: int, frequencies_hz=(220.0,), level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    wave = sum(np.sin(2 * np.pi * f * t) for f in frequencies_hz) / len(frequencies_hz)
    return (level * 32767 * wave).astype(np.int16)
