"""web/compose.js: the blend, the head transform and the loudness rule, run in node against numpy."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CALLER = Path(__file__).with_name("call_js.mjs")
COMPOSE = ROOT / "photoavatar" / "web" / "compose.js"

pytestmark = pytest.mark.usefixtures("node")  # fails with the reason when node is missing


def u8(array: np.ndarray) -> dict:
    return {"u8": base64.b64encode(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).decode()}


def from_u8(value: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(value["u8"]), dtype=np.uint8)


def call(*calls: tuple[str, list]) -> list:
    request = {"module": str(COMPOSE), "calls": [{"fn": fn, "args": args} for fn, args in calls]}
    done = subprocess.run(["node", str(CALLER)], input=json.dumps(request), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def one(fn: str, *args):
    answer = call((fn, list(args)))[0]
    assert "error" not in answer, answer["error"]
    return answer["result"]


def layout(head_track=None, pivot=(100.0, 120.0), frame_count=None):
    head_track = head_track or [[0.0, 0.0, 1.0]]
    atlas = {"format_version": 1, "sprite_size": [40, 30], "placement": {"x": 80, "y": 110},
             "sprites": {"Rest": {"x": 0, "y": 0, "w": 40, "h": 30}, "AI": {"x": 40, "y": 0, "w": 40, "h": 30}}}
    roi = {"format_version": 1, "mouth": {"x": 85, "y": 115, "w": 30, "h": 20}, "fps": 25,
           "frame_count": frame_count or len(head_track), "pivot": list(pivot), "head_track": head_track}
    return atlas, roi


def test_blend_matches_the_weighted_sum_through_the_mask():
    rng = np.random.default_rng(7)
    h, w = 30, 40
    sprites = [rng.integers(0, 256, (h, w, 4), dtype=np.uint8) for _ in range(3)]
    weights = [0.55, 0.3, 0.15]
    mask = rng.integers(0, 256, (h, w), dtype=np.uint8)
    out = one("blendSprites", u8(np.zeros((h, w, 4))), [{"data": u8(s), "weight": wt} for s, wt in zip(sprites, weights, strict=True)],
              u8(mask))
    got = from_u8(out).reshape(h, w, 4).astype(float)
    expected = sum(wt * s[..., :3].astype(float) for s, wt in zip(sprites, weights, strict=True))
    assert np.abs(got[..., :3] - expected).max() <= 0.5 + 1e-3  # one rounding, nothing else
    assert np.array_equal(got[..., 3], mask)


def test_blend_of_one_sprite_is_that_sprite():
    sprite = np.random.default_rng(1).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    out = from_u8(one("blendSprites", u8(np.zeros((30, 40, 4))), [{"data": u8(sprite), "weight": 1.0}],
                      u8(np.full((30, 40), 255)))).reshape(30, 40, 4)
    assert np.array_equal(out[..., :3], sprite[..., :3])


def test_head_transform_maps_points_as_the_bundle_says():
    atlas, roi = layout(head_track=[[0.0, 0.0, 1.0], [1.6, -0.8, 1.012]], pivot=(101.5, 131.0))
    lay = one("readLayout", atlas, roi)
    a, b, c, d, e, f = one("headTransform", lay, 1, 0.75)
    for px, py in [(80, 110), (120, 140), (101.5, 131.0)]:
        dx, dy, s = roi["head_track"][1]
        expected = (101.5 + s * (px - 101.5) + dx, 131.0 + s * (py - 131.0) + dy + 0.75)
        assert (a * px + c * py + e, b * px + d * py + f) == pytest.approx(expected, abs=1e-9)
    assert one("headTransform", lay, 2, 0) == [1, 0, 0, 1, 0, 0]  # frame 2 wraps to frame 0: identity


def test_loudness_closes_open_visemes_a_little_and_keeps_the_blend_convex():
    weights = {"Rest": 0.1, "AI": 0.6, "MBP": 0.3}
    loud, quiet, half = (one("jawWeights", weights, level) for level in (1.0, 0.0, 0.5))
    assert loud == pytest.approx(weights)
    assert quiet["AI"] == pytest.approx(0.6 * 0.8) and quiet["MBP"] == pytest.approx(0.3)
    assert quiet["Rest"] == pytest.approx(0.1 + 0.6 * 0.2)
    assert quiet["AI"] < half["AI"] < loud["AI"]
    for result in (loud, quiet, half):
        assert sum(result.values()) == pytest.approx(1.0) and min(result.values()) >= 0


def test_active_sprites_drop_light_weights_and_renormalise():
    active = one("activeSprites", {"Rest": 0.6995, "AI": 0.3, "O": 0.0005, "Zz": 0.2}, ["Rest", "AI", "O"])
    assert [s["name"] for s in active] == ["Rest", "AI"]
    assert sum(s["weight"] for s in active) == pytest.approx(1.0)
    assert one("activeSprites", {}, ["Rest", "AI"]) == [{"name": "Rest", "weight": 1}]


def test_idle_frame_index_follows_media_time_and_loops():
    frames = call(*(("idleFrameIndex", [t, 25, 125]) for t in (0.0, 0.0399, 0.04, 4.96, 5.0, 5.04, 12.345)))
    assert [f["result"] for f in frames] == [0, 0, 1, 124, 0, 1, 308 % 125]


@pytest.mark.parametrize("change, words", [
    (lambda atlas, roi: atlas["sprites"].pop("Rest"), "no Rest sprite"),
    (lambda atlas, roi: atlas["sprites"]["AI"].update(w=39), "sprite AI is 39x30"),
    (lambda atlas, roi: roi.update(frame_count=5), "1 head_track rows for 5 frames"),
    (lambda atlas, roi: atlas.update(format_version=2), "atlas.json is missing or not format_version 1"),
])
def test_a_broken_bundle_is_rejected_with_what_is_wrong(change, words):
    atlas, roi = layout()
    change(atlas, roi)
    answer = call(("readLayout", [atlas, roi]))[0]
    assert answer["error"].startswith("BundleError: the avatar bundle is not usable") and words in answer["error"]
    assert "avatarize" in answer["error"]


@pytest.mark.parametrize("loudness", [0.0, 0.35, 1.0, 1.7, -0.2])
def test_loudness_rule_is_the_same_in_python_and_javascript(loudness):
    from photoavatar.animate.jaw import jaw_weights

    weights = {"Rest": 0.1, "AI": 0.45, "O": 0.2, "MBP": 0.05, "WQ": 0.15, "E": 0.05}
    expected = jaw_weights(weights, loudness)
    actual = one("jawWeights", weights, loudness)
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, abs=1e-12), name
