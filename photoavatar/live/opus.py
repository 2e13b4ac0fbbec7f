"""Opus for the WebRTC audio track: 20 ms mono frames in, RTP payloads out, on the event loop, cheap in silence.

aiortc encodes a track's `AudioFrame`s itself, and per frame that costs about 0.4 ms of a core on this machine:
it resamples mono to stereo, encodes stereo at 96 kbps in the default thread pool (a thread hop per frame) and
measures the RFC 6464 level in a Python loop. Ten idle sessions spent a fifth of a core on that, taken from
synthesis exactly while their listeners waited for a first word. A track that hands aiortc encoded packets
(`av.Packet`) skips all of it, so `OpusFrames` encodes here instead:
- mono at 32 kbps, as browsers send speech; an `opus/48000/2` stream may carry mono packets (RFC 7587 §7);
- in libopus's "lowdelay" application: CELT alone, which costs about half as much per frame as "voip" (SILK +
  CELT, what browsers use for a microphone), looks ahead 2.5 ms instead of 6.5, and is as close to the source
  in the speech bands, at about 38 kbit/s where "voip" spends 30 (bench/opus.py compares them; docs/latency.md);
- inline: one mono frame costs about 0.25 ms, less than the hop to a thread would;
- silence costs nothing once the encoder has settled on it: digital silence then comes out as the same small
  packet frame after frame, and that packet is sent again without running the encoder. When sound comes back,
  the encoder goes on from the state its first silent frames left; the sound it then sends has the band
  levels of an encoding that saw every frame (to 1 dB in the bands that hold its harmonics:
  tests/live/test_opus.py).
The packet's level (dBov, for the ssrc-audio-level header extension the page and the browser benches read) is
computed with numpy.
"""

from __future__ import annotations

import fractions
import math

import av
import numpy as np

from photoavatar.live.protocol import RTP_CLOCK_HZ

FRAME_SAMPLES = 960  # 20 ms at 48 kHz: one Opus frame
BITRATE_BPS = 32_000
APPLICATION = "lowdelay"
# libopus delays its output by its look-ahead (2.5 ms in APPLICATION "lowdelay"; 6.5 ms, 312 samples, in "voip"),
# and a WebRTC receiver does not trim it: the sample sent at RTP time t is heard at t + LOOKAHEAD_SAMPLES
# (tests/live/test_opus.py).
LOOKAHEAD_SAMPLES = 120
MIN_LEVEL_DBOV = -127  # RFC 6464: the level of digital silence
_TIME_BASE = fractions.Fraction(1, RTP_CLOCK_HZ)


class OpusFrames:
    """One stream's encoder. `encode` takes each 20 ms frame of the stream in order. APPLICATION replaces
    libopus's application, to compare them (bench/opus.py); LOOKAHEAD_SAMPLES holds for the default only."""

    def __init__(self, application: str | None = None) -> None:
        self._codec = av.CodecContext.create("libopus", "w")
        self._codec.bit_rate = BITRATE_BPS
        self._codec.format = "s16"
        self._codec.layout = "mono"
        self._codec.sample_rate = RTP_CLOCK_HZ
        self._codec.time_base = _TIME_BASE
        self._codec.options = {"application": application or APPLICATION}
        self._last_silent_payload: bytes | None = None
        self._silence_settled = False
        self.encoder_runs = 0  # frames the encoder actually ran on (the rest were settled silence)

    def encode(self, samples: np.ndarray, pts: int) -> tuple[av.Packet, int]:
        """The packet (pts PTS, in 1/48000 s) of one frame of FRAME_SAMPLES mono int16 samples, and its level
        in dBov (-127 to 0)."""
        if len(samples) != FRAME_SAMPLES:
            raise ValueError(f"an Opus frame here is {FRAME_SAMPLES} samples (20 ms at 48 kHz), got {len(samples)}")
        silent = not samples.any()
        if silent and self._silence_settled:
            payload = self._last_silent_payload
        else:
            payload = self._run_encoder(samples, pts)
            if silent:
                self._silence_settled = payload == self._last_silent_payload
                self._last_silent_payload = payload
            else:
                self._silence_settled, self._last_silent_payload = False, None
        packet = av.Packet(payload)
        packet.pts = pts
        packet.time_base = _TIME_BASE
        return packet, MIN_LEVEL_DBOV if silent else level_dbov(samples)

    def _run_encoder(self, samples: np.ndarray, pts: int) -> bytes:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.int16)[None, :],
                                           format="s16", layout="mono")
        frame.sample_rate = RTP_CLOCK_HZ
        frame.pts = pts
        frame.time_base = _TIME_BASE
        packets = self._codec.encode(frame)
        self.encoder_runs += 1
        if len(packets) != 1:  # libopus turns each 20 ms frame into one packet, delay included in its pts
            raise RuntimeError(f"the Opus encoder returned {len(packets)} packets for one 20 ms frame")
        return bytes(packets[0])


def rms_dbov(samples: np.ndarray) -> float:
    """The RMS of int16 SAMPLES in dB below full scale (32767); -inf for digital silence or no samples."""
    wide = samples.astype(np.float64)
    power = float(np.dot(wide, wide)) / len(samples) if len(samples) else 0.0
    return 10 * math.log10(power / (32767 * 32767)) if power > 0 else -math.inf


def level_dbov(samples: np.ndarray) -> int:
    """RFC 6465 Appendix A's level of a frame: its RMS in dB below full scale (32767), from -127 to 0."""
    return round(min(0.0, max(float(MIN_LEVEL_DBOV), rms_dbov(samples))))
