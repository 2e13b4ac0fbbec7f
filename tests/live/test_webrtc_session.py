"""A real aiortc client peer against the real server, on loopback.

The server's loopback ICE mode (photoavatar/live/ice.py) makes both peers
gather 127.0.0.1 only; the HTTP side runs in-process (httpx ASGITransport) on the same event loop as both peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import numpy as np

from photoavatar.live.audio import FRAME_SAMPLES, RTP_MODULO, Resampler48k
from photoavatar.live.opus import LOOKAHEAD_SAMPLES
from photoavatar.live.protocol import validate
from photoavatar.server.app import create_app
from photoavatar.server.config import ServerSettings
from photoavatar.testing.peer import ClientPeer
from photoavatar.testing.slow_speech import late_after_the_first_segment

SENTENCE = "Hello there. This is the live avatar speaking over a real peer connection."
LONG_TEXT = " ".join(["This sentence is long enough to still be playing when the next request arrives."] * 4)
ENERGY_RMS = 300.0  # int16 RMS; decoded silence stays far below, speech far above


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


@contextlib.asynccontextmanager
async def live_server(tmp_path, speech, **overrides):
    bundle = tmp_path / "avatars" / "demo"
    bundle.mkdir(parents=True)
    (bundle / "avatar.json").write_text(json.dumps({"format_version": 1}))
    source, voices = speech
    app = create_app(ServerSettings(avatars_dir=tmp_path / "avatars", ice_loopback=True, **overrides),
                     speech=source, voices=voices)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            http.app = app  # tests read the server's own clock through it
            yield http


async def connect(http: httpx.AsyncClient) -> tuple[dict, ClientPeer, dict]:
    session = (await http.post("/session-live", json={"avatar_id": "demo"})).json()
    auth = {"Authorization": f"Bearer {session['token']}"}
    peer, offer_sdp = await ClientPeer.offer()
    answer = await http.post(session["url"], content=offer_sdp, headers={**auth, "Content-Type": "application/sdp"})
    assert answer.status_code == 201, answer.text
    assert answer.headers["content-type"].startswith("application/sdp")
    candidates = [line.split()[4] for line in answer.text.splitlines() if line.startswith("a=candidate:")]
    assert candidates and set(candidates) == {"127.0.0.1"}, candidates
    await peer.accept(answer.text)
    await peer.wait_for(lambda: peer.pc.connectionState == "connected" and len(peer.frames) > 5)
    return session, peer, auth


@contextlib.asynccontextmanager
async def connected_peer(tmp_path, speech, **overrides):
    """The live server with one aiortc client connected: (http, session, peer, auth); the peer is closed after."""
    async with live_server(tmp_path, speech, **overrides) as http:
        session, peer, auth = await connect(http)
        try:
            yield http, session, peer, auth
        finally:
            await peer.close()


async def speak(http, session, auth, text, barge_in=True) -> str:
    reply = await http.post("/speak", json={"session_id": session["session_id"], "text": text, "barge_in": barge_in},
                            headers=auth)
    assert reply.status_code == 202, reply.text
    return reply.json()["utterance_id"]


def recording(speech, text_to_keep: str):
    """The real speech source, keeping a copy of the segments it yields for one text (Piper is not deterministic;
    the server's warm-up speaks through the same source)."""
    source, voices = speech
    segments = []

    def speak(text, voice_id):
        for segment in source(text, voice_id):
            if text == text_to_keep:
                segments.append(segment)
            yield segment

    return (speak, voices), segments


def source_audio_48k(segments) -> np.ndarray:
    resampler = Resampler48k(segments[0].audio.sample_rate_hz)
    return np.concatenate([resampler.push(seg.audio.samples) for seg in segments] + [resampler.flush()])


def received_audio(peer: ClientPeer, from_pts: int, count: int) -> np.ndarray:
    """The decoded audio from pts FROM_PTS on, laid out by RTP time (gaps stay zero)."""
    out = np.zeros(count, dtype=np.float64)
    for _, pts, samples in peer.frames:
        lo, hi = max(pts, from_pts), min(pts + len(samples), from_pts + count)
        if lo < hi:
            out[lo - from_pts:hi - from_pts] = samples[lo - pts:hi - pts]
    return out


def lag_of(source: np.ndarray, received: np.ndarray, max_lag: int) -> int:
    """The shift (in samples) at which SOURCE best matches RECEIVED; positive = heard later."""
    source = source.astype(np.float64)
    scores = [float(np.dot(source, received[max_lag + lag:max_lag + lag + len(source)]))
              / (np.linalg.norm(received[max_lag + lag:max_lag + lag + len(source)]) + 1e-9)
              for lag in range(-max_lag, max_lag + 1)]
    return int(np.argmax(scores)) - max_lag


async def test_speech_arrives_with_events_stamped_in_rtp_time(tmp_path, speech):
    speech, produced = recording(speech, SENTENCE)
    async with connected_peer(tmp_path, speech) as (http, session, peer, auth):
        utterance_id = await speak(http, session, auth, SENTENCE)
        await peer.wait_for(lambda: peer.of_type("utterance_end"), timeout_s=20)
        start, = peer.of_type("utterance_start")
        end, = peer.of_type("utterance_end")
        assert start["utterance_id"] == end["utterance_id"] == utterance_id
        assert end["reason"] == "done" and start["rtp_clock_hz"] == 48000 and start["text"] == SENTENCE
        for _, label, message in peer.messages:  # nothing undocumented is sent (docs/protocol.md)
            validate(message)
            assert label == ("prosody" if message["type"] == "prosody" else "viseme")
        events = [e for m in peer.of_type("viseme") for e in m["events"]]
        frames = [f for m in peer.of_type("prosody") for f in m["frames"]]
        assert events and frames and all(m["utterance_id"] == utterance_id for m in peer.of_type("viseme"))
        # the first loud sample the client decoded sits where utterance_start said the audio begins
        # the audio the engine made lies in the decoded stream exactly where utterance_start said
        expected_pts = (start["rtp_timestamp"] - peer.rtp_origin()) % RTP_MODULO
        source = source_audio_48k(produced)[:48000]  # the first second of the utterance
        max_lag = 4 * FRAME_SAMPLES
        lag = lag_of(source, received_audio(peer, expected_pts - max_lag, len(source) + 2 * max_lag), max_lag)
        print(f"decoded audio vs announced rtp_timestamp: {lag} samples")
        assert abs(lag) <= 24, lag  # 0.5 ms
        # and it is speech: energy over the utterance's length, silence after the end
        loud = [pts for _, pts, s in peer.frames if rms(s) > ENERGY_RMS]
        assert (loud[-1] - loud[0]) / 48000 > 1.5


async def test_a_late_engine_pauses_the_audio_and_the_gap_messages_say_where_the_rest_plays(tmp_path, speech):
    source, voices = speech
    produced = []
    late = late_after_the_first_segment(source, SENTENCE, delay_s=0.5, kept=produced)
    async with connected_peer(tmp_path, (late, voices)) as (http, session, peer, auth):
        await speak(http, session, auth, SENTENCE)
        await peer.wait_for(lambda: peer.of_type("utterance_end"), timeout_s=20)
        start, = peer.of_type("utterance_start")
        gaps = peer.of_type("utterance_gap")
        assert gaps and {g["utterance_id"] for g in gaps} == {start["utterance_id"]}
        first_s = len(source_audio_48k(produced[:1])) / 48000
        at_s, gap_s = gaps[0]["at_s"], sum(g["gap_s"] for g in gaps)
        assert {g["at_s"] for g in gaps} == {at_s} and abs(at_s - first_s) < 0.005, (gaps, first_s)
        assert 0.1 < gap_s < 0.6, gap_s  # 0.5 s late, less the first segment's playing time
        # the audio after the gap lies in the decoded stream exactly where the messages say
        at, moved = round(at_s * 48000), round((at_s + gap_s) * 48000)
        after_gap = source_audio_48k(produced)[at:at + 24000]
        expected_pts = (start["rtp_timestamp"] - peer.rtp_origin() + moved) % RTP_MODULO
        max_lag = 4 * FRAME_SAMPLES
        lag = lag_of(after_gap, received_audio(peer, expected_pts - max_lag, len(after_gap) + 2 * max_lag), max_lag)
        print(f"audio after the gap vs where utterance_gap put it: {lag} samples; gap {gap_s * 1000:.0f} ms")
        assert abs(lag) <= 48, lag  # 1 ms


async def test_the_start_and_first_events_leave_before_the_first_sample(tmp_path, speech):
    """The client can schedule a closure that leads the first sound only if it knows where the sound will be."""
    async with connected_peer(tmp_path, speech) as (http, session, peer, auth):
        transport = http.app.state.photoavatar.sessions.get(session["session_id"]).transport
        sent_at_position = []
        send = transport.send

        def send_and_note_the_stream_position(message):
            sent_at_position.append((message.to_json()["type"], transport.playout.position_samples))
            send(message)

        transport.send = send_and_note_the_stream_position
        await speak(http, session, auth, "Papa bought a big blue boat.")
        await peer.wait_for(lambda: peer.of_type("utterance_end"), timeout_s=20)
        start, = peer.of_type("utterance_start")
        first_sample = (start["rtp_timestamp"] - transport.rtp_timestamp_at(0)) % RTP_MODULO
        (_, start_position), (kind, viseme_position) = sent_at_position[:2]
        assert kind == "viseme" and start_position <= viseme_position <= first_sample, sent_at_position[:2]
        assert 0 <= start["server_s"] < 5


def open_utterances_never_overlap(peer: ClientPeer) -> None:
    """Across the message stream, at most one utterance is between its start and its end."""
    playing = set()
    for _, _, message in peer.messages:
        if message["type"] == "utterance_start":
            assert not playing, f"{message['utterance_id']} started while {playing} was still playing"
            playing.add(message["utterance_id"])
        elif message["type"] == "utterance_end":
            playing.discard(message["utterance_id"])


async def test_stop_silences_audio_within_100_ms(tmp_path, speech):
    async with connected_peer(tmp_path, speech) as (http, session, peer, auth):
        first = await speak(http, session, auth, LONG_TEXT)
        queued = await speak(http, session, auth, SENTENCE, barge_in=False)
        await peer.wait_for(lambda: sum(rms(f[2]) > ENERGY_RMS for f in peer.frames) > 10)  # well into speech
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        reply = await http.post("/stop", json={"session_id": session["session_id"]}, headers=auth)
        assert reply.status_code == 200 and reply.json() == {"stopped": [first, queued]}
        transport = http.app.state.photoavatar.sessions.get(session["session_id"]).transport
        stop_pts = (transport.rtp_timestamp_at(transport.playout.position_samples) - peer.rtp_origin()) % RTP_MODULO
        await asyncio.sleep(0.6)
        # in audio time (the server's send clock): what the aiortc client's jitter buffer adds is not ours
        loud_pts = [pts + len(s) for _, pts, s in peer.frames if rms(s) > ENERGY_RMS]
        audio_ms = (max(loud_pts) - stop_pts) / 48
        arrival_ms = max((t - stopped_at for t, _, s in peer.frames if rms(s) > ENERGY_RMS), default=0) * 1000
        print(f"/stop -> silence: {audio_ms:.0f} ms of audio sent, {arrival_ms:.0f} ms at the client's output")
        assert audio_ms <= 100
        assert [e["reason"] for e in peer.of_type("utterance_end")] == ["stop", "stop"]
        assert [s["utterance_id"] for s in peer.of_type("utterance_start")] == [first]  # the queue is gone


async def test_barge_in_replaces_the_utterance_and_rapid_ones_never_overlap(tmp_path, speech):
    async with connected_peer(tmp_path, speech) as (http, session, peer, auth):
        first = await speak(http, session, auth, LONG_TEXT)
        await peer.wait_for(lambda: peer.of_type("utterance_start"))
        await asyncio.sleep(0.3)
        second = await speak(http, session, auth, LONG_TEXT)  # two barge-ins back to back
        third = await speak(http, session, auth, SENTENCE)
        await peer.wait_for(lambda: any(e["utterance_id"] == third for e in peer.of_type("utterance_end")), 20)
        ends = {e["utterance_id"]: e["reason"] for e in peer.of_type("utterance_end")}
        assert ends == {first: "barge_in", second: "barge_in", third: "done"}
        assert [s["utterance_id"] for s in peer.of_type("utterance_start")][-1] == third
        open_utterances_never_overlap(peer)
        # the barged-in audio stopped: nothing loud between the cut and the third utterance's first sample
        third_start = next(s for s in peer.of_type("utterance_start") if s["utterance_id"] == third)
        third_pts = (third_start["rtp_timestamp"] - peer.rtp_origin()) % RTP_MODULO
        # the cut came at least a frame before the third's first sample (its first stretch takes longer to make);
        # that frame, decoded, opens with the codec's look-ahead of the frame before it, which may be loud
        cut_pts = third_pts - 2 * FRAME_SAMPLES
        quiet_gap = [rms(s[LOOKAHEAD_SAMPLES:]) for _, pts, s in peer.frames
                     if cut_pts <= pts < third_pts - FRAME_SAMPLES]
        assert quiet_gap and max(quiet_gap) < ENERGY_RMS


async def test_failing_speech_ends_with_an_error_and_the_session_keeps_working(tmp_path, speech):
    async with connected_peer(tmp_path, speech) as (http, session, peer, auth):
        failing = await speak(http, session, auth, "日本語です")  # the English voice refuses it
        await peer.wait_for(lambda: peer.of_type("utterance_end"))
        end, = peer.of_type("utterance_end")
        assert end["utterance_id"] == failing and end["reason"] == "error" and "English" in end["error"]
        working = await speak(http, session, auth, "But this works.")
        await peer.wait_for(lambda: len(peer.of_type("utterance_end")) == 2, 20)
        assert peer.of_type("utterance_end")[1] == {"type": "utterance_end", "utterance_id": working,
                                                    "reason": "done"}


async def test_a_second_offer_is_a_conflict(tmp_path, speech):
    async with connected_peer(tmp_path, speech) as (http, session, peer, auth):
        _, offer_sdp = await ClientPeer.offer()
        again = await http.post(session["url"], content=offer_sdp,
                                headers={**auth, "Content-Type": "application/sdp"})
        assert again.status_code == 409 and "already has a peer connection" in again.json()["detail"]


async def test_a_vanished_client_frees_its_session(tmp_path, speech):
    async with live_server(tmp_path, speech) as http:
        session, peer, auth = await connect(http)
        await speak(http, session, auth, LONG_TEXT)
        await peer.close()  # gone mid-utterance, without a goodbye
        for _ in range(50):
            reply = await http.post("/stop", json={"session_id": session["session_id"]}, headers=auth)
            if reply.status_code == 404:
                break
            await asyncio.sleep(0.1)
        assert reply.status_code == 404, reply.text


async def test_a_session_nobody_connects_to_is_freed(tmp_path, speech):
    async with live_server(tmp_path, speech, connect_timeout_s=1) as http:
        session = (await http.post("/session-live", json={"avatar_id": "demo"})).json()
        auth = {"Authorization": f"Bearer {session['token']}"}
        await asyncio.sleep(2.5)
        reply = await http.post("/stop", json={"session_id": session["session_id"]}, headers=auth)
        assert reply.status_code == 404 and "start a new one" in reply.json()["detail"]
