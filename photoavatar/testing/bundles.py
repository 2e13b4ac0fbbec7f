"""A small synthetic avatar bundle written with the real bundle writer, for the browser tests and benchmarks.

The idle frame is a test portrait at 256 px; the sprites are its mouth box with dark ellipses of different
openings, so a test sees the mouth move without waiting for avatarize.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from photoavatar.avatar.bundle import IDLE_VIDEO, BundleContents, write_bundle
from photoavatar.avatar.video import encode_mp4
from photoavatar.visemes import VISEMES

OPENING_PX = {"Rest": 0, "AI": 22, "E": 12, "U": 8, "O": 18, "MBP": 0, "FV": 3, "L": 10, "WQ": 8, "R": 9, "CH": 7, "TH": 6}
FRAME_PX = 256
MOUTH_BOX_PX = (96, 150, 64, 48)  # x, y, w, h: the mouth of grace_hopper.jpg at FRAME_PX
FRAMES = 50


def write_test_bundle(out: Path, photo: Path) -> None:
    """Write the bundle of PHOTO (grace_hopper.jpg: its mouth lies in MOUTH_BOX_PX) to the folder OUT."""
    face = np.asarray(Image.open(photo).convert("RGB").resize((FRAME_PX, FRAME_PX)))
    idle_path = out.parent / IDLE_VIDEO.name
    encode_mp4((face for _ in range(FRAMES)), idle_path, fps=25)
    x, y, w, h = MOUTH_BOX_PX
    sprites = []
    for name in VISEMES:
        sprite = Image.fromarray(face[y:y + h, x:x + w].copy())
        if OPENING_PX[name]:
            ImageDraw.Draw(sprite).ellipse((14, 22 - OPENING_PX[name] // 2, 50, 22 + OPENING_PX[name] // 2), fill=(40, 10, 15))
        sprites.append(np.dstack([np.asarray(sprite), np.full((h, w), 255, np.uint8)]))
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.minimum(255, 25 * np.minimum.reduce([xx, yy, w - 1 - xx, h - 1 - yy])).astype(np.uint8)
    write_bundle(out, BundleContents(
        idle_mp4=idle_path.read_bytes(),
        atlas_rgba=np.concatenate(sprites, axis=1),
        atlas_layout={"format_version": 1, "sprite_size": [w, h], "placement": {"x": x, "y": y},
                      "sprites": {n: {"x": i * w, "y": 0, "w": w, "h": h} for i, n in enumerate(VISEMES)}},
        mask=mask,
        roi={"format_version": 1, "mouth": {"x": x + 8, "y": y + 8, "w": w - 16, "h": h - 16}, "fps": 25,
             "frame_count": FRAMES, "pivot": [128.0, 170.0], "head_track": [[0.0, 0.0, 1.0]] * FRAMES},
        manifest_fields={"source_sha256": "0" * 64, "frame_size": [FRAME_PX, FRAME_PX], "fps": 25,
                         "frame_count": FRAMES, "duration_s": FRAMES / 25, "visemes": list(VISEMES),
                         "photo_advice": None}))
