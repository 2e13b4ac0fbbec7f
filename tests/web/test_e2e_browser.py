"""End to end: the real server (aiortc, Piper), the bundled page in headless Chromium, a real WebRTC link.

The avatar is a small synthetic bundle written with the real bundle writer (grace_hopper.jpg as the idle frame,
sprites with mouths of different openings), so this test does not wait for avatarize.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from servers import server_in_thread

pytestmark = pytest.mark.slow

FACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "faces"
VISEMES = ("Rest", "AI", "E", "U", "O", "MBP", "FV", "L", "WQ", "R", "CH", "TH")
OPENING_PX = {"Rest": 0, "AI": 22, "E": 12, "U": 8, "O": 18, "MBP": 0, "FV": 3, "L": 10, "WQ": 8, "R": 9, "CH": 7, "TH": 6}


def write_test_bundle(out: Path) -> None:
    from photoavatar.avatar.bundle import BundleContents, write_bundle
    from photoavatar.avatar.video import encode_mp4

    photo = np.asarray(Image.open(FACES / "grace_hopper.jpg").convert("RGB").resize((256, 256)))
    frames = 50
    encode_mp4((photo for _ in range(frames)), out.parent / "idle.mp4", fps=25)
    x, y, w, h = 96, 150, 64, 48  # the mouth box of grace_hopper at 256 px
    sprites = []
    for name in VISEMES:
        sprite = Image.fromarray(photo[y:y + h, x:x + w].copy())
        if OPENING_PX[name]:
            ImageDraw.Draw(sprite).ellipse((14, 22 - OPENING_PX[name] // 2, 50, 22 + OPENING_PX[name] // 2), fill=(40, 10, 15))
        sprites.append(np.dstack([np.asarray(sprite), np.full((h, w), 255, np.uint8)]))
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.minimum(255, 25 * np.minimum.reduce([xx, yy, w - 1 - xx, h - 1 - yy])).astype(np.uint8)
    write_bundle(out, BundleContents(
        idle_mp4=(out.parent / "idle.mp4").read_bytes(),
        atlas_rgba=np.concatenate(sprites, axis=1),
        atlas_layout={"format_version": 1, "sprite_size": [w, h], "placement": {"x": x, "y": y},
                      "sprites": {n: {"x": i * w, "y": 0, "w": w, "h": h} for i, n in enumerate(VISEMES)}},
        mask=mask,
        roi={"format_version": 1, "mouth": {"x": x + 8, "y": y + 8, "w": w - 16, "h": h - 16}, "fps": 25,
             "frame_count": frames, "pivot": [128.0, 170.0], "head_track": [[0.0, 0.0, 1.0]] * frames},
        manifest_fields={"source_sha256": "0" * 64, "frame_size": [256, 256], "fps": 25, "frame_count": frames,
                         "duration_s": frames / 25, "visemes": list(VISEMES), "photo_advice": None}))


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    from photoavatar.server.app import create_app
    from photoavatar.server.config import ServerSettings

    avatars = tmp_path_factory.mktemp("avatars")
    write_test_bundle(avatars / "grace")
    with server_in_thread(create_app(ServerSettings.from_settings(avatars_dir=avatars))) as base_url:
        yield base_url


def connect(page, base):
    page.goto(base)
    page.wait_for_function("document.querySelectorAll('#avatar-select option').length > 0", timeout=20000)
    page.select_option("#avatar-select", "grace")
    page.click("#connect")
    page.wait_for_function("['ready', 'error'].includes(window.photoavatar.state)", timeout=30000)
    assert page.evaluate("window.photoavatar.state") == "ready", page.evaluate("window.photoavatar.detail")


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
    page.evaluate("document.getElementById('text').removeAttribute('maxlength')")  # let a too-long text through
    page.fill("#text", "word " * 2000)
    page.click("#speak")
    page.wait_for_function("window.photoavatar.state === 'error'", timeout=5000)
    detail = page.evaluate("window.photoavatar.detail")
    assert detail and "HTTP" not in detail, detail  # the server's own sentence, not a status line
    assert not page.locator("#speak").is_disabled(), "a refused request leaves the session usable"
