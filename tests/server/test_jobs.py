"""Avatar jobs: bounded, in their own process, with errors that never name a server path (11 §4, 12 §4)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from test_app import API_KEY, poll_job, server

from photoavatar.server.avatar_worker import public_message
from photoavatar.server.cleanup import upload_folder_prefix
from photoavatar.server.limits import Limits

KEY = {"X-API-Key": API_KEY}


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 128).save(buffer, "PNG")
    return buffer.getvalue()


def leftover_uploads() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(upload_folder_prefix() + "*"))


async def test_a_failed_job_says_what_is_wrong_without_server_paths(tmp_path):
    async with server(tmp_path) as http:
        photo = {"photo": ("me.jpg", b"\xff\xd8 not really a jpeg", "image/jpeg")}
        reply = await http.post("/avatars", files=photo, params={"avatar_id": "me"}, headers=KEY)
        job = await poll_job(http, reply.json()["job_id"], 60)
        assert job["state"] == "failed" and job["error"].startswith("the uploaded photo is not an image")
        assert "/" not in job["error"].replace("JPEG, PNG or WebP", ""), job["error"]
        assert "photoavatar-upload" not in job["error"] and str(tmp_path) not in job["error"]
    assert leftover_uploads() == []


def test_public_messages_replace_every_server_path():
    photo, out = Path("/tmp/photoavatar-upload-1-abc/photo.jpg"), Path("/srv/avatars/me")
    message = public_message(f"{photo} is damaged; also /etc/passwd and {out}/atlas.png at 20 MiB/s", photo, out)
    assert message == ("the uploaded photo is damaged; also <server path> and the avatar folder/atlas.png at 20 MiB/s")


async def test_uploads_have_a_pixel_cap_far_below_the_clis(tmp_path):
    async with server(tmp_path, limits=Limits(max_upload_pixels=10_000_000)) as http:
        photo = {"photo": ("big.png", png(4000, 3000, "I;16"), "image/png")}  # 12 MP, 16-bit, a few kB
        assert len(photo["photo"][1]) < 200_000
        reply = await http.post("/avatars", files=photo, params={"avatar_id": "big"}, headers=KEY)
        assert reply.status_code == 202
        job = await poll_job(http, reply.json()["job_id"], 60)
        assert job["state"] == "failed" and "4000x3000 pixels (12 MP)" in job["error"]
        assert "at most 10 MP" in job["error"]


async def test_jobs_in_flight_are_bounded(tmp_path):
    async with server(tmp_path, limits=Limits(max_avatar_jobs=1)) as http:
        photo = {"photo": ("a.png", png(64, 64), "image/png")}
        first = await http.post("/avatars", files=photo, params={"avatar_id": "a"}, headers=KEY)
        second = await http.post("/avatars", files=photo, params={"avatar_id": "b"}, headers=KEY)
        assert first.status_code == 202
        assert second.status_code == 429 and "1 avatar jobs are already queued or running" in second.json()["detail"]
        await poll_job(http, first.json()["job_id"], 60)
        third = await http.post("/avatars", files=photo, params={"avatar_id": "c"}, headers=KEY)
        assert third.status_code == 202
        await poll_job(http, third.json()["job_id"], 60)
    assert leftover_uploads() == []


async def test_a_job_past_its_memory_cap_fails_with_a_clear_message(tmp_path):
    async with server(tmp_path, limits=Limits(avatar_job_memory_mb=64)) as http:
        photo = {"photo": ("a.png", png(64, 64), "image/png")}
        reply = await http.post("/avatars", files=photo, params={"avatar_id": "a"}, headers=KEY)
        job = await poll_job(http, reply.json()["job_id"], 60)
        assert job["state"] == "failed" and "more than the 64 MiB an avatar job may use" in job["error"], job
        state = http._transport.app.state.photoavatar  # the job's process reported its peak memory
        assert 50e6 < state.jobs.get(job["job_id"]).peak_rss_bytes < 1e9


async def test_an_empty_or_oversized_upload_is_refused_and_leaves_nothing(tmp_path):
    async with server(tmp_path, limits=Limits(max_upload_bytes=1000)) as http:
        reply = await http.post("/avatars", files={"photo": ("a.png", b"", "image/png")}, params={"avatar_id": "a"},
                                headers=KEY)
        assert reply.status_code == 400 and "empty" in reply.json()["detail"]
        noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(noise).save(buffer, "PNG")
        reply = await http.post("/avatars", files={"photo": ("a.png", buffer.getvalue(), "image/png")},
                                params={"avatar_id": "a"}, headers=KEY)
        assert reply.status_code == 413
    assert leftover_uploads() == []
