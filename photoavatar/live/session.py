"""A live session: one client, one transport, one queue of utterances played in order.

Speech is synthesised by the server's one SynthesisScheduler (live/synthesis.py: worker threads, one model run
per step, first chunks first, then by deadline across all sessions) and handed to the loop segment by segment;
the loop resamples nothing and waits on nothing heavy. Barge-in, stop and failures end an utterance
through its one `Interruption` (live/interruption.py): the playout is cut at once (the next 20 ms frame is
silence), synthesis stops and the client gets utterance_end with the matching reason.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from photoavatar.live import protocol
from photoavatar.live.audio import SAMPLE_RATE_HZ, Resampler48k
from photoavatar.live.interruption import Interruption
from photoavatar.live.synthesis import END, SynthesisScheduler
from photoavatar.live.transport import LiveError, Transport
from photoavatar.speech import stages
from photoavatar.speech.types import SpeechSegment

log = logging.getLogger(__name__)

# text, voice_id -> segments; raises (any exception) when the text cannot be spoken
SpeechSource = Callable[[str, str | None], Iterator[SpeechSegment]]


@dataclass
class Utterance:
    utterance_id: str
    text: str
    voice_id: str | None
    interruption: Interruption = field(default_factory=Interruption)  # the one early-end signal
    ended: bool = False
    requested_at_s: float = field(default_factory=time.monotonic)
    # Speech that is not synthesised from `text` (the caller's audio, speech/audio_speech.py): these segments play
    # as they are, scheduled by `scheduler` (None: the session's; a live stream's steps wait for its audio).
    segments: Iterable[SpeechSegment] | None = None
    scheduler: SynthesisScheduler | None = None


# Where an utterance's first audio spends its time, beside the speech stages (speech/stages.py).
WAIT_FOR_WORKER = "wait_for_worker"  # /speak until a synthesis worker takes its first step
HOP_TO_LOOP = "hop_to_loop"  # the worker hands the chunk over until the event loop feeds it to the playout
FRAME_SLOT = "frame_slot"  # fed until its first sample leaves in the next 20 ms frame
FIRST_AUDIO = "first_audio"  # /speak -> first sample sent, all of it


@dataclass(frozen=True)
class _Audio:
    segment: SpeechSegment | None  # None for the resampler's tail, which has no timeline of its own
    samples_48k: np.ndarray
    stage_s: dict[str, float] = field(default_factory=dict)
    handed_at_s: float = 0.0  # monotonic time the worker handed it over


class LiveSession:
    def __init__(self, session_id: str, avatar_id: str, voice_id: str | None, transport: Transport,
                 speech: SpeechSource, synthesis: SynthesisScheduler, expires_at_s: float):
        self.session_id = session_id
        self.avatar_id = avatar_id
        self.voice_id = voice_id
        self.transport = transport
        self.expires_at_s = expires_at_s  # wall clock (time.time())
        self.created_at_s = time.monotonic()
        self._speech = speech
        self._synthesis = synthesis
        self._pending: deque[Utterance] = deque()
        self._current: Utterance | None = None
        self._wake = asyncio.Event()
        self._player = asyncio.create_task(self._play_queue(), name=f"session {session_id} player")
        # /speak -> first sample sent, for benchmarks; bounded, a session may live for hours
        self.first_audio_delays_s: deque[float] = deque(maxlen=1000)
        # ... and where that time went, stage by stage (the stages above and speech/stages.py)
        self.first_audio_stages: deque[dict[str, float]] = deque(maxlen=1000)

    # -- commands (called on the event loop) ------------------------------------------------------

    def speak(self, text: str, barge_in: bool = True, segments: Iterable[SpeechSegment] | None = None,
              scheduler: SynthesisScheduler | None = None) -> str:
        """Queue TEXT (or replace everything with it when barge_in); returns its utterance id at once.
        SEGMENTS, when given, are played instead of synthesising TEXT (see Utterance)."""
        utterance = Utterance(f"u_{uuid.uuid4().hex[:12]}", text, self.voice_id, segments=segments,
                              scheduler=scheduler)
        utterance.interruption.subscribe(lambda interruption: self._end(utterance, interruption.reason,
                                                                        interruption.error))
        if barge_in:
            self._interrupt_all("barge_in")
        self._pending.append(utterance)
        self._wake.set()
        return utterance.utterance_id

    def stop(self) -> list[str]:
        """Cut what is playing and empty the queue; returns the ids of the utterances ended."""
        return self._interrupt_all("stop")

    @property
    def queued_utterances(self) -> int:
        """Utterances waiting behind the one playing (/metrics, and the per-session queue limit)."""
        return len(self._pending)

    async def close(self) -> None:
        self._interrupt_all("stop")
        self._player.cancel()
        await asyncio.gather(self._player, return_exceptions=True)
        await self.transport.close()

    # -- the player ---------------------------------------------------------------------------------

    def _interrupt_all(self, reason: str) -> list[str]:
        """Interrupt the playing utterance and every queued one, in order; returns the ids ended."""
        utterances = [self._current, *self._pending] if self._current is not None else list(self._pending)
        self._pending.clear()
        return [u.utterance_id for u in utterances if not u.ended and u.interruption.interrupt(reason)]

    def _end(self, utterance: Utterance, reason: str, error: str | None = None) -> None:
        if not utterance.ended:
            utterance.ended = True
            self.transport.send(protocol.UtteranceEnd(utterance.utterance_id, reason, error))

    async def _play_queue(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                utterance = self._pending.popleft()
                self._current = utterance
                task = asyncio.create_task(self._play(utterance))
                utterance.interruption.subscribe(lambda _, task=task: _cancel_unless_current(task))
                await asyncio.wait([task])  # an interruption cancels the task, never this loop
                if not task.cancelled() and task.exception() is not None:
                    error = task.exception()
                    log.error("utterance %s failed: %r", utterance.utterance_id, error)
                    utterance.interruption.interrupt("error", f"internal error: {error}")
                self._current = None

    async def _play(self, utterance: Utterance) -> None:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue = asyncio.Queue()
        first_sample: asyncio.Future[tuple[int, float]] = loop.create_future()
        drained: asyncio.Future[None] = loop.create_future()
        playout = self.transport.playout
        playout.start(utterance.utterance_id, utterance.interruption,
                      lambda sample: _settle(first_sample, (sample, time.monotonic())), lambda: _settle(drained, None),
                      functools.partial(self._tell_gap, utterance.utterance_id))
        synthesis = utterance.scheduler or self._synthesis
        stream = synthesis.submit(self._steps(utterance), _seconds_of,
                                  lambda item: loop.call_soon_threadsafe(inbox.put_nowait, item),
                                  requested_at_s=utterance.requested_at_s)
        utterance.interruption.subscribe(lambda _: synthesis.cancel(stream))
        try:
            await self._stream(utterance, inbox, first_sample)
        except _SpeechFailed as failure:
            utterance.interruption.interrupt("error", str(failure))
            return
        finally:
            synthesis.cancel(stream)  # a no-op once it has ended; stops it if this task was cancelled
        playout.close_input(utterance.utterance_id)
        await drained
        self._end(utterance, "done")

    async def _stream(self, utterance: Utterance, inbox: asyncio.Queue, first_sample: asyncio.Future) -> None:
        announced = False
        while (item := await inbox.get()) is not END:
            if isinstance(item, Exception):
                log.warning("speech failed for %s: %s", utterance.utterance_id, item)
                raise _SpeechFailed(str(item) or type(item).__name__)
            fed_at_s = time.monotonic()
            playout = self.transport.playout
            playout.feed(utterance.utterance_id, item.samples_48k)
            if not announced:
                first_sample.add_done_callback(functools.partial(self._record_first_audio, utterance, item, fed_at_s))
                # Announced before its frame is sent, so the client schedules the first events (a closure that
                # leads the first sound) up to a frame sooner; a start not fixed yet is announced when it is.
                stream_sample = playout.first_sample_of(utterance.utterance_id)
                if stream_sample is None:
                    stream_sample, _ = await first_sample
                self._announce(utterance, stream_sample, fed_at_s)
                announced = True
            if item.segment is not None:
                self._send_timeline(utterance, item.segment)

    def _record_first_audio(self, utterance: Utterance, item: _Audio, fed_at_s: float,
                            first_sample: asyncio.Future[tuple[int, float]]) -> None:
        if first_sample.cancelled():  # the utterance ended before its first frame went out
            return
        _, sent_at_s = first_sample.result()
        self.first_audio_delays_s.append(sent_at_s - utterance.requested_at_s)
        self.first_audio_stages.append({**item.stage_s, HOP_TO_LOOP: fed_at_s - item.handed_at_s,
                                        FRAME_SLOT: sent_at_s - fed_at_s,
                                        FIRST_AUDIO: sent_at_s - utterance.requested_at_s})

    def _announce(self, utterance: Utterance, stream_sample: int, fed_at_s: float) -> None:
        rtp = self.transport.rtp_timestamp_at(stream_sample)
        self.transport.send(protocol.UtteranceStart(utterance.utterance_id, rtp, utterance.text,
                                                    self.transport.anchor, fed_at_s - utterance.requested_at_s))

    def _tell_gap(self, utterance_id: str, sent_samples: int, silent_samples: int) -> None:
        """The engine was late: the client moves the utterance's events after the silence, and lip sync holds."""
        self.transport.send(protocol.UtteranceGap(utterance_id, sent_samples / SAMPLE_RATE_HZ,
                                                  silent_samples / SAMPLE_RATE_HZ))

    def _send_timeline(self, utterance: Utterance, segment: SpeechSegment) -> None:
        if segment.visemes:
            self.transport.send(protocol.visemes(utterance.utterance_id, segment.visemes))
        if segment.prosody:
            self.transport.send(protocol.prosody(utterance.utterance_id, segment.prosody))

    def _steps(self, utterance: Utterance) -> Iterator[_Audio]:
        """Synthesis steps (run on the scheduler's workers): each next() is one model run -> a 48 kHz segment."""
        waited_s = time.monotonic() - utterance.requested_at_s
        segments = iter(())
        resampler: Resampler48k | None = None
        try:
            while True:
                stage_s: dict[str, float] = {WAIT_FOR_WORKER: waited_s} if resampler is None else {}
                with stages.collecting(stage_s):
                    if resampler is None:
                        segments = iter(utterance.segments if utterance.segments is not None
                                        else self._speech(utterance.text, utterance.voice_id))
                    segment = next(segments, None)
                    if segment is None:
                        break
                    resampler = resampler or Resampler48k(segment.audio.sample_rate_hz)
                    with stages.timed(stages.RESAMPLE):
                        samples = resampler.push(segment.audio.samples)
                yield _Audio(segment, samples, stage_s, time.monotonic())
            tail = resampler.flush() if resampler is not None else np.zeros(0, dtype=np.int16)
            if len(tail):
                yield _Audio(None, tail, {}, time.monotonic())
        finally:
            close = getattr(segments, "close", None)
            if close is not None:
                close()  # stops the engine too


