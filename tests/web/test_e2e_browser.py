"""End to end: the real server (aiortc, Piper), the bundled page in headless Chromium, a real WebRTC link.

The avatar is the small synthetic bundle of photoavatar/testing/bundles.py (written with the real bundle writer),
so this test does not wait for avatarize; the `live_server` fixture (tests/web/conftest.py) serves it.
"""

from __future__ import annotations

import time

import httpx
import pytest

from photoavatar.testing.browser import connect

pytestmark = pytest.mark.slow


def sample_mouth(page, seconds):
    values, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        values.append(page.evaluate("[window.photoavatar.mouthDifference(), window.photoavatar.state]"))
        page.wait_for_timeout(40)
    return values


def test_the_avatar_speaks_in_sync_in_the_browser(live_server, page):
    connect(page, live_server)
    idle = [d for d, _ in sample_mouth(page, 1.0)]
    page.fill("#text", "Hello there, I am a talking photo. Nice to meet you!")
    page.click("#speak")
    speaking = sample_mouth(page, 6.0)
    assert any(state == "speaking" for _, state in speaking)
    talking = [d for d, state in speaking if state == "speaking"]
    assert max(talking) > max(idle) + 5, f"the mouth barely moved: idle {max(idle):.1f}, speaking {max(talking):.1f}"
    page.wait_for_function("window.photoavatar.state === 'ready'", timeout=15000)
    assert page.evaluate("window.photoavatar.mouthDifference()") < max(idle) + 2, "the mouth returns to rest"
    stats = page.evaluate("window.photoavatar.stats")
    assert stats["mode"] == "rtp" and stats["syncObservations"] > 50 and stats["badMessages"] == 0
    assert len(stats["speakToFirstAudioMs"]) == 1 and 0 < stats["speakToFirstAudioMs"][0] < 5000
    assert len(stats["avOffsetMs"]) == 1 and abs(stats["avOffsetMs"][0]) < 80, stats["avOffsetMs"]
    print(f"\nspeak->first audio {stats['speakToFirstAudioMs'][0]:.0f} ms, A/V offset {stats['avOffsetMs'][0]:.1f} ms, "
          f"{stats['fps']:.0f} fps, draw {stats['drawMs']:.2f} ms, blend {stats['blendMs']:.2f} ms")
    assert page.errors == []


def test_stop_silences_the_avatar_and_errors_show_the_servers_words(live_server, page):
    connect(page, live_server)
    page.fill("#text", "This is a long sentence that keeps going for quite a while so that we can stop it midway.")
    page.click("#speak")
    page.wait_for_function("window.photoavatar.state === 'speaking'", timeout=15000)
    page.click("#stop")
    page.wait_for_function("window.photoavatar.state === 'ready'", timeout=3000)
    limit = httpx.get(live_server + "limits").json()["max_text_chars"]
    assert page.evaluate("document.getElementById('text').maxLength") == limit, "the page learnt GET /limits"
    page.evaluate("document.getElementById('text').removeAttribute('maxlength')")  # let a too-long text through
    page.fill("#text", "word " * 2000)
    page.click("#speak")
    page.wait_for_function("window.photoavatar.state === 'error'", timeout=5000)
    detail = page.evaluate("window.photoavatar.detail")
    assert detail and "HTTP" not in detail, detail  # the server's own sentence, not a status line
    assert not page.locator("#speak").is_disabled(), "a refused request leaves the session usable"
