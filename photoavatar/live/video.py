"""The avatar as a video track: frames composed on the server, on the same stream clock as the session's audio.

Clock. The paced audio track (live/audio.py) sends stream sample n at `t0 + n/48000` (its monotonic pacing)
with RTP timestamp `origin_a + n`. The video track sends frame k, which shows stream time k/fps, at
`t0 + k/fps`, with pts k·90000/fps, so its RTP timestamp is `origin_v + k·90000/fps` (aiortc's VP8 and H.264
encoders map pts to RTP time one to one). aiortc's RTCP sender report pairs the NTP wall time at which a
sender's last packet left with that packet's RTP timestamp, so both tracks' reports put stream time τ at the
same wall time t0 + τ, and the receiver's A/V synchronisation shows frame k with the audio of the same moment.
A frame leaves after its encode, so the track hands each frame over early by the encode time it measures
(the time aiortc takes between taking a frame and asking for the next). tests/live/test_video.py reads the
receiver's sender reports of both tracks and checks that they describe one clock.

Mouth. `SpeechOnVideo` reads the protocol messages the session sends its client (live/protocol.py):
utterance_start's rtp_timestamp places the utterance on the stream, viseme and prosody messages add its events,
an utterance_gap moves its events after the gap (all placed again), and an early utterance_end (barge_in, stop,
error) cuts it; the session sends that in the same event-loop turn in which the playout drops the audio, so
picture and sound stop together.
"""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from photoavatar.animate.frames import FrameRenderer, RenderedFrame
from photoavatar.avatar.bundle import load_bundle
from photoavatar.live.protocol import (
    RTP_MODULO,
    Message,
    Prosody,
    UtteranceEnd,
    UtteranceGap,
    UtteranceStart,
    Visemes,
    events_after_gaps,
    frames_after_gaps,
)
from photoavatar.speech.types import ProsodyFrame, VisemeEvent

VIDEO_CLOCK_HZ = 90000  # the RTP clock of every WebRTC video codec
_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_HZ)
MAX_ENCODE_LEAD_S = 0.03  # never hand a frame over earlier than this (an encoder that slow is overloaded anyway)
_EMA = 0.1  # smoothing of the measured encode and render times
_START_POLL_S = 0.01  # how often to look whether the audio has started (before the first frame only)


@dataclass
class _Utterance:
    start_s: float | None = None  # stream time of s = 0, once its utterance_start came
    events: list[VisemeEvent] = field(default_factory=list)  # all received, in utterance audio time
    prosody: list[ProsodyFrame] = field(default_factory=list)
    gaps: list[UtteranceGap] = field(default_factory=list)


class SpeechOnVideo:
    """The session's utterances on a FrameRenderer's stream timeline, from the protocol messages.

    `handle` runs on the event loop and never waits: it keeps the utterances' bookkeeping and queues what the
    renderer must do; `render` (a worker thread) applies the queue, then composes. A cut therefore shows from the
    next frame made, at most one frame after the audio stopped. STREAM_TIME_OF_RTP maps an utterance_start's
    rtp_timestamp (the moment its first sample is heard) to stream seconds.
    """

    def __init__(self, renderer: FrameRenderer, stream_time_of_rtp: Callable[[int], float]):
        self.renderer = renderer
        self._stream_time_of_rtp = stream_time_of_rtp
        self._utterances: dict[str, _Utterance] = {}
        self._pending: deque[Callable[[FrameRenderer], None]] = deque()  # appended on the loop, run by render
        self._render_lock = threading.Lock()  # one frame at a time
        self.cuts = 0

    def handle(self, message: Message) -> None:
        utterance = self._utterances.setdefault(message.utterance_id, _Utterance())
        if isinstance(message, UtteranceStart):
            utterance.start_s = start_s = self._stream_time_of_rtp(message.rtp_timestamp)
            events, prosody = self._placed(utterance, utterance.events, utterance.prosody)
            self._pending.append(lambda renderer: renderer.add_utterance(start_s, events, prosody))
        elif isinstance(message, Visemes | Prosody):
            self._add(utterance, message)
        elif isinstance(message, UtteranceGap):
            utterance.gaps.append(message)
            if utterance.start_s is not None:  # its events placed so far move: place them all again
                start_s = utterance.start_s
                events, prosody = self._placed(utterance, utterance.events, utterance.prosody)
                self._pending.append(lambda renderer: renderer.replace_events(start_s, events, prosody))
        elif isinstance(message, UtteranceEnd):
            del self._utterances[message.utterance_id]
            if message.reason != "done" and utterance.start_s is not None:
                self._pending.append(FrameRenderer.cut)  # one utterance plays at a time: the one on screen
                self.cuts += 1

    def render(self, index: int) -> RenderedFrame:
        with self._render_lock:
            while self._pending:
                self._pending.popleft()(self.renderer)
            return self.renderer.render(index)

    def _add(self, utterance: _Utterance, message: Visemes | Prosody) -> None:
        events = message.events if isinstance(message, Visemes) else ()
        frames = message.frames if isinstance(message, Prosody) else ()
        utterance.events.extend(events)
        utterance.prosody.extend(frames)
        if utterance.start_s is not None:
            start_s = utterance.start_s
            placed_events, placed_frames = self._placed(utterance, events, frames)
            self._pending.append(lambda renderer: renderer.add_utterance(start_s, placed_events, placed_frames))

    @staticmethod
    def _placed(utterance: _Utterance, events, frames) -> tuple[tuple[VisemeEvent, ...], tuple[ProsodyFrame, ...]]:
        """EVENTS and FRAMES of UTTERANCE at the times its audio plays them, after the gaps it has had."""
        return tuple(events_after_gaps(events, utterance.gaps)), tuple(frames_after_gaps(frames, utterance.gaps))


