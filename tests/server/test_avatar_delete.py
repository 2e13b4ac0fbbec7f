"""Deleting an avatar is atomic for readers (issue 12 §5): fetches finish or 404, never 500 or cut short."""

from __future__ import annotations

import asyncio
import json
import os

from test_app import API_KEY, open_session, server

from photoavatar.server.avatars import AvatarStore

KEY = {"X-API-Key": API_KEY}


def add_bundle(avatars, name: str, atlas_bytes: bytes) -> None:
    folder = avatars / name
    folder.mkdir()
    (folder / "avatar.json").write_text(json.dumps({"format_version": 1}))
    (folder / "atlas.png").write_bytes(atlas_bytes)


def test_an_open_file_stays_readable_after_its_avatar_is_deleted(tmp_path):
    store = AvatarStore(tmp_path)
    add_bundle(tmp_path, "grace", b"\x89PNG" + os.urandom(300_000))
    expected = (tmp_path / "grace" / "atlas.png").read_bytes()
    handle, media_type = store.open("grace", "atlas.png")
    store.delete("grace")
    assert not (tmp_path / "grace").exists() and media_type == "image/png"
    assert handle.read() == expected
    handle.close()
    assert list(tmp_path.iterdir()) == []  # renamed away, then removed: nothing left


async def test_fetches_racing_deletes_finish_whole_or_404(tmp_path):
    async with server(tmp_path) as http:
        avatars = tmp_path / "avatars"
        atlas = b"\x89PNG" + os.urandom(2_000_000)
        statuses = []
        for round_ in range(6):
            add_bundle(avatars, "racer", atlas)

            async def fetch():
                reply = await http.get("/avatars/racer/atlas.png")
                statuses.append(reply.status_code)
                assert reply.status_code in (200, 404), reply.text
                if reply.status_code == 200:
                    assert reply.content == atlas  # never cut short
                    assert reply.headers["content-length"] == str(len(atlas))

            async def delete_soon(round_=round_):
                await asyncio.sleep(0.002 * round_)
                assert (await http.delete("/avatars/racer", headers=KEY)).status_code == 204

            await asyncio.gather(*(fetch() for _ in range(12)), delete_soon(), *(fetch() for _ in range(12)))
            assert (await http.get("/avatars/racer/atlas.png")).status_code == 404
        assert 200 in statuses
        assert sorted(p.name for p in avatars.iterdir()) == ["demo"]


async def test_a_session_on_a_deleted_avatar_keeps_working(tmp_path):
    async with server(tmp_path) as http:
        session, auth = await open_session(http)
        assert (await http.delete("/avatars/demo", headers=KEY)).status_code == 204
        body = {"session_id": session["session_id"], "text": "Still here."}
        assert (await http.post("/speak", json=body, headers=auth)).status_code == 202
        assert (await http.post("/stop", json={"session_id": session["session_id"]}, headers=auth)).status_code == 200


async def test_ranges_still_work(tmp_path):
    async with server(tmp_path) as http:
        add_bundle(tmp_path / "avatars", "ranged", b"0123456789" * 1000)
        reply = await http.get("/avatars/ranged/atlas.png", headers={"Range": "bytes=10-19"})
        assert reply.status_code == 206 and reply.content == b"0123456789"
        assert reply.headers["content-range"] == "bytes 10-19/10000"
