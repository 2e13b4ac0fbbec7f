"""The LiveKit transport: the server joins the session's room as the avatar participant.

It publishes one audio track (rtc.AudioSource, 48 kHz mono, a short queue so a barge-in can drop what
is buffered) and sends the protocol's messages with publish_data on topics `viseme` and `prosody`. An
SFU rewrites RTP timestamps, so utterance_start carries anchor "onset": the client anchors s = 0 to the
first audio frame after silence. Clients get their own token: join + subscribe, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time

from livekit import api, rtc

from photoavatar.live import protocol
from photoavatar.live.audio import FRAME_SAMPLES, RTP_MODULO, SAMPLE_RATE_HZ, Playout
from photoavatar.live.transport import ConnectInfo, SessionAccess, SignallingError, TransportUnavailable
from photoavatar.live.video import SpeechOnVideo

log = logging.getLogger(__name__)

AVATAR_IDENTITY = "avatar"
QUEUE_MS = 150  # what the SDK may buffer: short, since a barge-in can only drop what is still queued here


JOIN_TIMEOUT_S = 30.0
# "In the reliable delivery mode, each packet can be up to 15KiB" (docs.livekit.io/transport/data/packets)
MAX_DATA_PACKET_BYTES = 15 * 1024


class LiveKitConfigError(ValueError):
    pass


def viewer_grants(room: str) -> api.VideoGrants:
    return api.VideoGrants(room_join=True, room=room, can_subscribe=True, can_publish=False, can_publish_data=False)


def avatar_grants(room: str) -> api.VideoGrants:
    return api.VideoGrants(room_join=True, room=room, can_subscribe=False, can_publish=True, can_publish_data=True)


class LiveKitTransport:
    kind = "livekit"
    anchor = "onset"
    max_message_bytes = MAX_DATA_PACKET_BYTES

    def __init__(self, url: str, api_key: str, api_secret: str, room: str, queue_ms: int = QUEUE_MS,
                 join_timeout_s: float = JOIN_TIMEOUT_S, video=None):
        if not (url and api_key and api_secret):
            raise LiveKitConfigError("LiveKit needs LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET together")
        self.url, self.room_name = url, room
        self._api_key, self._api_secret = api_key, api_secret
        self.playout = Playout(drop_downstream=self._drop_queued_audio)
        self.queue_ms = queue_ms
        self.join_timeout_s = join_timeout_s
        self.room: rtc.Room | None = None
        self.source: rtc.AudioSource | None = None
        self._participant = None  # the room's local participant once joined
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._viewer_joined = False
        self._closed = False
        self.frames_sent = 0
        self.video = None  # VIDEO (an animate.frames.FrameRenderer): a camera track beside the voice
        if video is not None:
            from photoavatar.live.livekit_video import LiveKitVideo

            self.video = LiveKitVideo(SpeechOnVideo(video, lambda rtp: rtp / SAMPLE_RATE_HZ))

    @staticmethod
    def unique_room(room_hint: str) -> str:
        return f"photoavatar-{room_hint}-{int(time.time() * 1000) % 10**8}"

    # -- tokens ------------------------------------------------------------------------------------

    def client_token(self, session_id: str, expires_at_s: float) -> str:
        ttl = datetime.timedelta(seconds=max(60, int(expires_at_s - time.time())))
        return (api.AccessToken(self._api_key, self._api_secret).with_identity(f"viewer-{session_id}")
                .with_name("viewer").with_grants(viewer_grants(self.room_name)).with_ttl(ttl).to_jwt())

    def avatar_token(self) -> str:
        return (api.AccessToken(self._api_key, self._api_secret).with_identity(AVATAR_IDENTITY)
                .with_name("photoavatar").with_grants(avatar_grants(self.room_name)).to_jwt())

    # -- joining and publishing --------------------------------------------------------------------

    async def _join(self) -> None:
        """Join the room and publish the voice track."""
        room = rtc.Room()
        room.on("participant_connected", lambda _p: self._set_viewer(True))
        room.on("participant_disconnected", lambda _p: self._viewer_left())
        room.on("disconnected", lambda *_: self._viewer_left())
        await room.connect(self.url, self.avatar_token())
        self.room = room
        self._viewer_joined = bool(room.remote_participants)
        await self.publish(room.local_participant)

    async def publish(self, participant) -> None:
        """Publish the voice on PARTICIPANT and start the audio pump and the message sender."""
        self.source = rtc.AudioSource(SAMPLE_RATE_HZ, 1, queue_size_ms=self.queue_ms)
        track = rtc.LocalAudioTrack.create_audio_track("avatar-voice", self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await participant.publish_track(track, options)
        self._participant = participant
        if self.video is not None:  # before the pump starts: it pushes the audio through the video's synchroniser
            await self.video.publish(participant, self.source)
        self._tasks = [asyncio.create_task(self.pump_audio()), asyncio.create_task(self._send_messages())]
        if self.video is not None:
            self._tasks.append(asyncio.create_task(self.video.pump_video()))

    async def pump_audio(self) -> None:
        """Playout -> AudioSource, 20 ms at a time; capture_frame waits while the SDK queue is full."""
        while True:
            samples = self.playout.next_frame()
            frame = rtc.AudioFrame(samples.tobytes(), SAMPLE_RATE_HZ, 1, FRAME_SAMPLES)
            if self.video is not None:  # through the synchroniser, which then knows the audio clock
                await self.video.push_audio(frame)
            else:
                await self.source.capture_frame(frame)
            self.frames_sent += 1

    async def _send_messages(self) -> None:
        while True:
            topic, payload = await self._outbox.get()
            try:
                await self._participant.publish_data(payload, reliable=True, topic=topic)
            except Exception as error:  # one lost message must not stop the stream
                log.warning("publish_data on %s failed: %s", topic, error)

    def _drop_queued_audio(self) -> None:
        if self.source is not None:
            self.source.clear_queue()

    # -- the Transport protocol --------------------------------------------------------------------

    async def open(self, access: SessionAccess) -> ConnectInfo:
        """Join the room (once, when /session-live answers); the viewer gets its own join-only token."""
        try:
            await asyncio.wait_for(self._join(), timeout=self.join_timeout_s)
        except Exception as error:  # the SDK raises its own types; the user needs the URL and the reason
            raise TransportUnavailable(
                f"cannot join the LiveKit room at {self.url} ({error or type(error).__name__}): "
                "check LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET") from None
        return ConnectInfo(url=self.url, token=self.client_token(access.session_id, access.expires_at_s))

    async def answer(self, offer_sdp: str) -> str:
        raise SignallingError("this session uses LiveKit: join the room with the url and token /session-live returned")

    @property
    def connected(self) -> bool:
        return self._viewer_joined

    @property
    def closed(self) -> bool:
        return self._closed

    def rtp_timestamp_at(self, stream_sample: int) -> int:
        # The SFU rewrites RTP time; this is stream time, and clients anchor to the audio onset instead.
        return stream_sample % RTP_MODULO

    def send(self, message: protocol.Message) -> None:
        if self.video is not None:
            self.video.speech.handle(message)
        for text in protocol.encode_pieces(message, self.max_message_bytes):
            self._outbox.put_nowait((message.label, text.encode()))

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.video is not None:
            await self.video.aclose()
        if self.source is not None:
            await self.source.aclose()
        if self.room is not None:
            await self.room.disconnect()

    def _set_viewer(self, joined: bool) -> None:
        self._viewer_joined = joined

    def _viewer_left(self) -> None:
        self._viewer_joined = False
        self._closed = True  # the viewer left or the room went away: free the session
