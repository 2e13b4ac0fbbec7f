"""Speech audio brought by the caller (a recording, another TTS, an agent's voice) decoded to mono int16 PCM.

Any container and codec FFmpeg (PyAV) reads is accepted: WAV, MP3, Ogg/Opus, FLAC, AAC/M4A... The first audio
stream is mixed down to mono and kept at its own rate (resampled to MAX_SAMPLE_RATE_HZ when higher), so what is
played is what was sent. The limits, and why:
- MIN_SAMPLE_RATE_HZ 8 kHz: below it speech sounds cannot be told apart (telephone audio still works, less well
  than wideband: the English acoustic model is 16 kHz);
- MAX_DURATION_S: one request is analysed as a whole (forced alignment holds the utterance in memory); longer
  recordings should be sent in pieces or streamed;
- silence (peak under SILENCE_PEAK_DBFS) is refused: there is nothing to animate, and it is usually a mistake
  (a muted microphone, the wrong file);
- clipping is measured, not refused: clipped speech still animates, and `clipped_fraction` says how much.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_SAMPLE_RATE_HZ = 8000
MAX_SAMPLE_RATE_HZ = 48000
MAX_DURATION_S = 300.0
MAX_FILE_BYTES = 64 * 1024 * 1024
SILENCE_PEAK_DBFS = -60.0
CLIP_LEVEL = 32000  # |sample| at or above this counts as clipped (int16 full scale is 32767)
FULL_SCALE = 32768.0


class AudioInputError(ValueError):
    """Audio that cannot be used, with what is wrong and what to do."""


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # int16 mono
    sample_rate_hz: int
    source_sample_rate_hz: int
    source_codec: str
    clipped_fraction: float  # share of samples at or near full scale
    peak_dbfs: float

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz


def decode_audio(source: bytes | str | Path, max_duration_s: float = MAX_DURATION_S) -> DecodedAudio:
    """Decode an audio file (bytes or a path) to mono int16; AudioInputError for anything unusable."""
    import av

    data = _read_bytes(source)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioInputError("the file has no audio stream; send speech audio (WAV, MP3, Ogg/Opus, FLAC)")
            source_rate = int(stream.codec_context.sample_rate or stream.rate or 0)
            check_sample_rate(source_rate)
            rate = min(source_rate, MAX_SAMPLE_RATE_HZ)
            samples = _decode_stream(container, stream, rate, max_duration_s)
            codec = stream.codec_context.name
    except AudioInputError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as error:  # PyAV's errors for unreadable data
        raise AudioInputError(f"this is not audio that can be decoded ({error}); "
                              "send a WAV, MP3, Ogg/Opus or FLAC file") from error
    return checked_audio(samples, rate, source_rate, codec)


def checked_audio(samples: np.ndarray, sample_rate_hz: int, source_sample_rate_hz: int | None = None,
                  codec: str = "pcm_s16le") -> DecodedAudio:
    """PCM that is already decoded (int16 mono), with the same checks as a decoded file."""
    check_sample_rate(sample_rate_hz)
    samples = np.asarray(samples)
    if samples.ndim != 1 or samples.dtype != np.int16:
        raise AudioInputError(f"PCM must be mono int16, got {samples.dtype} with shape {samples.shape}")
    if len(samples) == 0:
        raise AudioInputError("the audio is empty (no samples); send a recording of speech")
    peak = int(np.abs(samples.astype(np.int32)).max())
    peak_dbfs = 20 * math.log10(peak / FULL_SCALE) if peak else -math.inf
    if peak_dbfs < SILENCE_PEAK_DBFS:
        raise AudioInputError(f"the audio is silent (peak {peak_dbfs:.0f} dBFS, under {SILENCE_PEAK_DBFS:.0f}); "
                              "check the recording level or the file")
    clipped = float(np.mean(np.abs(samples.astype(np.int32)) >= CLIP_LEVEL))
    return DecodedAudio(samples, sample_rate_hz, source_sample_rate_hz or sample_rate_hz, codec, clipped, peak_dbfs)


def check_sample_rate(sample_rate_hz: int) -> None:
    if sample_rate_hz < MIN_SAMPLE_RATE_HZ:
        raise AudioInputError(f"sample rate {sample_rate_hz} Hz is too low for speech analysis; "
                              f"send audio at {MIN_SAMPLE_RATE_HZ} Hz or more (16 kHz or higher is best)")
    if sample_rate_hz > 4 * MAX_SAMPLE_RATE_HZ:
        raise AudioInputError(f"sample rate {sample_rate_hz} Hz is not a speech audio rate; "
                              f"send audio at {MAX_SAMPLE_RATE_HZ} Hz or less")


def _read_bytes(source: bytes | str | Path) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise AudioInputError(f"audio file not found: {path}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise AudioInputError(f"{path} is {path.stat().st_size // 2**20} MiB; the limit is "
                                  f"{MAX_FILE_BYTES // 2**20} MiB (send a compressed file or a shorter one)")
        data = path.read_bytes()
    if not data:
        raise AudioInputError("the audio file is empty (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise AudioInputError(f"the audio is {len(data) // 2**20} MiB; the limit is {MAX_FILE_BYTES // 2**20} MiB")
    return data


def _decode_stream(container, stream, rate_hz: int, max_duration_s: float) -> np.ndarray:
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate_hz)
    limit = int(max_duration_s * rate_hz)
    pieces: list[np.ndarray] = []
    total = 0
    for frame in container.decode(stream):
        frame.pts = None  # resample by sample count; some containers carry gaps in their timestamps
        for out in resampler.resample(frame):
            pieces.append(out.to_ndarray().reshape(-1))
            total += len(pieces[-1])
        if total > limit:
            raise AudioInputError(f"the audio is longer than {max_duration_s:.0f} s; send it in pieces of "
                                  "at most that length, or stream it (the audio-stream WebSocket)")
    pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    if not pieces:
        raise AudioInputError("the file holds no audio samples; send a recording of speech")
    return np.concatenate(pieces).astype(np.int16, copy=False)
