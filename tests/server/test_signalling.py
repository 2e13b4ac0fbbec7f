"""Signalling and data-channel edges with a real aiortc client (issue 12 §1, §2): each failed on 8b19a9e."""

from __future__ import annotations

import json
import re

from test_app import open_session, server

from photoavatar.testing.peer import ClientPeer

SDP = {"Content-Type": "application/sdp"}


async def post_offer(http, session, auth, offer):
    return await http.post(session["url"], content=offer, headers={**auth, **SDP})


async def test_bad_offers_get_400_and_the_session_still_takes_a_good_one(tmp_path):
    async with server(tmp_path) as http:
        session, auth = await open_session(http)
        peer, offer = await ClientPeer.offer()
        audio = next(line for line in offer.splitlines() if line.startswith("m=audio "))
        head, _, tail = audio.partition(" ")
        bad = [offer.replace(audio, f"m=audio notaport {tail.split(' ', 1)[1]}"),
               offer.replace(audio, " ".join(audio.split(" ")[:3])), "m=audio",
               offer.encode().replace(b"s=-", b"s=\xff\xfe"), offer.replace("a=setup:actpass", "a=setup:banana"),
               "\r\n".join(x for x in offer.splitlines() if not x.startswith("a=fingerprint")) + "\r\n",
               re.sub(r"a=fingerprint:sha-\d+", "a=fingerprint:md5", offer)]
        try:
            for body in bad:
                reply = await post_offer(http, session, auth, body)
                assert reply.status_code == 400, (body[:40], reply.text)
                assert "SDP offer" in reply.json()["detail"]
            reply = await post_offer(http, session, auth, offer)
            assert reply.status_code == 201, reply.text
            await peer.accept(reply.text)
            await peer.wait_for(lambda: peer.pc.connectionState == "connected", 20)
            assert (await post_offer(http, session, auth, offer)).status_code == 409
        finally:
            await peer.close()


async def test_messages_respect_the_peers_max_message_size(tmp_path):
    async with server(tmp_path) as http:
        session, auth = await open_session(http)
        peer, offer = await ClientPeer.offer()
        limit = 1024
        offer = re.sub(r"a=max-message-size:\d+", f"a=max-message-size:{limit}", offer)
        try:
            reply = await post_offer(http, session, auth, offer)
            assert reply.status_code == 201
            await peer.accept(reply.text)
            await peer.wait_for(lambda: peer.pc.connectionState == "connected", 20)
            text = ("and the quick brown fox jumps over the lazy dog " * 2).strip()  # one run-on sentence
            body = {"session_id": session["session_id"], "text": text}
            assert (await http.post("/speak", json=body, headers=auth)).status_code == 202
            await peer.wait_for(lambda: peer.of_type("utterance_end"), 60)
            assert peer.of_type("utterance_end")[0]["reason"] == "done", peer.of_type("utterance_end")
            visemes = peer.of_type("viseme")
            assert len(visemes) >= 3  # the timeline came in several pieces
            sizes = [len(json.dumps(m, separators=(",", ":")).encode()) for _, _, m in peer.messages]
            assert max(sizes) <= limit, sorted(sizes)[-3:]
        finally:
            await peer.close()
