"""Sessions that never connect, and one address, cannot take every slot (issue 12 §8); queues are bounded."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from test_app import server

from photoavatar.server.limits import Limits
from photoavatar.testing.peer import ClientPeer


@contextlib.asynccontextmanager
async def from_address(http, address: str):
    app = http._transport.app
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        yield other


async def new_session(http) -> httpx.Response:
    return await http.post("/session-live", json={"avatar_id": "demo"})


async def test_one_address_holds_at_most_its_share(tmp_path):
    async with server(tmp_path, limits=Limits(sessions_per_address=2)) as http:
        assert [(await new_session(http)).status_code for _ in range(2)] == [200, 200]
        refused = await new_session(http)
        assert refused.status_code == 429 and "this address already holds 2 open sessions" in refused.text
        async with from_address(http, "198.51.100.7") as other:
            assert (await new_session(other)).status_code == 200


async def test_unconnected_sessions_are_capped_and_freed_soon(tmp_path):
    limits = Limits(max_unconnected_sessions=2, unconnected_timeout_s=2, sessions_per_address=10)
    async with server(tmp_path, limits=limits) as http:
        first = (await new_session(http)).json()
        assert (await new_session(http)).status_code == 200
        refused = await new_session(http)
        assert refused.status_code == 429 and "waiting for their client to connect" in refused.text
        auth = {"Authorization": f"Bearer {first['token']}"}
        peer, offer = await ClientPeer.offer()  # one connects: it no longer counts as waiting
        try:
            answer = await http.post(first["url"], content=offer, headers={**auth, "Content-Type": "application/sdp"})
            await peer.accept(answer.text)
            await peer.wait_for(lambda: peer.pc.connectionState == "connected", 20)
            await asyncio.sleep(0.2)
            assert (await new_session(http)).status_code == 200
            await asyncio.sleep(4)  # past the unconnected timeout (+ the reaper's 1 s period)
            state = http._transport.app.state.photoavatar
            assert [s.session_id for s in state.sessions.all()] == [first["session_id"]]
        finally:
            await peer.close()


async def test_queued_utterances_per_session_are_bounded(tmp_path):
    async with server(tmp_path, limits=Limits(max_queued_utterances=3), requests_per_minute=100) as http:
        session = (await new_session(http)).json()
        auth = {"Authorization": f"Bearer {session['token']}"}
        body = {"session_id": session["session_id"], "text": "One more thing.", "barge_in": False}
        statuses = [(await http.post("/speak", json=body, headers=auth)).status_code for _ in range(8)]
        assert statuses.count(202) <= 5 and statuses[-1] == 429, statuses  # 3 waiting + at most 1 playing
        reply = await http.post("/speak", json={**body, "barge_in": True}, headers=auth)
        assert reply.status_code == 202  # a barge-in replaces the queue, so it is always taken
