"""The audio a session sends: utterance after utterance at 48 kHz, silence between, in 20 ms frames.

`Playout` is the pure part (what sample goes out next, when an utterance's first sample leaves);
`PacedAudioTrack` is the aiortc track that pulls it on a monotonic clock, hands aiortc Opus packets
(live/opus.py) and knows the RTP timestamp of every sample it sends. `Resampler48k` turns engine audio (e.g.
Piper's 22050 Hz) into the track's rate.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from photoavatar.live.interruption import Interruption
from photoavatar.live.opus import FRAME_SAMPLES, MIN_LEVEL_DBOV, OpusFrames
from photoavatar.live.protocol import RTP_CLOCK_HZ, RTP_MODULO

SAMPLE_RATE_HZ = RTP_CLOCK_HZ  # the track runs at the Opus RTP clock, so stream samples are RTP ticks
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE_HZ
_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)
LATE_AFTER_S = 2 * FRAME_S  # a frame this late would drain a minimal receiver jitter buffer (audible)
# Silent frames still sent after a sound, before the track stops sending (DTX): a receiver that releases a frame
# only once later packets have come (aiortc holds 4) still plays the last word, and the browser plays out what its
# jitter buffer held.
SILENT_TAIL_FRAMES = 10


class Resampler48k:
    """Streaming mono int16 resampler to 48 kHz; keeps filter state across chunks so joins are seamless."""

    def __init__(self, source_rate_hz: int):
        if source_rate_hz <= 0:
            raise ValueError(f"engine audio has sample rate {source_rate_hz} Hz; it must be positive")
        self._source_rate_hz = source_rate_hz
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)

    def push(self, samples: np.ndarray) -> np.ndarray:
        if len(samples) == 0:
            return np.zeros(0, dtype=np.int16)
        if self._source_rate_hz == SAMPLE_RATE_HZ:
            return samples.astype(np.int16, copy=False)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.int16)[None, :],
                                           format="s16", layout="mono")
        frame.sample_rate = self._source_rate_hz
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        """The tail the filter still holds; call once at the end of an utterance."""
        if self._source_rate_hz == SAMPLE_RATE_HZ:
            return np.zeros(0, dtype=np.int16)
        return self._collect(self._resampler.resample(None))

    @staticmethod
    def _collect(frames: list[av.AudioFrame]) -> np.ndarray:
        if not frames:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16, copy=False)


@dataclass
class _Playing:
    utterance_id: str
    on_first_sample: Callable[[int], None]  # called with the stream sample index of the first sample
    on_drained: Callable[[], None]  # called once all its audio has been sent
    pending: list[np.ndarray] = field(default_factory=list)
    pending_samples: int = 0
    input_closed: bool = False
    first_sample: int | None = None  # fixed once it has audio and the stream can stamp it: the next frame's
    started: bool = False  # its first sample has been sent
    on_gap: Callable[[int, int], None] | None = None  # (its samples sent before the gap, silent samples sent)
    sent_samples: int = 0  # of its own audio


class Playout:
    """One utterance at a time, cut into 20 ms frames; silence when nothing plays.

    All methods run on the event loop thread. `position_samples` counts every sample sent since the start
    of the stream (silence included): it is the stream clock the transports map to RTP time. Only next_frame
    moves it, so an utterance fed while nothing holds starts is sure to start at the next frame, and
    `first_sample_of` says where before that frame is sent (the session announces it, and the lips' lead-in
    reaches the client, up to a frame sooner). `starts_held` is the transport's: True while it cannot stamp
    a start yet (PacedAudioTrack before it knows its RTP origin); frames are then silence.
    `drop_downstream` is the transport's own buffer of audio already taken from here (LiveKit's SDK queue):
    an interruption empties it too.
    """

    def __init__(self, drop_downstream: Callable[[], None] | None = None) -> None:
        self._playing: _Playing | None = None
        self._drop_downstream = drop_downstream
        self.position_samples = 0
        self.starts_held = False
        self.underrun_frames = 0  # frames padded with silence because the engine was late mid-utterance

    @property
    def current_utterance(self) -> str | None:
        return self._playing.utterance_id if self._playing else None

    def start(self, utterance_id: str, interruption: Interruption, on_first_sample: Callable[[int], None],
              on_drained: Callable[[], None], on_gap: Callable[[int, int], None] | None = None) -> None:
        """Make this utterance the one that plays next (replacing any other: there is only ever one).

        When INTERRUPTION fires, its audio is dropped at once: the next frame is silence. ON_GAP is called, as
        each frame goes out that the engine was too late to fill, with how many of the utterance's samples
        were sent before that silence and how many silent samples the frame holds: all its later audio plays
        that much later (an `utterance_gap` message tells the client).
        """
        self._playing = _Playing(utterance_id, on_first_sample, on_drained, on_gap=on_gap)
        interruption.subscribe(lambda _: self._drop(utterance_id))

    def feed(self, utterance_id: str, samples_48k: np.ndarray) -> None:
        playing = self._playing_if(utterance_id)
        if playing is not None and len(samples_48k):
            playing.pending.append(samples_48k)
            playing.pending_samples += len(samples_48k)
            self._fix_start(playing)

    def first_sample_of(self, utterance_id: str) -> int | None:
        """The stream sample at which UTTERANCE_ID's first sample is (or will be) sent; None while not fixed."""
        playing = self._playing_if(utterance_id)
        return playing.first_sample if playing is not None else None

    def _fix_start(self, playing: _Playing) -> None:
        if playing.first_sample is None and playing.pending_samples and not self.starts_held:
            playing.first_sample = self.position_samples

    def close_input(self, utterance_id: str) -> None:
        playing = self._playing_if(utterance_id)
        if playing is not None:
            playing.input_closed = True
            if playing.pending_samples == 0:  # everything already sent (or an utterance with no audio)
                self._finish()

    def _drop(self, utterance_id: str) -> None:
        if self._playing_if(utterance_id) is None:
            return  # it had played out already
        self._playing = None
        if self._drop_downstream is not None:
            self._drop_downstream()

    def next_frame(self) -> np.ndarray:
        playing = self._playing
        if playing is not None:
            self._fix_start(playing)  # fed while starts were held
        if playing is None or playing.first_sample is None or playing.pending_samples == 0:
            if playing is not None and playing.started and not playing.input_closed:
                self._underrun(playing, FRAME_SAMPLES)
            self.position_samples += FRAME_SAMPLES
            return _SILENCE
        if not playing.started:
            playing.started = True
            playing.on_first_sample(playing.first_sample)
        frame = self._take(playing, FRAME_SAMPLES)
        playing.sent_samples += len(frame)
        if len(frame) < FRAME_SAMPLES:
            if not playing.input_closed:
                self._underrun(playing, FRAME_SAMPLES - len(frame))
            frame = np.concatenate([frame, np.zeros(FRAME_SAMPLES - len(frame), dtype=np.int16)])
        self.position_samples += FRAME_SAMPLES
        if playing.input_closed and playing.pending_samples == 0:
            self._finish()
        return frame

    def _underrun(self, playing: _Playing, silent_samples: int) -> None:
        self.underrun_frames += 1
        if playing.on_gap is not None:
            playing.on_gap(playing.sent_samples, silent_samples)

    def _playing_if(self, utterance_id: str) -> _Playing | None:
        playing = self._playing
        return playing if playing is not None and playing.utterance_id == utterance_id else None

    def _finish(self) -> None:
        playing, self._playing = self._playing, None
        if playing is not None:
            playing.on_drained()

    @staticmethod
    def _take(playing: _Playing, count: int) -> np.ndarray:
        taken: list[np.ndarray] = []
        needed = count
        while needed and playing.pending:
            head = playing.pending[0]
            if len(head) <= needed:
                taken.append(playing.pending.pop(0))
                needed -= len(head)
            else:
                taken.append(head[:needed])
                playing.pending[0] = head[needed:]
                needed = 0
        playing.pending_samples -= count - needed
        return np.concatenate(taken) if len(taken) != 1 else taken[0]


