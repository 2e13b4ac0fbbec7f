"""check_offer: every bad offer of issue 12 §2 is refused with what is wrong; real offers pass."""

from __future__ import annotations

import re

import pytest

from photoavatar.live.sdp_check import DEFAULT_MAX_MESSAGE_BYTES, check_offer
from photoavatar.live.transport import SignallingError
from photoavatar.testing.peer import ClientPeer


@pytest.fixture
async def real_offer() -> str:
    peer, offer = await ClientPeer.offer()
    await peer.close()
    return offer


def bad_variants(offer: str) -> dict[str, tuple[str | bytes, str]]:
    audio = next(line for line in offer.splitlines() if line.startswith("m=audio "))
    parts = audio.split(" ")
    without_fingerprints = "\r\n".join(x for x in offer.splitlines() if not x.startswith("a=fingerprint:")) + "\r\n"
    return {
        "port not a number": (offer.replace(audio, " ".join([parts[0], "notaport", *parts[2:]])), "m=<media> <port>"),
        "no formats": (offer.replace(audio, " ".join(parts[:3])), "m=<media> <port>"),
        "only m=audio": ("m=audio", "start with the line v=0"),
        "only v=0 and m=audio": ("v=0\r\nm=audio\r\n", "m=<media> <port>"),
        "not UTF-8": (offer.encode().replace(b"v=0", b"v=0\r\ns=\xff\xfe", 1), "not UTF-8"),
        "setup banana": (offer.replace("a=setup:actpass", "a=setup:banana"), "a=setup must be one of"),
        "no fingerprint": (without_fingerprints, "no DTLS fingerprint"),
        "unknown fingerprint hash": (re.sub(r"a=fingerprint:sha-\d+", "a=fingerprint:md5", offer),
                                     "this server verifies sha-256"),
        "no ice-pwd": ("\r\n".join(x for x in offer.splitlines() if not x.startswith("a=ice-pwd")) + "\r\n",
                       "no a=ice-pwd"),
        "no audio": (offer.replace("m=audio ", "m=video "), "no audio section"),
    }


async def test_a_real_offer_passes_and_says_its_message_limit(real_offer):
    text, facts = check_offer(real_offer)
    assert text == real_offer and facts.max_message_bytes == 262144  # what aiortc advertises
    _, facts = check_offer(real_offer.replace("a=max-message-size:262144", "a=max-message-size:1024"))
    assert facts.max_message_bytes == 1024
    _, facts = check_offer(real_offer.replace("a=max-message-size:262144\r\n", ""))
    assert facts.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES


async def test_every_bad_offer_is_refused_with_what_is_wrong(real_offer):
    for name, (offer, words) in bad_variants(real_offer).items():
        with pytest.raises(SignallingError, match="bad SDP offer") as refused:
            check_offer(offer)
        assert words in str(refused.value), (name, str(refused.value))
        assert refused.value.http_status == 400
