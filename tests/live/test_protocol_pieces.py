"""protocol.encode_pieces: long messages become several valid messages within a byte limit (issue 12 §1)."""

from __future__ import annotations

import json

import pytest

from photoavatar.live import protocol
from photoavatar.live.livekit import MAX_DATA_PACKET_BYTES
from photoavatar.speech.types import ProsodyFrame, VisemeEvent
from photoavatar.visemes import VISEMES


def long_visemes(count: int) -> protocol.Visemes:
    names = list(VISEMES)
    return protocol.visemes("u_1", [VisemeEvent(names[i % len(names)], i * 0.08, i * 0.08 + 0.1, 0.9)
                                    for i in range(count)])


@pytest.mark.parametrize("limit", [1024, MAX_DATA_PACKET_BYTES, 65536])
def test_a_long_timeline_is_split_in_order_under_the_limit(limit):
    message = long_visemes(5000)  # about the timeline of 4,800 characters without a full stop
    assert len(protocol.encode(message)) > 262144  # what ended utterances on 8b19a9e
    pieces = protocol.encode_pieces(message, limit)
    assert len(pieces) > 1 and all(len(piece.encode()) <= limit for piece in pieces)
    decoded = [json.loads(piece) for piece in pieces]
    for piece in decoded:
        protocol.validate(piece)
        assert piece["type"] == "viseme" and piece["utterance_id"] == "u_1"
    events = [event for piece in decoded for event in piece["events"]]
    assert events == protocol.Visemes.to_json(message)["events"]


def test_prosody_is_split_too_and_small_messages_stay_whole():
    frames = protocol.prosody("u_2", [ProsodyFrame(i * 0.01, -20.0, 120.0, 0.1) for i in range(3000)])
    pieces = protocol.encode_pieces(frames, 4096)
    assert len(pieces) > 10 and sum(len(json.loads(p)["frames"]) for p in pieces) == 3000
    small = protocol.UtteranceEnd("u_2", "done")
    assert protocol.encode_pieces(small, 4096) == [protocol.encode(small)]


def test_a_long_text_or_error_is_shortened_with_an_ellipsis():
    start = protocol.UtteranceStart("u_3", 1234, "naïve café " * 2000, "rtp")
    (piece,) = protocol.encode_pieces(start, MAX_DATA_PACKET_BYTES)
    decoded = json.loads(piece)
    assert len(piece.encode()) <= MAX_DATA_PACKET_BYTES and decoded["text"].endswith("\u2026")
    assert start.text.startswith(decoded["text"][:-1]) and len(piece.encode()) > MAX_DATA_PACKET_BYTES - 12
    end = protocol.UtteranceEnd("u_3", "error", "x" * 100_000)
    assert len(protocol.encode_pieces(end, 1000)[0]) <= 1000
