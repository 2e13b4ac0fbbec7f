"""Strict input at the edge (issues 11 §2, §3, §5 and 12 §3, §6): each test failed on 8b19a9e."""

from __future__ import annotations

import json

import pytest
from test_app import API_KEY, open_session, server

from photoavatar.server.app import create_app
from photoavatar.server.config import ServerSettings
from photoavatar.server.ids import AVATAR_ID, JOB_ID, SESSION_ID, VOICE_ID, InvalidId
from photoavatar.server.limits import Limits


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("route", ["/session-live", "/speak", "/stop"])
async def test_nan_and_infinity_are_refused_as_not_json(tmp_path, route, literal):
    async with server(tmp_path) as http:
        session, auth = await open_session(http)
        for body in (f'{{"avatar_id": {literal}}}', f'{{"session_id": "{session["session_id"]}", "text": {literal}}}'):
            for headers in ({"Content-Type": "application/json"}, {**auth, "Content-Type": "application/json"}):
                reply = await http.post(route, content=body, headers=headers)
                assert reply.status_code == 400, reply.text
                assert literal in reply.json()["detail"] and "not valid JSON" in reply.json()["detail"]


async def test_malformed_json_still_gets_a_validation_error(tmp_path):
    async with server(tmp_path) as http:
        reply = await http.post("/session-live", content=b'{"avatar_id": ', headers={"Content-Type": "application/json"})
        assert reply.status_code == 422 and reply.json()["detail"][0]["type"] == "json_invalid"


LOOK_ALIKES = ["evil\n", "evil\t", "\nevil", "еvil", "evil\u200b", "ev\u0131l", "evil\r\n", "évil", "１evil"]


@pytest.mark.parametrize("bad", LOOK_ALIKES)
def test_every_id_rule_is_a_full_ascii_match(bad):
    for rule, good in ((AVATAR_ID, "evil"), (SESSION_ID, "s_" + "a" * 32), (JOB_ID, "j_" + "b" * 16),
                       (VOICE_ID, "en_US-joe-medium")):
        assert rule.check(good) == good
        variant = bad.replace("evil", good)
        with pytest.raises(InvalidId, match="not valid"):
            rule.check(variant)


@pytest.mark.parametrize("bad", ["evil\n", "evil\t", "еvil"])
async def test_an_avatar_id_with_a_newline_tab_or_look_alike_is_refused(tmp_path, bad):
    async with server(tmp_path) as http:
        photo = {"photo": ("me.jpg", b"\xff\xd8 not a jpeg", "image/jpeg")}
        reply = await http.post("/avatars", files=photo, params={"avatar_id": bad}, headers={"X-API-Key": API_KEY})
        assert reply.status_code == 400 and "not valid" in reply.json()["detail"]
        reply = await http.post("/session-live", json={"avatar_id": "demo\n"})
        assert reply.status_code == 400
        assert not [p for p in (tmp_path / "avatars").iterdir() if p.name != "demo"]


async def test_session_and_job_ids_are_checked_where_they_enter(tmp_path):
    async with server(tmp_path) as http:
        session, auth = await open_session(http)
        reply = await http.post("/speak", json={"session_id": session["session_id"] + "\n", "text": "hi"}, headers=auth)
        assert reply.status_code == 400 and "session id" in reply.json()["detail"]
        reply = await http.delete(f"/sessions/{session['session_id']}%09", headers=auth)
        assert reply.status_code == 400
        reply = await http.get("/avatars/jobs/j_0123456789abcdef%0A", headers={"X-API-Key": API_KEY})
        assert reply.status_code == 400 and "job id" in reply.json()["detail"]
        reply = await http.post("/session-live", json={"avatar_id": "demo", "voice_id": "en_US-joe-medium\n"})
        assert reply.status_code == 400 and "voice id" in reply.json()["detail"]


async def test_stop_is_never_rate_limited(tmp_path):
    async with server(tmp_path, requests_per_minute=5) as http:
        session, auth = await open_session(http)
        speak = {"session_id": session["session_id"], "text": "hello there", "barge_in": False}
        statuses = [(await http.post("/speak", json=speak, headers=auth)).status_code for _ in range(8)]
        assert statuses.count(429) == 3
        for _ in range(20):
            assert (await http.post("/stop", json={"session_id": session["session_id"]}, headers=auth)).status_code == 200


