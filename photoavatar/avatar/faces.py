"""Choose the one face to animate, or say clearly why none fits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from photoavatar.avatar.errors import AvatarError
from photoavatar.avatar.landmarks import Face, detect_faces, yaw_ratio

MIN_FACE_WIDTH_PX = 120  # in photo pixels: below this the mouth is too few pixels to reshape convincingly
MAX_YAW_RATIO = 0.45  # nose this far toward a cheek (about 25-30 degrees): the far lip corner is hidden


TILE_GRIDS = (2, 3)  # when the whole picture shows no face, look again in 2x2 then 3x3 overlapping tiles


def find_faces(image_rgb: np.ndarray) -> list[Face]:
    """Faces left to right. MediaPipe's detector only sees faces that fill a good part of its input, so a
    small face in a big photo (a group, a wide shot) is looked for again in overlapping tiles."""
    faces = detect_faces(image_rgb)
    for grid in TILE_GRIDS:
        if faces:
            break
        faces = _deduplicated([face for tile in _tiles(image_rgb.shape, grid) for face in _detect_in(image_rgb, tile)])
    return sorted(faces, key=lambda face: face.box[0])


def _tiles(shape, grid: int) -> list[tuple[int, int, int, int]]:
    """x, y, w, h of grid x grid tiles overlapping by half a tile."""
    height, width = shape[:2]
    tile_w, tile_h = int(2 * width / (grid + 1)), int(2 * height / (grid + 1))
    return [(int(i * tile_w / 2), int(j * tile_h / 2), tile_w, tile_h) for j in range(grid) for i in range(grid)]


def _detect_in(image_rgb: np.ndarray, tile: tuple[int, int, int, int]) -> list[Face]:
    x, y, w, h = tile
    return [face.transformed(1.0, (x, y)) for face in detect_faces(image_rgb[y:y + h, x:x + w])]


def _deduplicated(faces: list[Face]) -> list[Face]:
    """One face per person: tiles overlap, so the same face can be found twice (keep the larger view)."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -f.width_px):
        if all(_overlap(face.box, other.box) < 0.3 for other in kept):
            kept.append(face)
    return kept


def _overlap(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    return inter / min(aw * ah, bw * bh) if inter else 0.0


def choose_face(faces: Sequence[Face], face_index: int | None, *, photo_scale: float = 1.0) -> Face:
    """The face to animate. `photo_scale` is working pixels per photo pixel (boxes are reported in photo pixels)."""
    if not faces:
        raise AvatarError("no face found in the photo; use a well-lit portrait where the whole face is visible")
    face = _pick(faces, face_index, photo_scale)
    _check_size(face, photo_scale)
    _check_frontal(face)
    return face


def describe_face(face: Face, photo_scale: float = 1.0) -> str:
    x, y, w, h = (round(v / photo_scale) for v in face.box)
    return f"x={x} y={y} w={w} h={h}"


def _pick(faces: Sequence[Face], face_index: int | None, photo_scale: float) -> Face:
    listing = "; ".join(f"face {i}: {describe_face(f, photo_scale)}" for i, f in enumerate(faces))
    if face_index is None:
        if len(faces) > 1:
            raise AvatarError(f"the photo shows {len(faces)} faces ({listing}, left to right, in photo pixels); "
                              f"choose one with --face N")
        return faces[0]
    if not 0 <= face_index < len(faces):
        raise AvatarError(f"--face {face_index} is out of range: the photo shows {len(faces)} face(s) "
                          f"({listing}); use --face 0 to {len(faces) - 1}")
    return faces[face_index]


def _check_size(face: Face, photo_scale: float) -> None:
    width_px = face.width_px / photo_scale
    if width_px < MIN_FACE_WIDTH_PX:
        raise AvatarError(f"the face is too small to animate: {width_px:.0f} px wide in the photo, the minimum is "
                          f"{MIN_FACE_WIDTH_PX} px; use a closer or higher-resolution portrait")


def _check_frontal(face: Face) -> None:
    yaw = yaw_ratio(face)
    if abs(yaw) > MAX_YAW_RATIO:
        side = "to the side" if abs(yaw) < 0.8 else "almost in profile"
        raise AvatarError(f"the face is turned too far {side} (yaw ratio {yaw:+.2f}, the limit is "
                          f"±{MAX_YAW_RATIO}); use a photo where the person looks toward the camera")
