"""The embedded transport: one aiortc peer per session, WHEP-style (offer in, answer out, no trickle).

The client creates the `viseme` and `prosody` data channels and a recvonly audio transceiver; the server
answers with one sendonly audio track. ICE servers are explicit (empty on loopback): aiortc would
otherwise ask a public STUN server, which this machine cannot reach.
"""

from __future__ import annotations

import asyncio
import logging

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from photoavatar.live import ice, opus, protocol
from photoavatar.live.audio import PacedAudioTrack, Playout
from photoavatar.live.sdp_check import DEFAULT_MAX_MESSAGE_BYTES, check_offer
from photoavatar.live.transport import ConnectInfo, SessionAccess, SignallingError
from photoavatar.live.video import VideoTrackOfSession

log = logging.getLogger(__name__)

_LABELS = protocol.LABELS
_MAX_BUFFERED_MESSAGES = 500  # per label, while the client's channel is not open yet


def ice_configuration(ice_servers: list[str]) -> RTCConfiguration:
    """RTCConfiguration from URLs like "stun:host:3478" or "turn:user:pass@host:3478"."""
    servers = []
    for url in ice_servers:
        scheme, _, rest = url.partition(":")
        if "@" in rest and scheme in ("turn", "turns"):
            credentials, _, address = rest.rpartition("@")
            username, _, password = credentials.partition(":")
            servers.append(RTCIceServer(urls=f"{scheme}:{address}", username=username, credential=password))
        else:
            servers.append(RTCIceServer(urls=url))
    return RTCConfiguration(iceServers=servers)


class WebRtcTransport:
    kind = "webrtc"
    anchor = "rtp"

    def __init__(self, ice_servers: list[str] | None = None, *, loopback_only: bool = False, video=None,
                 audio_dtx: bool = False):
        """LOOPBACK_ONLY drops the client's candidates that are not 127.0.0.1; what this process gathers is
        the process-wide ICE mode (`ice.restrict_to_loopback`), which the server sets once at start.
        AUDIO_DTX: no audio packets in a long silence (PacedAudioTrack)."""
        self.playout = Playout()
        self._loopback_only = loopback_only
        self._audio_dtx = audio_dtx
        self.track = PacedAudioTrack(self.playout, dtx=audio_dtx)
        # VIDEO (an animate.frames.FrameRenderer): a video track beside the audio, on the same stream clock
        self.video = (VideoTrackOfSession(video, lambda: self.track.started_at_s, self._stream_time_of_rtp)
                      if video is not None else None)
        self._configuration = ice_configuration(ice_servers or [])
        self._pc: RTCPeerConnection | None = None
        self._channels: dict[str, object] = {}
        self._backlog: dict[str, list[str]] = {label: [] for label in _LABELS}
        self._connected = False
        self._closed = False
        self.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES  # the client's SCTP limit, read from its offer

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def closed(self) -> bool:
        return self._closed

    async def open(self, access: SessionAccess) -> ConnectInfo:
        return ConnectInfo(url=access.signalling_url, token=access.session_token)

    async def answer(self, offer_sdp: str) -> str:
        """Take the client's complete offer, return the complete answer (all candidates gathered)."""
        if self._pc is not None:
            raise SignallingError("this session already has a peer connection: start a new session to reconnect",
                                  http_status=409)
        if self._closed:
            raise SignallingError("this session is closed: start a new session")
        offer_sdp, facts = check_offer(offer_sdp)  # SignallingError (400) saying what is wrong
        self.max_message_bytes = facts.max_message_bytes
        if self.video is not None and "\nm=video " not in offer_sdp.replace("\r\n", "\n"):
            raise SignallingError("this session has video: add a recvonly video transceiver before createOffer")
        if self._loopback_only:
            offer_sdp = ice.loopback_candidates_only(offer_sdp)
        pc = RTCPeerConnection(self._configuration)
        self._pc = pc
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", lambda: self._on_state(pc.connectionState))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            self.track.attach_sender(pc.addTrack(self.track))
            if self.video is not None:  # the same peer connection: one media stream id, so the client syncs them
                self.video.track.attach_sender(pc.addTrack(self.video.track))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as error:  # aiortc's parser raises anything; the session stays open for a good offer
            log.info("refused an SDP offer: %r", error)
            await pc.close()
            self._pc, self.track = None, PacedAudioTrack(self.playout, dtx=self._audio_dtx)
            if self.video is not None:
                self.video.renew_track()
            raise SignallingError(f"cannot answer this SDP offer ({type(error).__name__}: {str(error)[:120]}): "
                                  "send the browser's full offer") from None
        return pc.localDescription.sdp

    def rtp_timestamp_at(self, stream_sample: int) -> int:
        """The RTP time at which the receiver's decoder outputs playout sample `stream_sample`."""
        return self.track.rtp_timestamp_at(stream_sample + opus.LOOKAHEAD_SAMPLES)

    def _stream_time_of_rtp(self, rtp_timestamp: int) -> float:
        """Stream seconds of an RTP timestamp that rtp_timestamp_at gave (the moment a sample is heard)."""
        return ((rtp_timestamp - self.track.rtp_timestamp_at(0)) % protocol.RTP_MODULO) / protocol.RTP_CLOCK_HZ

    def send(self, message: protocol.Message) -> None:
        if self.video is not None:
            self.video.speech.handle(message)
        for text in protocol.encode_pieces(message, self.max_message_bytes):
            channel = self._channels.get(message.label)
            if channel is not None and channel.readyState == "open":
                channel.send(text)
            elif len(self._backlog[message.label]) < _MAX_BUFFERED_MESSAGES:
                self._backlog[message.label].append(text)

    async def close(self) -> None:
        self._closed = True
        self.track.stop()
        if self.video is not None:
            self.video.track.stop()
        if self._pc is not None:
            await self._pc.close()

    def _on_datachannel(self, channel) -> None:
        if channel.label not in _LABELS:
            log.info("ignoring data channel %r (the protocol uses %s)", channel.label, _LABELS)
            return
        self._channels[channel.label] = channel
        if channel.readyState == "open":
            self._flush(channel)
        else:
            channel.on("open", lambda: self._flush(channel))

    def _flush(self, channel) -> None:
        backlog, self._backlog[channel.label] = self._backlog[channel.label], []
        for text in backlog:
            channel.send(text)

    def _on_state(self, state: str) -> None:
        log.debug("peer connection %s", state)
        if state == "connected":
            self._connected = True
        elif state in ("failed", "closed"):
            self._connected = False
            self._closed = True
            asyncio.ensure_future(self.close())
