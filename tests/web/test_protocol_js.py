"""protocol.js picks the right Bearer token for the session's transport."""

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CALLER = Path(__file__).with_name("call_js.mjs")
PROTOCOL = ROOT / "photoavatar" / "web" / "protocol.js"

pytestmark = pytest.mark.usefixtures("node")  # fails with the reason when node is missing


def session_token(session: dict) -> str:
    request = {"module": str(PROTOCOL), "calls": [{"fn": "sessionToken", "args": [session]}]}
    done = subprocess.run(["node", str(CALLER)], input=json.dumps(request), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[0]["result"]


def test_livekit_sessions_use_the_session_token_not_the_room_token():
    assert session_token({"transport": "livekit", "token": "room-jwt", "session_token": "session-jwt"}) == "session-jwt"


def test_webrtc_sessions_without_a_separate_session_token_use_token():
    assert session_token({"transport": "webrtc", "token": "session-jwt"}) == "session-jwt"
