"""protocol.js picks the right Bearer token for the session's transport, and parses what the server sends."""

import json
import subprocess
from pathlib import Path

import pytest

from photoavatar.live.protocol import UtteranceGap, encode

ROOT = Path(__file__).resolve().parents[2]
CALLER = Path(__file__).with_name("call_js.mjs")
PROTOCOL = ROOT / "photoavatar" / "web" / "protocol.js"

pytestmark = pytest.mark.usefixtures("node")  # fails with the reason when node is missing


def parsed(*texts: str) -> list[dict]:
    request = {"module": str(PROTOCOL), "calls": [{"fn": "parseMessage", "args": [text]} for text in texts]}
    done = subprocess.run(["node", str(CALLER)], input=json.dumps(request), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def session_token(session: dict) -> str:
    request = {"module": str(PROTOCOL), "calls": [{"fn": "sessionToken", "args": [session]}]}
    done = subprocess.run(["node", str(CALLER)], input=json.dumps(request), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[0]["result"]


def test_livekit_sessions_use_the_session_token_not_the_room_token():
    assert session_token({"transport": "livekit", "token": "room-jwt", "session_token": "session-jwt"}) == "session-jwt"


def test_webrtc_sessions_without_a_separate_session_token_use_token():
    assert session_token({"transport": "webrtc", "token": "session-jwt"}) == "session-jwt"


def test_an_utterance_gap_the_server_encodes_is_parsed_and_a_bad_one_refused():
    good, negative, missing = parsed(encode(UtteranceGap("u1", 1.23456, 0.02)),
                                     json.dumps({"type": "utterance_gap", "utterance_id": "u1", "at_s": -1,
                                                 "gap_s": 0.02}),
                                     json.dumps({"type": "utterance_gap", "utterance_id": "u1", "at_s": 1}))
    assert good == {"result": {"type": "utterance_gap", "utterance_id": "u1", "at_s": 1.2346, "gap_s": 0.02}}
    assert negative["error"] == missing["error"] == "ProtocolError: bad utterance_gap message: at_s and gap_s must be seconds >= 0"
