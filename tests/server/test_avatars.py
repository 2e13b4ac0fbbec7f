"""The bundle's one file table as the server uses it: what it serves, with which media type, and the assets
a session announces; and GET /limits, from which the page learns the server's limits."""

from __future__ import annotations

import contextlib
import shutil

import httpx

from photoavatar.avatar.bundle import BUNDLE_FILES, PREVIEW
from photoavatar.server.app import create_app
from photoavatar.server.config import ServerSettings


@contextlib.asynccontextmanager
async def serving(settings: ServerSettings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            yield http


async def test_every_file_of_the_table_is_served_with_its_media_type(built_bundle, tmp_path):
    bundle = built_bundle("grace_hopper.jpg")
    shutil.copytree(bundle.root, tmp_path / "avatars" / "grace")
    (tmp_path / "avatars" / "grace" / PREVIEW.name).write_bytes(b"\x89PNG preview")
    async with serving(ServerSettings(avatars_dir=tmp_path / "avatars")) as http:
        for file in BUNDLE_FILES:
            reply = await http.get(f"/avatars/grace/{file.name}")
            assert reply.status_code == 200, (file.name, reply.text)
            assert reply.headers["content-type"].split(";")[0] == file.media_type, file.name
            assert reply.content == (tmp_path / "avatars" / "grace" / file.name).read_bytes()
        refused = await http.get("/avatars/grace/idle.webm")
        assert refused.status_code == 404 and "avatar.json" in refused.json()["detail"]

        session = (await http.post("/session-live", json={"avatar_id": "grace"})).json()
        announced = {file.asset_key: f"/avatars/grace/{file.name}" for file in BUNDLE_FILES if file.asset_key}
        assert session["assets"] == announced
        assert set(announced) == {"manifest", "idle", "atlas", "atlas_json", "mask", "roi"}  # docs/protocol.md


async def test_limits_tell_the_page_what_the_server_enforces(tmp_path):
    settings = ServerSettings(avatars_dir=tmp_path / "avatars", max_text_chars=123, requests_per_minute=7,
                              sessions_per_minute=5, max_sessions=3, session_ttl_s=600)
    async with serving(settings) as http:
        limits = (await http.get("/limits")).json()
    assert limits == {"max_text_chars": 123, "requests_per_minute": 7, "sessions_per_minute": 5, "max_sessions": 3,
                      "session_ttl_s": 600, "max_photo_bytes": 20 * 1024 * 1024}
