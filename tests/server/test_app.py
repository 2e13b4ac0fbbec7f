"""The HTTP edge for real (httpx over ASGI): validation, auth, limits, public-read/authenticated-write avatars."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import threading
import time

import httpx
import jwt
import pytest

from photoavatar.live.tokens import SessionTokens
from photoavatar.server.app import create_app
from photoavatar.server.config import ServerSettings

API_KEY = "test-key-123"


@contextlib.asynccontextmanager
async def server(tmp_path, **overrides):
    avatars = tmp_path / "avatars"
    bundle = avatars / "demo"
    bundle.mkdir(parents=True)
    (bundle / "avatar.json").write_text(json.dumps({"format_version": 1}))
    (bundle / "roi.json").write_text(json.dumps({"format_version": 1, "fps": 25}))
    (tmp_path / "secret.txt").write_text("outside the avatars folder")
    settings = ServerSettings(**{"avatars_dir": avatars, "api_key": API_KEY, **overrides})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            yield http


async def open_session(http) -> tuple[dict, dict]:
    reply = await http.post("/session-live", json={"avatar_id": "demo"})
    assert reply.status_code == 200, reply.text
    session = reply.json()
    return session, {"Authorization": f"Bearer {session['token']}"}


async def test_session_live_answers_the_documented_shape(tmp_path):
    async with server(tmp_path) as http:
        voices = (await http.get("/voices")).json()
        assert {"voice_id": "en_US-joe-medium", "name": "Joe (en-US, medium)", "language": "en-US",
                "engine": "piper"} in voices
        reply = await http.post("/session-live", json={"avatar_id": "demo", "voice_id": voices[0]["voice_id"]})
        session = reply.json()
        assert session["transport"] == "webrtc"
        assert session["url"] == f"http://testserver/sessions/{session['session_id']}/offer"
        assert session["labels"] == {"viseme": "viseme", "prosody": "prosody"}
        assert session["assets"]["roi"] == "/avatars/demo/roi.json"
        assert (await http.get(session["assets"]["roi"])).json()["fps"] == 25
        expires = time.mktime(time.strptime(session["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert abs(expires - (time.time() + 3600)) < 5
        claims = jwt.decode(session["token"], options={"verify_signature": False})
        assert claims["sid"] == session["session_id"] and abs(claims["exp"] - expires) < 2


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"avatar_id": "nobody"}, 404, "GET /avatars lists"),
    ({"avatar_id": "../avatars/demo"}, 400, "not valid"),
    ({"avatar_id": "Demo"}, 400, "lower-case"),
    ({"avatar_id": "demo", "voice_id": "no-such-voice"}, 400, "GET /voices"),
    ({}, 422, "avatar_id"),
])
async def test_session_live_rejects_bad_requests_clearly(tmp_path, body, status, words):
    async with server(tmp_path) as http:
        reply = await http.post("/session-live", json=body)
        assert reply.status_code == status and words in json.dumps(reply.json()["detail"])


async def test_speak_and_stop_need_the_sessions_own_token(tmp_path):
    async with server(tmp_path) as http:
        mine, my_auth = await open_session(http)
        other, other_auth = await open_session(http)
        body = {"session_id": mine["session_id"], "text": "hello"}
        assert (await http.post("/speak", json=body)).status_code == 401
        assert (await http.post("/speak", json=body, headers={"Authorization": "Basic abc"})).status_code == 401
        assert (await http.post("/speak", json=body, headers=other_auth)).status_code == 403
        assert (await http.post("/stop", json={"session_id": mine["session_id"]}, headers=other_auth)).status_code == 403
        forged = SessionTokens(b"another server's secret").mint(mine["session_id"], time.time() + 60)
        reply = await http.post("/speak", json=body, headers={"Authorization": f"Bearer {forged}"})
        assert reply.status_code == 401 and "not valid" in reply.json()["detail"]
        offer = await http.post(mine["url"], content="v=0", headers={**other_auth, "Content-Type": "application/sdp"})
        assert offer.status_code == 403
        reply = await http.post("/speak", json=body, headers=my_auth)
        assert reply.status_code == 202 and reply.json()["utterance_id"].startswith("u_")
        assert (await http.post("/stop", json={"session_id": mine["session_id"]}, headers=my_auth)).status_code == 200


async def test_expired_tokens_and_ended_sessions_are_refused(tmp_path):
    async with server(tmp_path, session_secret="shared-secret") as http:
        session, auth = await open_session(http)
        expired = SessionTokens("shared-secret").mint(session["session_id"], time.time() - 5)
        reply = await http.post("/stop", json={"session_id": session["session_id"]},
                                headers={"Authorization": f"Bearer {expired}"})
        assert reply.status_code == 401 and "expired" in reply.json()["detail"]
        assert (await http.delete(f"/sessions/{session['session_id']}", headers=auth)).status_code == 204
        reply = await http.post("/stop", json={"session_id": session["session_id"]}, headers=auth)
        assert reply.status_code == 404


async def test_text_and_request_limits(tmp_path):
    async with server(tmp_path, max_text_chars=100, requests_per_minute=4) as http:
        session, auth = await open_session(http)
        too_long = {"session_id": session["session_id"], "text": "word " * 30}
        reply = await http.post("/speak", json=too_long, headers=auth)
        assert reply.status_code == 413 and "limit is 100" in reply.json()["detail"]
        reply = await http.post("/speak", json={"session_id": session["session_id"], "text": "  "}, headers=auth)
        assert reply.status_code == 400 and "empty" in reply.json()["detail"]
        speak = {"session_id": session["session_id"], "text": "hi", "barge_in": True}
        for _ in range(2):  # the two refused above counted too: every request costs
            assert (await http.post("/speak", json=speak, headers=auth)).status_code == 202
        reply = await http.post("/speak", json=speak, headers=auth)
        assert reply.status_code == 429 and int(reply.headers["retry-after"]) >= 1
        assert "at most 4 per 60 s" in reply.json()["detail"]


async def test_session_limits(tmp_path):
    async with server(tmp_path, max_sessions=2, sessions_per_minute=3) as http:
        await open_session(http)
        await open_session(http)
        reply = await http.post("/session-live", json={"avatar_id": "demo"})
        assert reply.status_code == 429 and "limit of 2 open sessions" in reply.json()["detail"]
        reply = await http.post("/session-live", json={"avatar_id": "demo"})
        assert reply.status_code == 429 and "new sessions from this address" in reply.json()["detail"]


async def test_offer_must_be_sdp_with_audio(tmp_path):
    async with server(tmp_path) as http:
        session, auth = await open_session(http)
        reply = await http.post(session["url"], content="{}", headers={**auth, "Content-Type": "application/json"})
        assert reply.status_code == 415
        reply = await http.post(session["url"], content="v=0\r\n", headers={**auth, "Content-Type": "application/sdp"})
        assert reply.status_code == 400 and "audio" in reply.json()["detail"]


@pytest.mark.parametrize("path", [
    "/avatars/demo/..%2F..%2Fsecret.txt", "/avatars/..%2Fsecret.txt/avatar.json", "/avatars/demo/secret.txt",
    "/avatars/%2E%2E/secret.txt", "/avatars/demo/%2e%2e%2f%2e%2e%2fsecret.txt", "/avatars/nobody/avatar.json",
])
async def test_nothing_outside_the_avatars_folder_can_be_read(tmp_path, path):
    async with server(tmp_path) as http:
        reply = await http.get(path)
        assert reply.status_code in (400, 404) and "outside the avatars folder" not in reply.text


async def test_avatars_are_public_to_read_and_need_the_key_to_write(tmp_path):
    async with server(tmp_path) as http:
        assert (await http.get("/avatars")).json() == ["demo"]
        manifest = await http.get("/avatars/demo/avatar.json")
        assert manifest.status_code == 200 and manifest.json() == {"format_version": 1}
        photo = {"photo": ("me.jpg", b"\xff\xd8 not really a jpeg", "image/jpeg")}
        assert (await http.post("/avatars", files=photo)).status_code == 401
        assert (await http.post("/avatars", files=photo, headers={"X-API-Key": "wrong"})).status_code == 401
        assert (await http.delete("/avatars/demo")).status_code == 401
        assert (await http.delete("/avatars/%2E%2E", headers={"X-API-Key": API_KEY})).status_code in (400, 404)
        reply = await http.post("/avatars", files=photo, params={"avatar_id": "../evil"}, headers={"X-API-Key": API_KEY})
        assert reply.status_code == 400
        reply = await http.post("/avatars", files=photo, params={"avatar_id": "demo"}, headers={"X-API-Key": API_KEY})
        assert reply.status_code == 409
        assert (await http.delete("/avatars/demo", headers={"X-API-Key": API_KEY})).status_code == 204
        assert (await http.get("/avatars")).json() == []
        assert (tmp_path / "secret.txt").exists()


async def test_writes_are_disabled_without_an_api_key(tmp_path):
    async with server(tmp_path, api_key=None) as http:
        reply = await http.delete("/avatars/demo", headers={"X-API-Key": "anything"})
        assert reply.status_code == 403 and "PHOTOAVATAR_API_KEY" in reply.json()["detail"]


async def poll_job(http, job_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = (await http.get(f"/avatars/jobs/{job_id}", headers={"X-API-Key": API_KEY})).json()
        if job["state"] in ("done", "failed"):
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job} after {timeout_s} s")


async def test_a_bad_photo_fails_its_job_with_a_reason(tmp_path):
    async with server(tmp_path) as http:
        photo = {"photo": ("me.jpg", b"\xff\xd8 not really a jpeg", "image/jpeg")}
        reply = await http.post("/avatars", files=photo, params={"avatar_id": "me"}, headers={"X-API-Key": API_KEY})
        assert reply.status_code == 202
        job = await poll_job(http, reply.json()["job_id"], 30)
        assert job["state"] == "failed" and job["error"] and job["avatar_id"] == "me"
        assert (await http.get("/avatars")).json() == ["demo"]


@pytest.mark.slow
async def test_post_avatars_builds_a_bundle_in_the_background(tmp_path, faces_dir):
    async with server(tmp_path) as http:
        photo = {"photo": ("grace.jpg", (faces_dir / "grace_hopper.jpg").read_bytes(), "image/jpeg")}
        reply = await http.post("/avatars", files=photo, params={"avatar_id": "grace"}, headers={"X-API-Key": API_KEY})
        assert reply.status_code == 202
        job = await poll_job(http, reply.json()["job_id"], 240)
        assert job == {**job, "state": "done", "progress": 1.0, "avatar_id": "grace"}, job
        assert "grace" in (await http.get("/avatars")).json()
        assert (await http.get("/avatars/grace/atlas.png")).headers["content-type"] == "image/png"


async def test_a_running_server_keeps_blas_bulk_analysis_and_garbage_collection_off_the_audio_pacing(tmp_path):
    from threadpoolctl import threadpool_info, threadpool_limits

    from photoavatar.server.guards import yield_cpu_to_audio
    from photoavatar.settings import BULK_NICE

    gc.unfreeze()  # what earlier tests in this process froze
    with threadpool_limits(limits=2, user_api="blas"):  # as numpy starts on 2 cores; put back after the test
        async with server(tmp_path) as http:
            for _ in range(500):  # the warm-up runs in the background, then freezes what start-up made
                if gc.get_freeze_count():
                    break
                await asyncio.sleep(0.02)
            assert len(gc.get_objects()) < gc.get_freeze_count() / 4  # a full pass no longer visits them
            assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {1}
            state = http._transport.app.state.photoavatar
            assert state.scheduler.workers >= 1
            # Live synthesis runs at the server's own priority (docs/latency.md, "Priority"); bulk file analysis
            # threads lower theirs below it.
            own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            assert {os.getpriority(os.PRIO_PROCESS, t.native_id) for t in state.scheduler._threads} == {own}
            bulk = []
            analysis = threading.Thread(target=lambda: (yield_cpu_to_audio(), bulk.append(
                os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))))
            analysis.start()
            analysis.join()
            assert bulk == [max(own, BULK_NICE)] and BULK_NICE > 0


async def test_the_server_lets_its_streams_per_model_start_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOAVATAR_TTS_STREAMS_PER_MODEL", "3")
    monkeypatch.setenv("PHOTOAVATAR_TTS_MODELS", "2")
    settings = ServerSettings.from_settings(tmp_path / "avatars")
    assert (settings.tts_models, settings.tts_streams_per_model) == (2, 3)
    async with server(tmp_path, tts_models=2, tts_streams_per_model=3) as http:
        assert http._transport.app.state.photoavatar.scheduler.max_streams == 6
    monkeypatch.setenv("PHOTOAVATAR_TTS_STREAMS_PER_MODEL", "0")
    with pytest.raises(ValueError, match="PHOTOAVATAR_TTS_STREAMS_PER_MODEL must be from 1 to 100, got 0"):
        ServerSettings.from_settings(tmp_path / "avatars")


def test_freezing_the_start_up_objects_runs_no_full_collection():
    """The freeze comes after the background warm-up, when sessions may speak: a full pass there would hold the
    GIL for tens of milliseconds, and the event loop would miss audio frames."""
    from photoavatar.server.guards import freeze_startup_objects

    passes = []

    def record(phase: str, info: dict) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.unfreeze()
    gc.callbacks.append(record)
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0 and len(gc.get_objects()) < gc.get_freeze_count() / 4
    finally:
        gc.callbacks.remove(record)
        gc.unfreeze()  # the rest of the tests' process collects as before
    assert 2 not in passes


async def test_openapi_docs_are_served(tmp_path):
    async with server(tmp_path) as http:
        assert (await http.get("/docs")).status_code == 200
        paths = (await http.get("/openapi.json")).json()["paths"]
        assert {"/session-live", "/speak", "/stop", "/voices", "/avatars"} <= set(paths)


def test_the_server_never_asks_which_transport_it_holds():
    """server/ talks to live.transport's Protocol only: no concrete transport module or class, no kind tests."""
    import ast
    from pathlib import Path

    server_dir = Path(__file__).resolve().parents[2] / "photoavatar" / "server"
    assert sorted(server_dir.glob("*.py"))
    for path in server_dir.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not modules & {"photoavatar.live.webrtc", "photoavatar.live.livekit"}, path.name
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        assert not names & {"WebRtcTransport", "LiveKitTransport"}, path.name
