"""The LiveKit transport: real tokens, the real SDK objects up to the calls that need a LiveKit server.

No LiveKit server runs here. Tokens are decoded and verified for real; audio goes into a real
rtc.AudioSource; the room's participant (publish_track / publish_data) is the one thing replaced,
by a recorder. `test_against_a_real_livekit_server` runs when LIVEKIT_URL is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

import httpx
import jwt
import pytest
from livekit import api, rtc

from photoavatar.live import protocol
from photoavatar.live.livekit import LiveKitConfigError, LiveKitTransport
from photoavatar.live.session import LiveSession
from photoavatar.live.synthesis import SynthesisScheduler
from photoavatar.live.transport import SignallingError
from photoavatar.server.app import create_app
from photoavatar.server.config import ServerSettings

KEY, SECRET = "devkey", "a-secret-that-is-long-enough-for-hs256-0123"


def transport(room: str = "room-1") -> LiveKitTransport:
    return LiveKitTransport("ws://127.0.0.1:7880", KEY, SECRET, room)


def test_viewer_token_may_join_and_subscribe_only():
    expires = time.time() + 600
    token = transport("room-9").client_token("s_abc", expires)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "viewer-s_abc" and claims["iss"] == KEY and abs(claims["exp"] - expires) < 5
    video = claims["video"]
    assert video["roomJoin"] is True and video["room"] == "room-9" and video["canSubscribe"] is True
    assert video["canPublish"] is False and video["canPublishData"] is False
    verified = api.TokenVerifier(KEY, SECRET).verify(token)  # the SDK's own verifier agrees
    assert verified.video.room == "room-9" and verified.identity == "viewer-s_abc"
    with pytest.raises(jwt.InvalidSignatureError):
        api.TokenVerifier(KEY, "another-secret-another-secret-another-secr").verify(token)


def test_avatar_token_may_publish_audio_and_data():
    claims = jwt.decode(transport("room-2").avatar_token(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "avatar"
    assert claims["video"] | {"roomJoin": True, "room": "room-2", "canPublish": True,
                              "canPublishData": True} == claims["video"]


def test_incomplete_settings_are_refused_clearly():
    with pytest.raises(LiveKitConfigError, match="LIVEKIT_API_SECRET"):
        LiveKitTransport("ws://x", KEY, "", "room")


class RecordingParticipant:
    """Stands in for rtc.Room.local_participant, which exists only inside a connected room."""

    def __init__(self):
        self.tracks, self.data = [], []

    async def publish_track(self, track, options):
        self.tracks.append((track, options))

    async def publish_data(self, payload, *, reliable=True, topic=""):
        message = json.loads(payload)
        protocol.validate(message)  # nothing undocumented is sent
        assert payload.decode() == json.dumps(message, separators=(",", ":"))  # the one encoder's compact text
        self.data.append((topic, message, reliable))


async def test_a_session_publishes_audio_and_events_through_the_sdk(speech):
    source, _ = speech
    lk = transport()
    participant = RecordingParticipant()
    await lk.publish(participant)
    synthesis = SynthesisScheduler(1)
    session = LiveSession("s_1", "demo", None, lk, source, synthesis, time.time() + 60)
    try:
        (track, options), = participant.tracks
        assert isinstance(track, rtc.LocalAudioTrack) and options.source == rtc.TrackSource.SOURCE_MICROPHONE
        first = session.speak("Hello from the LiveKit side. This sentence keeps going for a while.")
        for _ in range(200):
            if any(m["type"] == "viseme" for _, m, _ in participant.data) and lk.source.queued_duration > 0.1:
                break
            await asyncio.sleep(0.05)
        assert lk.source.queued_duration <= lk.queue_ms / 1000 + 0.03  # the SDK holds only a short queue
        second = session.speak("Stop.")  # barge-in: the SDK's queue is dropped with the playout
        assert lk.source.queued_duration == 0
        for _ in range(200):
            if any(m.get("reason") == "done" for _, m, _ in participant.data):
                break
            await asyncio.sleep(0.05)
        messages = [(topic, m) for topic, m, reliable in participant.data if reliable]
        starts = [m for _, m in messages if m["type"] == "utterance_start"]
        assert [s["utterance_id"] for s in starts] == [first, second] and {s["anchor"] for s in starts} == {"onset"}
        ends = [(m["utterance_id"], m["reason"]) for _, m in messages if m["type"] == "utterance_end"]
        assert ends == [(first, "barge_in"), (second, "done")]
        assert {topic for topic, m in messages if m["type"] == "prosody"} == {"prosody"}
        assert {topic for topic, m in messages if m["type"] != "prosody"} == {"viseme"}
        # real 20 ms frames went into the AudioSource: at least "Stop." whole (about 0.5 s) after the 0.1 s of the
        # first; how much more depends on when the barge-in lands (50 were seen, so 50 is no bound)
        assert lk.frames_sent >= 20
    finally:
        await session.close()
        synthesis.close()


async def test_a_livekit_session_refuses_sdp_signalling_with_its_status():
    with pytest.raises(SignallingError, match="uses LiveKit") as refused:
        await transport().answer("v=0\r\n")
    assert refused.value.http_status == 400


async def test_the_server_says_clearly_when_livekit_cannot_be_reached(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "avatar.json").write_text("{}")
    settings = ServerSettings(avatars_dir=tmp_path, livekit_url=f"ws://127.0.0.1:{closed_port}",
                              livekit_api_key=KEY, livekit_api_secret=SECRET, connect_timeout_s=10)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            reply = await http.post("/session-live", json={"avatar_id": "demo"})
    assert reply.status_code == 502 and "LIVEKIT_URL" in reply.json()["detail"], reply.text


@pytest.mark.livekit
@pytest.mark.skipif(  # an opt-in integration test: a real server is the one thing no fake can stand in for
    not os.environ.get("LIVEKIT_URL"),
    reason="opt-in: start a LiveKit server (e.g. `livekit-server --dev`), then run LIVEKIT_URL=ws://127.0.0.1:7880 "
           "LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret .venv/bin/python -m pytest -m livekit tests/live")
async def test_against_a_real_livekit_server(tmp_path, speech):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "avatar.json").write_text("{}")
    source, voices = speech
    app = create_app(ServerSettings.from_settings(tmp_path), speech=source, voices=voices)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            session = (await http.post("/session-live", json={"avatar_id": "demo"})).json()
            assert session["transport"] == "livekit"
            viewer = rtc.Room()
            got = []
            viewer.on("data_received", lambda packet: got.append((packet.topic, json.loads(packet.data))))
            await viewer.connect(session["url"], session["token"])
            auth = {"Authorization": f"Bearer {session['session_token']}"}
            await http.post("/speak", json={"session_id": session["session_id"], "text": "Hello."}, headers=auth)
            for _ in range(200):
                if any(m.get("type") == "utterance_end" for _, m in got):
                    break
                await asyncio.sleep(0.05)
            await viewer.disconnect()
    assert [m["reason"] for _, m in got if m["type"] == "utterance_end"] == ["done"]
    assert any(topic == "viseme" and m["type"] == "viseme" for topic, m in got)
