"""Which transport a server's sessions use, chosen once from its settings; the server sees only `Transport`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from photoavatar.live import ice
from photoavatar.live.transport import Transport


@dataclass(frozen=True)
class TransportSettings:
    ice_servers: list[str] = field(default_factory=list)  # URLs like "stun:host:3478", "turn:user:pass@host:3478"
    ice_loopback: bool = False  # media on 127.0.0.1 only (live/ice.py); one choice for the whole process
    audio_dtx: bool = False  # embedded WebRTC: no audio packets in a long silence (live/audio.py, PacedAudioTrack)
    livekit_url: str | None = None  # set: every session joins a LiveKit room instead of an embedded peer
    livekit_api_key: str | None = None
    livekit_api_secret: str | None = None
    join_timeout_s: float = 30.0  # LiveKit: joining the room must finish within this

    @property
    def kind(self) -> str:
        return "livekit" if self.livekit_url else "webrtc"


class Transports:
    """Makes each new session's transport; `running()` holds the process-wide ICE mode for the server's life."""

    def __init__(self, settings: TransportSettings):
        self.settings = settings

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        before = ice.restricted_to_loopback()
        ice.restrict_to_loopback(self.settings.ice_loopback)
        try:
            yield
        finally:
            ice.restrict_to_loopback(before)

    def new(self, room_hint: str, video=None) -> Transport:
        """A fresh transport for one session; ROOM_HINT names its LiveKit room (the avatar id). VIDEO, an
        animate.frames.FrameRenderer, adds a video track of the avatar (live/video.py)."""
        settings = self.settings
        if settings.kind == "livekit":
            from photoavatar.live.livekit import LiveKitTransport  # the SDK loads only when LiveKit is used

            return LiveKitTransport(settings.livekit_url, settings.livekit_api_key, settings.livekit_api_secret,
                                    LiveKitTransport.unique_room(room_hint), join_timeout_s=settings.join_timeout_s,
                                    video=video)
        from photoavatar.live.webrtc import WebRtcTransport

        return WebRtcTransport(settings.ice_servers, loopback_only=settings.ice_loopback, video=video,
                               audio_dtx=settings.audio_dtx)
