"""A video session end to end on loopback: the real server (in-process), real speech, a real aiortc client that
receives the voice and the avatar video in one stream; picture and sound move and stop together."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription

from photoavatar.server.app import create_app
from photoavatar.server.config import ServerSettings
from photoavatar.testing.bundles import MOUTH_BOX_PX, write_test_bundle

SENTENCE = "Papa bought a big blue boat and painted it pink for the party by the bay."


@contextlib.asynccontextmanager
async def video_server(tmp_path, faces_dir, speech):
    (tmp_path / "avatars").mkdir()
    write_test_bundle(tmp_path / "avatars" / "grace", faces_dir / "grace_hopper.jpg")
    source, voices = speech
    app = create_app(ServerSettings(avatars_dir=tmp_path / "avatars", ice_loopback=True), speech=source, voices=voices)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            http.app = app
            yield http


class VideoClient:
    """recvonly audio + video and the two channels, like any plain WebRTC app."""

    def __init__(self, prefer: str | None = None):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("audio", direction="recvonly")
        video = self.pc.addTransceiver("video", direction="recvonly")
        if prefer:
            codecs = RTCRtpReceiver.getCapabilities("video").codecs
            video.setCodecPreferences([c for c in codecs if c.mimeType == prefer] +
                                      [c for c in codecs if c.mimeType != prefer])
        self.messages: list[dict] = []
        for label in ("viseme", "prosody"):
            channel = self.pc.createDataChannel(label, ordered=True)
            channel.on("message", lambda text: self.messages.append(json.loads(text)))
        self.pictures: list[tuple[float, np.ndarray]] = []  # (arrival s, RGB frame)
        self.audio_rms: list[tuple[float, float]] = []
        self._readers = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track) -> None:
        async def read():
            loop = asyncio.get_running_loop()
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                if track.kind == "video":
                    self.pictures.append((loop.time(), frame.to_ndarray(format="rgb24")))
                else:
                    samples = frame.to_ndarray().astype(np.float64)
                    self.audio_rms.append((loop.time(), float(np.sqrt(np.mean(samples ** 2)))))
        self._readers.append(asyncio.ensure_future(read()))

    async def connect(self, http) -> tuple[dict, dict, str]:
        session = (await http.post("/session-live", json={"avatar_id": "grace", "video": True})).json()
        assert session.get("video") is True, session
        auth = {"Authorization": f"Bearer {session['session_token']}"}
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await http.post(session["url"], content=self.pc.localDescription.sdp,
                                 headers={**auth, "Content-Type": "application/sdp"})
        assert answer.status_code == 201, answer.text
        await self.pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
        deadline = asyncio.get_running_loop().time() + 20
        while len(self.pictures) < 10:
            assert asyncio.get_running_loop().time() < deadline, "no video frames arrived"
            await asyncio.sleep(0.05)
        return session, auth, answer.text

    def mouth_motion(self, since_s: float, rest: np.ndarray) -> list[tuple[float, float]]:
        x, y, w, h = MOUTH_BOX_PX
        return [(t, float(np.abs(p[y:y + h, x:x + w].astype(float) - rest).mean())) for t, p in self.pictures if t >= since_s]

    async def close(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await self.pc.close()


def rest_mouth(client: VideoClient) -> np.ndarray:
    x, y, w, h = MOUTH_BOX_PX
    return client.pictures[-1][1][y:y + h, x:x + w].astype(float)


async def test_video_and_voice_arrive_in_one_stream_and_the_mouth_speaks(tmp_path, faces_dir, speech):
    async with video_server(tmp_path, faces_dir, speech) as http:
        client = VideoClient()
        try:
            session, auth, answer_sdp = await client.connect(http)
            streams = set(re.findall(r"^a=msid:(\S+) ", answer_sdp, flags=re.M))
            assert len(streams) == 1, f"audio and video must share one media stream to be synchronised: {streams}"
            assert re.search(r"^a=rtpmap:\d+ VP8/90000", answer_sdp, flags=re.M)
            height, width = client.pictures[-1][1].shape[:2]
            assert (width, height) == (256, 256)  # the bundle's working size
            await asyncio.sleep(1.5)  # the encoder's bitrate ramps up over the first second: rest is what follows
            rest = rest_mouth(client)
            spoke_at = asyncio.get_running_loop().time()
            reply = await http.post("/speak", json={"session_id": session["session_id"], "text": SENTENCE}, headers=auth)
            assert reply.status_code == 202
            await asyncio.sleep(3.0)
            motion = client.mouth_motion(spoke_at, rest)
            speaking = max(m for _, m in motion)
            kinds = {m["type"] for m in client.messages}
            assert {"utterance_start", "viseme", "prosody"} <= kinds, "the channels keep working beside the video"
            assert speaking > 5, "the mouth must move on the video while it speaks"
            loop = asyncio.get_running_loop()
            stopped_at = loop.time()
            assert (await http.post("/stop", json={"session_id": session["session_id"]}, headers=auth)).status_code == 200
            await asyncio.sleep(1.0)
            after = client.mouth_motion(stopped_at + 0.5, rest)
            assert after and max(m for _, m in after) < 0.2 * speaking, ("after /stop the mouth is back at rest",
                                                                         speaking, after[:5])
            loud_after = [r for t, r in client.audio_rms if t > stopped_at + 0.5 and r > 100]
            assert not loud_after, "after /stop the voice is silent too"
            span_s = client.pictures[-1][0] - client.pictures[0][0]
            assert len(client.pictures) / span_s > 12, "about 25 frames a second (loose: a loaded machine decodes late)"
        finally:
            await client.close()


async def test_a_client_that_prefers_h264_gets_h264(tmp_path, faces_dir, speech):
    async with video_server(tmp_path, faces_dir, speech) as http:
        client = VideoClient(prefer="video/H264")
        try:
            _, _, answer_sdp = await client.connect(http)
            video_section = answer_sdp[answer_sdp.index("m=video"):]
            first_payload = video_section.split("\r\n")[0].split()[3]
            assert re.search(rf"^a=rtpmap:{first_payload} H264/90000", video_section, flags=re.M), video_section[:400]
        finally:
            await client.close()


async def test_a_video_session_refuses_an_offer_without_video(tmp_path, faces_dir, speech):
    async with video_server(tmp_path, faces_dir, speech) as http:
        session = (await http.post("/session-live", json={"avatar_id": "grace", "video": True})).json()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            pc.addTransceiver("audio", direction="recvonly")
            pc.createDataChannel("viseme")
            await pc.setLocalDescription(await pc.createOffer())
            answer = await http.post(session["url"], content=pc.localDescription.sdp, headers={
                "Authorization": f"Bearer {session['session_token']}", "Content-Type": "application/sdp"})
            assert answer.status_code == 400 and "video transceiver" in answer.json()["detail"]
        finally:
            await pc.close()

