"""Compose one avatar frame: the Python twin of web/compose.js, exactly as docs/bundle.md describes.

sprite = sum of weight * atlas sprite (floats), drawn with alpha mask/255 at `placement` through the head
transform of the idle frame, p -> pivot + s (p - pivot) + (dx, dy + nod), over idle frame i.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from photoavatar.avatar.bundle import AvatarBundle, HeadPose
from photoavatar.avatar.errors import AvatarError

MIN_SPRITE_WEIGHT = 1e-3  # as web/compose.js: lighter sprites change no pixel by more than 0.25 levels
WARP_MARGIN_PX = 4  # the transformed sprite moves at most a few pixels; warp only this much around it


@dataclass(frozen=True)
class BundleAssets:
    """The bundle's pixels decoded once, beside the parts of its layout that compose_frame reads."""

    sprites: dict[str, np.ndarray]  # viseme -> h x w x 3 float32
    mask: np.ndarray  # h x w float32 in [0, 1]
    placement_px: tuple[int, int]
    pivot_px: tuple[float, float]
    head_track: tuple[HeadPose, ...]


def load_assets(bundle: AvatarBundle) -> BundleAssets:
    """Decode atlas and mask once; compose_frame then only blends."""
    with Image.open(bundle.atlas_image) as picture:
        atlas = np.asarray(picture.convert("RGBA"))
    with Image.open(bundle.mask_image) as picture:
        mask = np.asarray(picture.convert("L"), dtype=np.float32) / 255.0
    sprites = {name: atlas[r.y_px:r.y_px + r.height_px, r.x_px:r.x_px + r.width_px, :3].astype(np.float32)
               for name, r in bundle.atlas_layout.sprites.items()}
    return BundleAssets(sprites, mask, bundle.atlas_layout.placement_px, bundle.roi.pivot_px, bundle.roi.head_track)


def blend_sprites(assets: BundleAssets, weights: Mapping[str, float]) -> np.ndarray:
    """Σ w[v] · sprite[v] over the bundle's visemes, weights renormalised over those drawn (as the web client)."""
    kept = {name: w for name, w in weights.items() if name in assets.sprites and w >= MIN_SPRITE_WEIGHT}
    total = sum(kept.values())
    if total <= 0:
        kept, total = {"Rest": 1.0}, 1.0
    blended = np.zeros_like(assets.sprites["Rest"])
    for name, weight in kept.items():
        blended += (weight / total) * assets.sprites[name]
    return blended


def compose_frame(idle_frame: np.ndarray, assets: BundleAssets, frame_index: int,
                  weights: Mapping[str, float], nod_px: float = 0.0) -> np.ndarray:
    """Idle frame `frame_index` with the mouth for `weights`; returns a new H x W x 3 uint8 frame."""
    if not assets.head_track:
        raise AvatarError("the bundle has no head track; re-run photoavatar avatarize")
    dx, dy, scale = assets.head_track[frame_index % len(assets.head_track)]
    sprite = blend_sprites(assets, weights)
    layer = np.dstack([sprite, assets.mask])
    window, placed = _place(layer, idle_frame.shape, assets, (dx, dy + nod_px, scale))
    out = idle_frame.copy()
    if placed is None:
        return out
    alpha = placed[..., 3:4]
    under = out[window].astype(np.float32)
    out[window] = np.clip(np.rint(under + alpha * (placed[..., :3] - under)), 0, 255).astype(np.uint8)
    return out


def _place(layer: np.ndarray, frame_shape, assets: BundleAssets, motion):
    """Warp sprite+alpha through the head transform into the frame window it can reach."""
    dx, dy, scale = motion
    (px, py), (x0, y0) = assets.pivot_px, assets.placement_px
    h, w = layer.shape[:2]
    # Sprite pixel centre u + 0.5 is base point x0 + u + 0.5, which lands at pivot + s (p - pivot) + d.
    # In the window's pixel-index coordinates (centre j + 0.5) that is j = s u + offset:
    left = int(np.floor(px + scale * (x0 - px) + dx)) - WARP_MARGIN_PX
    top = int(np.floor(py + scale * (y0 - py) + dy)) - WARP_MARGIN_PX
    right = int(np.ceil(px + scale * (x0 + w - px) + dx)) + WARP_MARGIN_PX
    bottom = int(np.ceil(py + scale * (y0 + h - py) + dy)) + WARP_MARGIN_PX
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, frame_shape[1]), min(bottom, frame_shape[0])
    if right <= left or bottom <= top:
        return None, None
    offset_x = px + scale * (x0 + 0.5 - px) + dx - 0.5 - left
    offset_y = py + scale * (y0 + 0.5 - py) + dy - 0.5 - top
    matrix = np.array([[scale, 0, offset_x], [0, scale, offset_y]], dtype=np.float64)
    placed = cv2.warpAffine(layer, matrix, (right - left, bottom - top), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    return (slice(top, bottom), slice(left, right)), placed