class PacedAudioTrack(MediaStreamTrack):
    """An aiortc audio track that sends the playout in real time, one 20 ms frame per tick.

    Frame k carries pts k*960, so its RTP timestamp is the sender's random origin + k*960 (aiortc maps a
    packet's pts to RTP time one to one). aiortc does not expose that origin; it is read back from the
    sender's last-sent timestamp once the first frame has gone out, and the first frame is always silence
    so no utterance can start before the origin is known. DTX (off by default) skips the frames of a long
    silence, after the origin is known: frame k still carries pts k*960.
    """

    kind = "audio"

    def __init__(self, playout: Playout, clock: Callable[[], float] = time.monotonic, dtx: bool = False):
        super().__init__()
        self.playout = playout
        playout.starts_held = True  # until the first frame has gone out and the RTP origin is known
        self._clock = clock
        self._dtx = dtx
        self._started_at_s: float | None = None
        self._frames = 0  # of the stream clock so far, sent or (DTX) not
        self._silent_frames = 0  # in a row, up to the last frame taken
        self.packets_sent = 0
        self._sender = None
        self._rtp_origin: int | None = None
        self.late_frames = 0  # frames produced more than LATE_AFTER_S after they were due
        self.max_lateness_s = 0.0
        self.lateness_s: deque[float] = deque(maxlen=3000)  # of the last minute of frames: the sender's pacing
        self.encoder = OpusFrames()
        self.level_dbov = MIN_LEVEL_DBOV  # of the frame recv returned last

    def attach_sender(self, sender) -> None:
        """SENDER (aiortc's RTCRtpSender of this track) sends the level of each packet, as it does for frames."""
        self._sender = sender
        next_encoded_frame = sender._next_encoded_frame  # aiortc 1.16: one call per packet, after our recv

        async def with_level(codec):
            encoded = await next_encoded_frame(codec)
            if encoded is not None:
                encoded.audio_level = self.level_dbov
            return encoded

        sender._next_encoded_frame = with_level

    @property
    def started_at_s(self) -> float | None:
        """The clock's time at which stream sample 0 went out (None before the first frame): the stream clock
        the video track (live/video.py) is paced on."""
        return self._started_at_s

    def rtp_timestamp_at(self, stream_sample: int) -> int:
        if self._rtp_origin is None:
            raise RuntimeError("the RTP origin is not known before the first frame has been sent")
        return (self._rtp_origin + stream_sample) % RTP_MODULO

    async def recv(self) -> av.Packet:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            await self._wait_until_due()
            pts, samples = self._frames * FRAME_SAMPLES, self._take_frame()
            if not self._skips_frame():
                packet, self.level_dbov = self.encoder.encode(samples, pts)
                self.packets_sent += 1
                return packet

    def _take_frame(self) -> np.ndarray:
        self._learn_rtp_origin()
        self.playout.starts_held = self._rtp_origin is None  # silence until RTP time is known: every start is stamped
        samples = self.playout.next_frame()
        self._frames += 1
        self._silent_frames = 0 if samples.any() else self._silent_frames + 1
        return samples

    def _skips_frame(self) -> bool:
        """DTX: a long run of silence is not sent. The stream clock (pts, RTP time) goes on, so the next
        sound's RTP timestamp leaps over the pause, as a browser's own DTX does, and the browser, its jitter
        buffer drained, plays that sound sooner; but it then conceals a frame that comes late (docs/latency.md)."""
        return self._dtx and self._rtp_origin is not None and self._silent_frames > SILENT_TAIL_FRAMES

    async def _wait_until_due(self) -> None:
        now = self._clock()
        if self._started_at_s is None:
            self._started_at_s = now
        due = self._started_at_s + self._frames * FRAME_S
        if due > now:
            await asyncio.sleep(due - now)
            now = self._clock()
        lateness = max(0.0, now - due)  # the timer's overshoot, or a loop too busy to wake us in time
        self.lateness_s.append(lateness)
        self.max_lateness_s = max(self.max_lateness_s, lateness)
        if lateness > LATE_AFTER_S:
            self.late_frames += 1

    def _learn_rtp_origin(self) -> None:
        if self._rtp_origin is not None or self._frames == 0:
            return
        if self._sender is None:  # not sent over RTP (a bench or a recorder): stream time is the clock
            self._rtp_origin = 0
            return
        # Private to aiortc (1.16): the RTP timestamp of the packet the sender sent last, i.e. of frame k-1.
        last_sent = getattr(self._sender, "_RTCRtpSender__rtp_timestamp", None)
        packets = getattr(self._sender, "_RTCRtpSender__packet_count", 0)
        if last_sent is None or packets == 0:
            return
        self._rtp_origin = (last_sent - (self._frames - 1) * FRAME_SAMPLES) % RTP_MODULO

