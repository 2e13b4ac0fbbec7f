"""Pack the viseme frames into sprites: one rectangle (the mask's extent plus a margin) cut from every frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from photoavatar.avatar.errors import AvatarError

SPRITE_MARGIN_PX = 4  # keeps the feather's faint tail inside the sprite


@dataclass(frozen=True)
class SpriteSheet:
    rect: tuple[int, int, int, int]  # x, y, w, h on the idle frame (the placement and sprite size)
    atlas_rgba: np.ndarray  # rows x cols grid of sprites, alpha 255 inside sprites
    layout: dict  # atlas.json
    mask: np.ndarray  # h x w uint8, the mask inside rect


def sprite_rect(mask: np.ndarray, margin_px: int = SPRITE_MARGIN_PX) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask > 0)
    if rows.size == 0:
        raise AvatarError("the mouth mask is empty: no mouth region could be built from this photo; "
                          "use a frontal portrait with the mouth clearly visible")
    height, width = mask.shape
    x0, y0 = max(0, cols.min() - margin_px), max(0, rows.min() - margin_px)
    x1, y1 = min(width, cols.max() + 1 + margin_px), min(height, rows.max() + 1 + margin_px)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def pack_sprites(frames: dict[str, np.ndarray], mask: np.ndarray, visemes: Sequence[str]) -> SpriteSheet:
    x, y, w, h = sprite_rect(mask)
    columns = int(np.ceil(np.sqrt(len(visemes))))
    rows = int(np.ceil(len(visemes) / columns))
    atlas = np.zeros((rows * h, columns * w, 4), np.uint8)
    sprites = {}
    for index, name in enumerate(visemes):
        if name not in frames:
            raise AvatarError(f"the mouth synthesis produced no frame for viseme {name}")
        ax, ay = (index % columns) * w, (index // columns) * h
        atlas[ay:ay + h, ax:ax + w, :3] = frames[name][y:y + h, x:x + w, :3]
        atlas[ay:ay + h, ax:ax + w, 3] = 255
        sprites[name] = {"x": ax, "y": ay, "w": w, "h": h}
    layout = {"format_version": 1, "sprite_size": [w, h], "placement": {"x": x, "y": y}, "sprites": sprites}
    mask_u8 = np.clip(np.rint(mask[y:y + h, x:x + w] * 255), 0, 255).astype(np.uint8)
    return SpriteSheet((x, y, w, h), atlas, layout, mask_u8)
