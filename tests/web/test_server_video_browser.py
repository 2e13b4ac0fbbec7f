"""The page's server-video mode in headless Chromium against the real server: the <video> plays the avatar the
server composes, the mouth moves while it speaks, and /stop cuts picture and sound together (loose bounds)."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.slow


def connect_server_video(page, base: str) -> None:
    page.goto(base)
    page.wait_for_function("document.querySelectorAll('#avatar-select option').length > 0", timeout=20000)
    page.select_option("#avatar-select", "grace")
    page.check("#server-video")
    page.click("#connect")
    page.wait_for_function("['ready', 'error'].includes(window.photoavatar.state)", timeout=30000)
    assert page.evaluate("window.photoavatar.state") == "ready", page.evaluate("window.photoavatar.detail")


def sample(page, seconds: float) -> list[dict]:
    values, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        values.append(page.evaluate("""() => {
          const video = document.getElementById('server-view');
          return { mouth: window.photoavatar.mouthDifference(), state: window.photoavatar.state,
                   time: video.currentTime, width: video.videoWidth };
        }"""))
        page.wait_for_timeout(40)
    return values


def test_server_video_plays_speaks_and_stops_with_the_voice(live_server, page):
    connect_server_video(page, live_server)
    assert page.evaluate("document.getElementById('avatar').hidden") is True, "no canvas in server-video mode"
    kinds = page.evaluate("document.getElementById('server-view').srcObject.getTracks().map((t) => t.kind)")
    assert sorted(kinds) == ["audio", "video"], "voice and video play in one element"
    idle = sample(page, 1.5)
    assert idle[-1]["width"] == 256 and idle[-1]["time"] > idle[0]["time"], "the <video> plays the avatar"
    resting = max(v["mouth"] or 0 for v in idle)
    page.fill("#text", "Papa bought a big blue boat and painted it bright pink for the party by the bay.")
    page.click("#speak")
    speaking = sample(page, 4.0)
    moving = [v["mouth"] for v in speaking if v["state"] == "speaking" and v["mouth"] is not None]
    assert moving and max(moving) > resting + 5, f"the mouth barely moved: rest {resting:.1f}, speaking {max(moving or [0]):.1f}"
    page.click("#stop")
    page.wait_for_function("window.photoavatar.state === 'ready'", timeout=3000)
    page.wait_for_timeout(700)  # the jitter buffer and the mouth's spring: well under a second
    after = sample(page, 1.0)
    assert max(v["mouth"] for v in after) < resting + 3, "after /stop the mouth is at rest on the video"
    assert after[-1]["time"] > after[0]["time"], "the idle loop keeps playing after a stop"
    assert page.errors == []
