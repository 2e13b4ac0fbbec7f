"""`photoavatar inspect BUNDLE`: one PNG to judge a bundle by eye.

Rows: every viseme composed on the face (zoomed on the mouth, labelled); then the whole frame with the mouth
ROI and the sprite rectangle drawn, the mask, and idle frames (first, the blink, and two more).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from photoavatar.avatar.bundle import AvatarBundle, load_bundle
from photoavatar.avatar.compose import compose_frame, load_assets
from photoavatar.avatar.landmarks import EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT, detect_faces
from photoavatar.avatar.video import read_mp4

TILE_PX = 220
LABEL_PX = 22
COLUMNS = 6
BACKGROUND = (24, 24, 24)


def write_preview(bundle_path: Path, out: Path | None = None) -> Path:
    bundle = load_bundle(Path(bundle_path))
    out = Path(out) if out else bundle.preview_image
    idle = read_mp4(bundle.idle_video)
    tiles = _viseme_tiles(bundle, idle[0]) + _overview_tiles(bundle, idle)
    sheet = _contact_sheet(tiles)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def _viseme_tiles(bundle: AvatarBundle, frame0: np.ndarray) -> list[tuple[Image.Image, str]]:
    assets = load_assets(bundle)
    x, y = assets.placement_px
    w, h = bundle.atlas_layout.sprite_size_px
    box = _square_around((x, y, w, h), frame0.shape, grow=1.5)
    tiles = []
    for name in bundle.visemes:
        composed = compose_frame(frame0, assets, 0, {name: 1.0})
        tiles.append((_tile(Image.fromarray(composed).crop(box)), name))
    return tiles


def _overview_tiles(bundle: AvatarBundle, idle: np.ndarray) -> list[tuple[Image.Image, str]]:
    frame = Image.fromarray(idle[0])
    draw = ImageDraw.Draw(frame)
    mouth = bundle.roi.mouth
    draw.rectangle([mouth.x_px, mouth.y_px, mouth.x_px + mouth.width_px, mouth.y_px + mouth.height_px],
                   outline=(0, 255, 0))
    (x, y), (w, h) = bundle.atlas_layout.placement_px, bundle.atlas_layout.sprite_size_px
    draw.rectangle([x, y, x + w, y + h], outline=(255, 210, 0))
    with Image.open(bundle.mask_image) as mask:
        mask_tile = mask.convert("RGB")
    tiles = [(_tile(frame), "ROI (green), sprite (yellow)"), (_tile(mask_tile), "mask")]
    blink = _blink_frame(idle)
    for index in sorted({0, blink, len(idle) // 4, len(idle) // 2}):
        label = f"idle {index}" + (" (blink)" if index == blink else "")
        tiles.append((_tile(Image.fromarray(idle[index])), label))
    return tiles


def _blink_frame(idle: np.ndarray) -> int:
    """The frame whose eye regions differ most from the first (the lids closed)."""
    faces = detect_faces(idle[0])
    if not faces:
        return 0
    eyes = faces[0].points_px[[*EYE_IMAGE_LEFT["corners"], *EYE_IMAGE_RIGHT["corners"]]]
    (x0, y0), (x1, y1) = eyes.min(axis=0), eyes.max(axis=0)
    pad = 0.15 * (x1 - x0)
    window = (slice(max(0, int(y0 - pad)), int(y1 + pad)), slice(max(0, int(x0)), int(x1)))
    first = idle[0][window].astype(np.int16)
    changes = [np.abs(frame[window].astype(np.int16) - first).mean() for frame in idle]
    return int(np.argmax(changes))


def _square_around(rect, shape, grow: float) -> tuple[int, int, int, int]:
    x, y, w, h = rect
    side = int(max(w, h) * grow)
    cx, cy = x + w / 2, y + h / 2
    left = int(np.clip(cx - side / 2, 0, max(0, shape[1] - side)))
    top = int(np.clip(cy - side / 2, 0, max(0, shape[0] - side)))
    return left, top, min(shape[1], left + side), min(shape[0], top + side)


def _tile(picture: Image.Image) -> Image.Image:
    """Fit into TILE_PX x TILE_PX, enlarging small crops (the mouth) so details are visible."""
    factor = TILE_PX / max(picture.size)
    size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
    return picture.resize(size, Image.Resampling.LANCZOS)


def _contact_sheet(tiles: list[tuple[Image.Image, str]]) -> Image.Image:
    rows = -(-len(tiles) // COLUMNS)
    cell_w, cell_h = TILE_PX + 8, TILE_PX + LABEL_PX + 8
    sheet = Image.new("RGB", (COLUMNS * cell_w, rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=15)
    for index, (picture, label) in enumerate(tiles):
        left, top = (index % COLUMNS) * cell_w + 4, (index // COLUMNS) * cell_h + 4
        sheet.paste(picture, (left + (TILE_PX - picture.width) // 2, top + (TILE_PX - picture.height) // 2))
        draw.text((left + 2, top + TILE_PX + 3), label, fill=(235, 235, 235), font=font)
    return sheet
