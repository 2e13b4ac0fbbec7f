"""A real aiortc client peer playing the browser's part (tests and benchmarks import it)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from photoavatar.live.protocol import LABELS


@dataclass
class ClientPeer:
    """A real aiortc peer playing the browser's part: recvonly audio + `viseme` and `prosody` channels."""

    pc: RTCPeerConnection
    frames: list = field(default_factory=list)  # (arrival monotonic s, pts, samples int16 mono)
    messages: list = field(default_factory=list)  # (arrival monotonic s, label, dict)
    reader: asyncio.Task | None = None

    @classmethod
    async def offer(cls) -> tuple[ClientPeer, str]:
        peer = cls(RTCPeerConnection(RTCConfiguration(iceServers=[])))
        peer.pc.addTransceiver("audio", direction="recvonly")
        for label in LABELS:  # the channels the server sends on (live/protocol.py)
            channel = peer.pc.createDataChannel(label, ordered=True)
            channel.on("message", lambda text, label=label: peer._on_message(label, text))
        peer.pc.on("track", peer._on_track)
        await peer.pc.setLocalDescription(await peer.pc.createOffer())  # aiortc gathers all candidates here
        return peer, peer.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    def _on_message(self, label: str, text: str) -> None:
        self.messages.append((asyncio.get_running_loop().time(), label, json.loads(text)))

    def _on_track(self, track) -> None:
        self.reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            samples = frame.to_ndarray().reshape(-1)
            if frame.layout.name == "stereo":
                samples = samples[::2]  # interleaved; one channel is enough
            self.frames.append((asyncio.get_running_loop().time(), frame.pts, samples.astype(np.int16)))

    def rtp_origin(self) -> int:
        """The RTP timestamp of the first packet received: aiortc's receiver subtracts it from every pts."""
        receiver = self.pc.getTransceivers()[0].receiver
        return receiver._RTCRtpReceiver__timestamp_mapper._origin

    def of_type(self, kind: str) -> list[dict]:
        return [m for _, _, m in self.messages if m.get("type") == kind]

    async def wait_for(self, predicate, timeout_s: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s; messages: {[m for _, _, m in self.messages]}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.pc.close()
        if self.reader:
            self.reader.cancel()
