"""What a session and the server need from a transport, and nothing else: the server never asks which one it has.

One module per implementation: `webrtc.py` (aiortc, embedded) and `livekit.py` (a LiveKit room);
`transports.py` chooses one from the server's settings. A transport
- is opened once, when /session-live answers: `open` says where the client connects and with which token;
- takes the client's SDP offer if it signals over SDP (`answer`; LiveKit refuses with a `SignallingError`);
- plays `playout` (the session's audio) and sends protocol messages (`send`, encoded by `protocol.encode`).

Extending it: a new medium (a video track) or a limit (largest data message) is an attribute or method added here
and to every implementation, so the session and the server keep using it without asking which transport it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from photoavatar.live.audio import Playout
from photoavatar.live.protocol import Message


class LiveError(Exception):
    """A request the live stage cannot honour; `http_status` is what the server answers, the message says why."""

    http_status = 400

    def __init__(self, message: str, http_status: int | None = None):
        super().__init__(message)
        if http_status is not None:
            self.http_status = http_status


class SignallingError(LiveError):
    """The offer cannot be answered: bad SDP (400), a second offer (409), a transport without SDP signalling (400)."""


class TransportUnavailable(LiveError):
    """The transport cannot reach what it needs (e.g. the LiveKit server)."""

    http_status = 502


@dataclass(frozen=True)
class SessionAccess:
    """What the server knows of a new session that a transport may hand to its client."""

    session_id: str
    session_token: str  # the server's Bearer for /speak, /stop and signalling
    signalling_url: str  # where this server takes the session's SDP offer
    expires_at_s: float  # wall clock (time.time())


@dataclass(frozen=True)
class ConnectInfo:
    """Where the client connects (`url`) and the token it shows there, as /session-live returns them."""

    url: str
    token: str


class Transport(Protocol):
    kind: str  # "webrtc" | "livekit": what /session-live tells the client
    anchor: str  # protocol.ANCHORS: "rtp" (client maps rtp_timestamp) | "onset" (first audio after silence)
    max_message_bytes: int  # the largest message the client accepts; send() splits larger ones (encode_pieces)
    playout: Playout
    video: object | None  # the session's server-rendered video (live/video.py); None when it has none

    @property
    def connected(self) -> bool:
        """A client is attached and media can flow."""
        ...

    @property
    def closed(self) -> bool:
        """The client is gone for good (connection failed or closed); the session can be freed."""
        ...

    async def open(self, access: SessionAccess) -> ConnectInfo:
        """Get ready for the client (LiveKit joins its room); TransportUnavailable when it cannot."""
        ...

    async def answer(self, offer_sdp: str) -> str:
        """The SDP answer to the client's complete offer; SignallingError (with its HTTP status) when refused."""
        ...

    def rtp_timestamp_at(self, stream_sample: int) -> int:
        """The RTP timestamp (48 kHz) at which playout sample `stream_sample` is heard."""
        ...

    def send(self, message: Message) -> None:
        """Send one protocol message on its label (`message.label`); messages keep their order per label."""
        ...

    async def close(self) -> None:
        ...