class PacedVideoTrack(MediaStreamTrack):
    """An aiortc video track of composed avatar frames, paced on the audio track's stream clock.

    STREAM_START_S returns the monotonic time of stream sample 0 (None until the audio has started);
    CLOCK is that same monotonic clock.
    """

    kind = "video"

    def __init__(self, speech: SpeechOnVideo, stream_start_s: Callable[[], float | None],
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.speech = speech
        self.fps = speech.renderer.fps
        self._stream_start_s = stream_start_s
        self._clock = clock
        self._next_index = 0
        self._handed_over_at_s: float | None = None
        self._sender = None
        self._rtp_origin: int | None = None
        self._last_pts: int | None = None
        self.encode_s = 0.0  # measured: aiortc's time from taking a frame to asking for the next
        self.render_s = 0.0  # measured: compose time of one frame
        self.frames_sent = 0
        self.skipped_frames = 0  # frames never made because the track was more than a frame late
        self.late_frames = 0  # frames handed over more than half a frame after they were due
        self.max_lateness_s = 0.0

    def attach_sender(self, sender) -> None:
        self._sender = sender

    def pts_of(self, index: int) -> int:
        return round(index * VIDEO_CLOCK_HZ / self.fps)

    def rtp_timestamp_of(self, stream_time_s: float) -> int | None:
        """The RTP timestamp a frame showing STREAM_TIME_S carries (None before the first frame went out)."""
        if self._rtp_origin is None:
            return None
        return (self._rtp_origin + round(stream_time_s * VIDEO_CLOCK_HZ)) % RTP_MODULO

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        self._measure_encode()
        self._learn_rtp_origin()
        start_s = await self._wait_for_stream()
        index = self._catch_up(start_s)
        due_s = start_s + index / self.fps - min(self.encode_s, MAX_ENCODE_LEAD_S)
        await self._sleep_until(due_s - 1.5 * self.render_s)
        began = self._clock()
        rendered = await asyncio.get_running_loop().run_in_executor(None, self.speech.render, index)
        self.render_s += _EMA * ((self._clock() - began) - self.render_s)
        await self._sleep_until(due_s)
        self._note_lateness(self._clock() - due_s)
        frame = av.VideoFrame.from_ndarray(rendered.picture, format="rgb24")
        frame.pts, frame.time_base = self.pts_of(index), _TIME_BASE
        self._last_pts = frame.pts
        self._next_index = index + 1
        self.frames_sent += 1
        self._handed_over_at_s = self._clock()
        return frame

    async def _wait_for_stream(self) -> float:
        while (start_s := self._stream_start_s()) is None:
            await asyncio.sleep(_START_POLL_S)
            if self.readyState != "live":
                raise MediaStreamError
        return start_s

    def _catch_up(self, start_s: float) -> int:
        """The next frame to make; frames already more than one frame late are skipped (their time is gone)."""
        index = self._next_index
        behind_s = self._clock() - (start_s + index / self.fps)
        if behind_s > 1 / self.fps:
            skipped = int(behind_s * self.fps)
            self.skipped_frames += skipped
            index += skipped
        return index

    async def _sleep_until(self, when_s: float) -> None:
        wait_s = when_s - self._clock()
        if wait_s > 0:
            await asyncio.sleep(wait_s)

    def _note_lateness(self, lateness_s: float) -> None:
        self.max_lateness_s = max(self.max_lateness_s, lateness_s)
        if lateness_s > 0.5 / self.fps:
            self.late_frames += 1

    def _measure_encode(self) -> None:
        if self._handed_over_at_s is not None:
            self.encode_s += _EMA * ((self._clock() - self._handed_over_at_s) - self.encode_s)

    def _learn_rtp_origin(self) -> None:
        if self._rtp_origin is not None or self._last_pts is None:
            return
        if self._sender is None:  # not sent over RTP (a bench or a recorder): pts is the clock
            self._rtp_origin = 0
            return
        # Private to aiortc (1.16), as live/audio.py reads it: the RTP timestamp of the last packet sent, which
        # belongs to the last frame handed over (the sender asks for the next frame only after sending it).
        last_sent = getattr(self._sender, "_RTCRtpSender__rtp_timestamp", None)
        if last_sent is None or getattr(self._sender, "_RTCRtpSender__packet_count", 0) == 0:
            return
        self._rtp_origin = (last_sent - self._last_pts) % RTP_MODULO


class VideoTrackOfSession:
    """What a WebRTC transport holds for a video session: the mouth (`speech`) and the track (`track`).

    STREAM_START_S is the audio track's `started_at_s` (read at each frame: the transport may replace its track).
    """

    def __init__(self, renderer: FrameRenderer, stream_start_s: Callable[[], float | None],
                 stream_time_of_rtp: Callable[[int], float]):
        self.speech = SpeechOnVideo(renderer, stream_time_of_rtp)
        self._stream_start_s = stream_start_s
        self.track = PacedVideoTrack(self.speech, stream_start_s)

    def renew_track(self) -> None:
        """A fresh track for the next peer connection (the last one was closed with its track)."""
        self.track = PacedVideoTrack(self.speech, self._stream_start_s)


def session_video_renderer(bundle_folder: Path) -> FrameRenderer:
    """A renderer for one video session of the bundle in BUNDLE_FOLDER (decodes the bundle on first use: call it
    off the event loop)."""
    return FrameRenderer(load_bundle(bundle_folder))