async def test_a_validation_error_repeats_only_an_excerpt_of_the_input(tmp_path):
    async with server(tmp_path, limits=Limits(max_json_bytes=20 * 2**20)) as http:
        huge = "x" * 10_000_000
        reply = await http.post("/session-live", json={"avatar_id": huge})
        assert reply.status_code == 422
        assert len(reply.content) < 1000 and "10000000 characters" in reply.text


# -- before the body: driven at the ASGI level, so the test sees whether the body was ever read ---------

class Body:
    """An ASGI receive that counts what the app took of a (declared) huge body."""

    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks
        self.taken = 0

    async def __call__(self):
        if self.taken < len(self.chunks):
            self.taken += 1
            return {"type": "http.request", "body": self.chunks[self.taken - 1],
                    "more_body": self.taken < len(self.chunks)}
        return {"type": "http.disconnect"}


async def asgi_post(app, path: str, headers: dict[str, str], body: Body) -> tuple[int, dict]:
    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "", "scheme": "http",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    await app(scope, body, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(payload)


def make_app(tmp_path, **limits):
    (tmp_path / "avatars").mkdir(exist_ok=True)
    return create_app(ServerSettings(avatars_dir=tmp_path / "avatars", api_key=API_KEY, limits=Limits(**limits)))


async def test_an_upload_without_the_key_is_refused_before_its_body_is_read(tmp_path):
    app = make_app(tmp_path)
    body = Body([b"x" * 65536] * 4000)  # 240 MB, declared
    headers = {"content-type": "multipart/form-data; boundary=b", "content-length": str(65536 * 4000)}
    status, reply = await asgi_post(app, "/avatars", headers, body)
    assert status == 401 and "X-API-Key" in reply["detail"]
    assert body.taken == 0


async def test_a_declared_content_length_over_the_cap_is_refused_unread(tmp_path):
    app = make_app(tmp_path, max_upload_bytes=1_000_000)
    body = Body([b"x" * 65536] * 1000)
    headers = {"content-type": "multipart/form-data; boundary=b", "content-length": str(60_000_000),
               "x-api-key": API_KEY}
    status, reply = await asgi_post(app, "/avatars", headers, body)
    assert status == 413 and "0.953674 MiB" in reply["detail"] and body.taken == 0
    status, reply = await asgi_post(app, "/speak", {"content-type": "application/json", "content-length": "9999999"},
                                    Body([b"{}"]))
    assert status == 413 and "at most 65536 bytes" in reply["detail"]


async def test_a_chunked_body_is_cut_off_at_the_cap(tmp_path):
    app = make_app(tmp_path, max_json_bytes=1000)
    body = Body([b'{"avatar_id": "' + b"x" * 400] * 50)  # no Content-Length: sent chunked
    status, reply = await asgi_post(app, "/session-live", {"content-type": "application/json"}, body)
    assert status == 413 and body.taken <= 4


async def test_a_body_that_stops_arriving_ends_the_request(tmp_path):
    import asyncio

    app = make_app(tmp_path, body_timeout_s=1)

    class Stalling(Body):
        async def __call__(self):
            if self.taken == 0:
                self.taken = 1
                return {"type": "http.request", "body": b'{"avatar_id": ', "more_body": True}
            await asyncio.sleep(30)

    status, reply = await asyncio.wait_for(
        asgi_post(app, "/session-live", {"content-type": "application/json"}, Stalling([])), 10)
    assert status == 408 and "stopped arriving" in reply["detail"]


async def test_each_upload_route_has_its_own_cap(tmp_path):
    from photoavatar.speech.audio_input import MAX_FILE_BYTES

    app = make_app(tmp_path)
    headers = {"content-type": "multipart/form-data; boundary=b", "content-length": str(MAX_FILE_BYTES * 2)}
    status, reply = await asgi_post(app, "/speak-audio", headers, Body([b""]))
    assert status == 413 and "an audio upload (at most 64 MiB)" in reply["detail"]
    headers["content-length"] = str(5 * 2**20)  # an audio file of 5 MB is not held to the JSON cap
    status, reply = await asgi_post(app, "/speak-audio", headers, Body([b"x" * 2**20] * 5))
    assert status != 413, reply
