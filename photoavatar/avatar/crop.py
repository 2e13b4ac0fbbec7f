"""Crop the photo around head and shoulders at the working size, and move the landmarks with it.

The crop is one exact similarity (scale, then shift): PIL's resize with a box maps crop pixel (i + 0.5) to
photo x0 + (i + 0.5) / scale, so `Face.transformed(scale, -x0 * scale)` lands every landmark on the same spot.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from photoavatar.avatar.errors import AvatarError
from photoavatar.avatar.landmarks import LIPS_OUTER, Face

MIN_SIZE_PX, MAX_SIZE_PX = 256, 1024
HEAD_SHOULDERS_HEIGHT = 2.6  # crop height in face-oval heights: hair above, shoulders below
CROP_ASPECT = 0.8  # width / height, a 4:5 portrait
ABOVE_FACE = 0.55  # space above the face oval, in face-oval heights (hair, head top)


@dataclass(frozen=True)
class Crop:
    image_rgb: np.ndarray  # H x W x 3 uint8, long side = working size, even dimensions
    face: Face  # landmarks in crop pixels
    box_px: tuple[float, float, float, float]  # x, y, w, h of the crop in working-image pixels
    scale: float  # crop pixels per working-image pixel
    mouth_roi_px: tuple[int, int, int, int] | None  # the user's --roi in crop pixels, when given


def check_size(size: int) -> int:
    if not MIN_SIZE_PX <= size <= MAX_SIZE_PX:
        raise AvatarError(f"--size {size} is outside {MIN_SIZE_PX}-{MAX_SIZE_PX} px; 512 is a good default")
    return size - size % 2  # H.264 in yuv420p needs even dimensions


def crop_head_and_shoulders(image_rgb: np.ndarray, face: Face, size: int) -> Crop:
    size = check_size(size)
    x0, y0, w, h = _crop_box(face, image_rgb.shape[1], image_rgb.shape[0])
    scale = size / max(w, h)
    out_w, out_h = _even(w * scale), _even(h * scale)
    w, h = out_w / scale, out_h / scale  # tiny trim so that one scale maps both axes exactly
    picture = Image.fromarray(image_rgb).resize((out_w, out_h), Image.Resampling.LANCZOS, box=(x0, y0, x0 + w, y0 + h))
    moved = face.transformed(scale, (-x0 * scale, -y0 * scale))
    return Crop(np.asarray(picture), moved, (x0, y0, w, h), scale, None)


def redetected_in_crop(crop: Crop) -> Crop:
    """The crop with the face's landmarks found again in it: a small face, enlarged, is read more precisely
    than in the photo (the mesh sees a sharper picture). Keeps the moved landmarks if the face is not found."""
    from photoavatar.avatar.landmarks import detect_faces

    moved = crop.face.points_px
    found = [face for face in detect_faces(crop.image_rgb)
             if np.median(np.linalg.norm(face.points_px - moved, axis=1)) < 0.1 * crop.face.width_px]
    return replace(crop, face=found[0]) if found else crop


def _even(value: float) -> int:
    return max(2, int(np.floor(value + 1e-6)) // 2 * 2)


def _crop_box(face: Face, image_w: int, image_h: int) -> tuple[float, float, float, float]:
    fx, fy, fw, fh = face.box
    height = min(HEAD_SHOULDERS_HEIGHT * fh, image_h)
    width = min(height * CROP_ASPECT, image_w)
    left = np.clip(fx + fw / 2 - width / 2, 0, image_w - width)
    top = np.clip(fy - ABOVE_FACE * fh, 0, image_h - height)
    return float(left), float(top), float(width), float(height)


def roi_in_crop(roi_photo_px: tuple[int, int, int, int], crop: Crop, photo_scale: float,
                photo_size_px: tuple[int, int]) -> tuple[int, int, int, int]:
    """Check the user's --roi (photo pixels) against the image and the detected lips; return it in crop pixels."""
    x, y, w, h = roi_photo_px
    photo_w, photo_h = photo_size_px
    if x < 0 or y < 0 or x + w > photo_w or y + h > photo_h:
        raise AvatarError(f"--roi {x},{y},{w},{h} reaches outside the photo ({photo_w}x{photo_h} px); "
                          f"give x,y,w,h inside it, or leave --roi out to use the detected mouth")
    lips = _lips_in_photo_px(crop, photo_scale)
    lx0, ly0 = np.floor(lips.min(axis=0)).astype(int)
    lx1, ly1 = np.ceil(lips.max(axis=0)).astype(int)
    tolerance = 2
    if lx0 < x - tolerance or ly0 < y - tolerance or lx1 > x + w + tolerance or ly1 > y + h + tolerance:
        raise AvatarError(f"--roi {x},{y},{w},{h} does not contain the lips, which span x={lx0}-{lx1}, "
                          f"y={ly0}-{ly1} in the photo; widen the box around them or leave --roi out")
    face_w = crop.face.width_px / crop.scale / photo_scale
    if w > 1.5 * face_w or h > 1.5 * face_w:
        raise AvatarError(f"--roi {x},{y},{w},{h} is larger than the face (about {face_w:.0f} px wide); "
                          f"give a box around the mouth only, or leave --roi out")
    return _photo_box_to_crop((x, y, w, h), crop, photo_scale)


def _lips_in_photo_px(crop: Crop, photo_scale: float) -> np.ndarray:
    x0, y0 = crop.box_px[:2]
    working = crop.face.points_px[list(LIPS_OUTER)] / crop.scale + (x0, y0)
    return working / photo_scale


def _photo_box_to_crop(box: tuple[int, int, int, int], crop: Crop, photo_scale: float) -> tuple[int, int, int, int]:
    x, y, w, h = (v * photo_scale for v in box)
    x0, y0 = crop.box_px[:2]
    left, top = (x - x0) * crop.scale, (y - y0) * crop.scale
    right, bottom = left + w * crop.scale, top + h * crop.scale
    height, width = crop.image_rgb.shape[:2]
    left, top = max(0, int(np.floor(left))), max(0, int(np.floor(top)))
    right, bottom = min(width, int(np.ceil(right))), min(height, int(np.ceil(bottom)))
    return left, top, right - left, bottom - top
