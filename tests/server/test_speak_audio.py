"""The caller's own audio in a session, for real: uvicorn on loopback, a real aiortc client peer, /speak-audio
with a file and the audio-stream WebSocket with PCM frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets

from photoavatar.live.protocol import validate
from photoavatar.server.app import create_app, engine_speech_source
from photoavatar.server.config import ServerSettings
from photoavatar.speech.viseme_accuracy import speak as synthesise
from photoavatar.testing.peer import ClientPeer
from photoavatar.testing.servers import server_in_thread

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speech"))
from audio_files import encode  # noqa: E402

SENTENCE = "Bob bought a big bag of plums from the market."
ENERGY_RMS = 300.0


@pytest.fixture(scope="module")
def engine_and_speech():
    source, engine = engine_speech_source("piper")
    return source, engine


@pytest.fixture(scope="module")
def spoken(engine_and_speech):
    """The sentence as Piper says it without its random variation (the noise the voice draws afresh in every
    run), so pocketsphinx hears the same words in every run of these tests."""
    config = engine_and_speech[1].loaded_voice().piper.config
    scales = config.noise_scale, config.noise_w_scale
    config.noise_scale = config.noise_w_scale = 0.0
    try:
        return synthesise(engine_and_speech[1], SENTENCE)
    finally:
        config.noise_scale, config.noise_w_scale = scales


@contextlib.asynccontextmanager
async def live(tmp_path, engine_and_speech):
    bundle = tmp_path / "avatars" / "demo"
    bundle.mkdir(parents=True)
    (bundle / "avatar.json").write_text(json.dumps({"format_version": 1}))
    source, engine = engine_and_speech
    app = create_app(ServerSettings(avatars_dir=tmp_path / "avatars", ice_loopback=True), speech=source,
                     voices=engine.voices())
    with server_in_thread(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            session = (await http.post("/session-live", json={"avatar_id": "demo"})).json()
            auth = {"Authorization": f"Bearer {session['token']}"}
            peer, offer_sdp = await ClientPeer.offer()
            answer = await http.post(session["url"], content=offer_sdp,
                                     headers={**auth, "Content-Type": "application/sdp"})
            assert answer.status_code == 201, answer.text
            await peer.accept(answer.text)
            await peer.wait_for(lambda: peer.pc.connectionState == "connected" and len(peer.frames) > 5, 20)
            try:
                yield http, session, auth, peer, base
            finally:
                await peer.close()


async def post_audio(http, session, auth, data: bytes, **fields):
    form = {"session_id": session["session_id"], **{k: str(v).lower() if isinstance(v, bool) else v
                                                    for k, v in fields.items()}}
    return await http.post("/speak-audio", data=form, files={"audio": ("speech.bin", data)}, headers=auth)


def loud_seconds(peer: ClientPeer) -> float:
    loud = [pts for _, pts, s in peer.frames if np.sqrt(np.mean(s.astype(np.float64) ** 2)) > ENERGY_RMS]
    return (loud[-1] - loud[0]) / 48000 if loud else 0.0


def check_utterance(peer: ClientPeer, utterance_id: str) -> list[dict]:
    end, = [m for m in peer.of_type("utterance_end") if m["utterance_id"] == utterance_id]
    assert end["reason"] == "done", end
    for _, _, message in peer.messages:
        validate(message)
    events = [e for m in peer.of_type("viseme") if m["utterance_id"] == utterance_id for e in m["events"]]
    frames = [f for m in peer.of_type("prosody") if m["utterance_id"] == utterance_id for f in m["frames"]]
    assert events and frames
    return events


@pytest.mark.slow
@pytest.mark.parametrize("kind, transcript", [("mp3", SENTENCE), ("ogg", None)])
async def test_speak_audio_plays_the_file_with_visemes(tmp_path, engine_and_speech, spoken, kind, transcript):
    async with live(tmp_path, engine_and_speech) as (http, session, auth, peer, _):
        fields = {"transcript": transcript} if transcript else {}
        reply = await post_audio(http, session, auth, encode(spoken.samples, spoken.sample_rate_hz, kind), **fields)
        assert reply.status_code == 202, reply.text
        body = reply.json()
        assert body["method"] == ("transcript aligned" if transcript else "recognised words aligned")
        duration_s = len(spoken.samples) / spoken.sample_rate_hz
        assert abs(body["duration_s"] - duration_s) < 0.1
        await peer.wait_for(lambda: peer.of_type("utterance_end"), timeout_s=30)
        events = check_utterance(peer, body["utterance_id"])
        assert sum(e["viseme"] == "MBP" for e in events) >= 4  # Bob, bought, big, bag, plums, from
        start, = peer.of_type("utterance_start")
        assert start["text"] == (transcript or "")
        assert loud_seconds(peer) > 0.7 * duration_s


@pytest.mark.slow
async def test_bad_audio_is_refused_and_barge_in_cuts_what_plays(tmp_path, engine_and_speech, spoken):
    async with live(tmp_path, engine_and_speech) as (http, session, auth, peer, _):
        for data, words in ((b"not audio at all" * 10, "not audio"),
                            (encode(np.zeros(16000, dtype=np.int16), 16000), "silent")):
            reply = await post_audio(http, session, auth, data)
            assert reply.status_code == 400 and words in reply.json()["detail"], reply.text
        assert (await post_audio(http, session, {}, encode(spoken.samples, spoken.sample_rate_hz))).status_code == 401
        long_audio = encode(np.concatenate([spoken.samples] * 3), spoken.sample_rate_hz, "flac")
        first = (await post_audio(http, session, auth, long_audio)).json()["utterance_id"]
        await peer.wait_for(lambda: peer.of_type("utterance_start"), timeout_s=20)
        second = await post_audio(http, session, auth, encode(spoken.samples, spoken.sample_rate_hz), barge_in=True)
        assert second.status_code == 202
        await peer.wait_for(lambda: len(peer.of_type("utterance_end")) >= 2, timeout_s=30)
        ends = {m["utterance_id"]: m["reason"] for m in peer.of_type("utterance_end")}
        assert ends[first] == "barge_in" and ends[second.json()["utterance_id"]] == "done"


@pytest.mark.slow
async def test_streamed_pcm_plays_with_visemes(tmp_path, engine_and_speech, spoken):
    async with live(tmp_path, engine_and_speech) as (http, session, auth, peer, base):
        url = f"{base.replace('http', 'ws')}sessions/{session['session_id']}/audio-stream?token={session['token']}"
        rate = spoken.sample_rate_hz
        async with websockets.connect(url) as socket:
            await socket.send(json.dumps({"sample_rate_hz": rate, "barge_in": True}))
            started = json.loads(await socket.recv())
            assert started["type"] == "started" and started["max_delay_s"] <= 0.15
            step = rate // 50  # 20 ms frames, in real time as an agent would send them
            for begin in range(0, len(spoken.samples), step):
                await socket.send(spoken.samples[begin:begin + step].astype("<i2").tobytes())
                await asyncio.sleep(0.02)
            await socket.send(json.dumps({"type": "end"}))
            ended = json.loads(await socket.recv())
        assert ended["type"] == "ended" and abs(ended["seconds"] - len(spoken.samples) / rate) < 0.03
        await peer.wait_for(lambda: peer.of_type("utterance_end"), timeout_s=20)
        events = check_utterance(peer, started["utterance_id"])
        assert sum(e["viseme"] == "MBP" for e in events) >= 3
        assert loud_seconds(peer) > 0.7 * len(spoken.samples) / rate


@pytest.mark.slow
async def test_the_stream_needs_the_sessions_token(tmp_path, engine_and_speech):
    async with live(tmp_path, engine_and_speech) as (http, session, auth, peer, base):
        url = f"{base.replace('http', 'ws')}sessions/{session['session_id']}/audio-stream?token=wrong"
        async with websockets.connect(url) as socket:
            reply = json.loads(await socket.recv())
        assert reply["type"] == "error" and "token" in reply["detail"].lower()
