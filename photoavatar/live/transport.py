"""What a session needs from a transport: somewhere to play audio and a way to send events.

One module per implementation: `webrtc.py` (aiortc, embedded) and `livekit.py` (a LiveKit room).
"""

from __future__ import annotations

from typing import Protocol

from photoavatar.live.audio import Playout


class Transport(Protocol):
    kind: str  # "webrtc" | "livekit": what /session-live tells the client
    anchor: str  # "rtp" (client maps rtp_timestamp) | "onset" (client anchors to the first audio after silence)
    playout: Playout

    @property
    def connected(self) -> bool:
        """A client is attached and media can flow."""
        ...

    @property
    def closed(self) -> bool:
        """The client is gone for good (connection failed or closed); the session can be freed."""
        ...

    def rtp_timestamp_at(self, stream_sample: int) -> int:
        """The RTP timestamp (48 kHz) at which playout sample `stream_sample` is sent."""
        ...

    def send(self, label: str, message: dict) -> None:
        """Send one JSON message on data channel/topic `label`; messages keep their order per label."""
        ...

    async def close(self) -> None:
        ...