def _seconds_of(item: _Audio) -> float:
    return len(item.samples_48k) / SAMPLE_RATE_HZ


class _SpeechFailed(Exception):
    pass


def _settle(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def _cancel_unless_current(task: asyncio.Task) -> None:
    """Cancel TASK, unless it is the one interrupting itself (a failure): it returns on its own then."""
    if task is not asyncio.current_task():
        task.cancel()


class TooManySessions(LiveError):
    """The server already holds its maximum of open sessions."""

    http_status = 429


class SessionRegistry:
    """The open sessions of one server, and the reaper that frees expired or abandoned ones."""

    def __init__(self, speech: SpeechSource, synthesis: SynthesisScheduler, max_sessions: int, ttl_s: float,
                 connect_timeout_s: float, *, max_per_owner: int | None = None, max_unconnected: int | None = None,
                 on_close: Callable[[LiveSession], None] | None = None):
        """CONNECT_TIMEOUT_S frees a session no client connected to; MAX_UNCONNECTED caps those waiting at
        once, and MAX_PER_OWNER the sessions of one owner (the client's address): neither a crowd of
        sessions that never connect nor one address can take every slot."""
        self._speech = speech
        self._synthesis = synthesis
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self.connect_timeout_s = connect_timeout_s
        self.max_per_owner = max_per_owner or max_sessions
        self.max_unconnected = max_unconnected or max_sessions
        self._sessions: dict[str, LiveSession] = {}
        self._owners: dict[str, str] = {}  # session id -> owner
        self._on_close = on_close  # told of each session once it has closed (the server's totals for /metrics)

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, avatar_id: str, voice_id: str | None, new_transport: Callable[[], Transport],
             owner: str = "") -> LiveSession:
        """A new session on a transport from NEW_TRANSPORT; TooManySessions (before any transport is made)
        when the server is at a limit: the one place the limits are checked."""
        self._check_limits(owner)
        session_id = f"s_{uuid.uuid4().hex}"
        session = LiveSession(session_id, avatar_id, voice_id, new_transport(), self._speech, self._synthesis,
                              expires_at_s=time.time() + self.ttl_s)
        self._sessions[session_id] = session
        self._owners[session_id] = owner
        return session

    def _check_limits(self, owner: str) -> None:
        if len(self._sessions) >= self.max_sessions:
            raise TooManySessions(f"the server is at its limit of {self.max_sessions} open sessions: "
                                  "try again when one ends (or raise PHOTOAVATAR_MAX_SESSIONS)")
        if sum(1 for o in self._owners.values() if o == owner) >= self.max_per_owner:
            raise TooManySessions(f"this address already holds {self.max_per_owner} open sessions, the most one "
                                  "address may: end one (DELETE /sessions/{session_id}) before opening another")
        waiting = sum(1 for s in self._sessions.values() if not s.transport.connected)
        if waiting >= self.max_unconnected:
            raise TooManySessions(f"{waiting} sessions are waiting for their client to connect, the most at once: "
                                  f"try again in a few seconds (unconnected ones end after {self.connect_timeout_s:g} s)")

    def get(self, session_id: str) -> LiveSession | None:
        return self._sessions.get(session_id)

    def all(self) -> list[LiveSession]:
        return list(self._sessions.values())

    async def close(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        self._owners.pop(session_id, None)
        if session is None:
            return False
        await session.close()
        if self._on_close is not None:
            self._on_close(session)
        return True

    async def close_all(self) -> None:
        for session_id in list(self._sessions):
            await self.close(session_id)

    def abandoned(self) -> list[str]:
        """Sessions to free: expired, peer gone, or no client connected within the connect timeout."""
        now_wall, now = time.time(), time.monotonic()
        return [sid for sid, s in self._sessions.items()
                if s.expires_at_s <= now_wall or s.transport.closed
                or (not s.transport.connected and now - s.created_at_s > self.connect_timeout_s)]

    async def reap_forever(self, period_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(period_s)
            for session_id in self.abandoned():
                log.info("freeing session %s", session_id)
                await self.close(session_id)
