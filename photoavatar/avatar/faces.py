"""Choose the one face to animate, or say clearly why none fits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from photoavatar.avatar.errors import AvatarError
from photoavatar.avatar.landmarks import Face, detect_faces, yaw_ratio

# Face widths in photo pixels. Down to MIN the landmarks stay stable (measured: bench/face_limits.py); below
# COMFORTABLE the crop enlarges the face (Lanczos) and the output says so.
MIN_FACE_WIDTH_PX = 40
COMFORTABLE_FACE_WIDTH_PX = 120
# Yaw ratio (landmarks.yaw_ratio): up to MAX the far lip corner is in view and the shapes stay plausible
# (measured: bench/face_limits.py); above COMFORTABLE the output notes the turn.
MAX_YAW_RATIO = 0.65
COMFORTABLE_YAW_RATIO = 0.3
COVERED_MOUTH_SHARE = 0.65  # this much of a lip on something else (shared portraits: <= 0.5; a microphone: >= 0.78)
DOMINANT_WIDTH_RATIO = 1.6  # a face this many times wider than every other real face is the portrait's subject


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


@dataclass(frozen=True)
class FaceChoice:
    face: Face
    index: int  # in the left-to-right list the error messages and --face use
    notes: tuple[str, ...]  # what the user should know about this choice and this face


def choose_face(faces: Sequence[Face], face_index: int | None, *, photo_scale: float = 1.0,
                image_rgb: np.ndarray | None = None) -> Face:
    """The face to animate (see `select_face`)."""
    return select_face(faces, face_index, photo_scale=photo_scale, image_rgb=image_rgb).face


def select_face(faces: Sequence[Face], face_index: int | None, *, photo_scale: float = 1.0,
                image_rgb: np.ndarray | None = None) -> FaceChoice:
    """The face to animate, and notes about it. `photo_scale` is working pixels per photo pixel (boxes are
    reported in photo pixels). With `image_rgb`, faces that do not look real are set aside when a convincing
    one exists, and one face that clearly dominates the others is taken with a note."""
    if not faces:
        raise AvatarError("no face found in the photo; use a well-lit portrait where the whole face is visible")
    index, notes = _pick(faces, face_index, photo_scale, image_rgb)
    face = faces[index]
    notes += _size_notes(face, photo_scale) + _yaw_notes(face) + _covered_mouth_notes(face, image_rgb)
    return FaceChoice(face, index, notes)


def describe_face(face: Face, photo_scale: float = 1.0) -> str:
    x, y, w, h = (round(v / photo_scale) for v in face.box)
    return f"x={x} y={y} w={w} h={h}"


def _listing(faces: Sequence[Face], photo_scale: float) -> str:
    return "; ".join(f"face {i}: {describe_face(f, photo_scale)}" for i, f in enumerate(faces))


def _pick(faces: Sequence[Face], face_index: int | None, photo_scale: float,
          image_rgb: np.ndarray | None) -> tuple[int, tuple[str, ...]]:
    if face_index is not None:
        if not 0 <= face_index < len(faces):
            raise AvatarError(f"--face {face_index} is out of range: the photo shows {len(faces)} face(s) "
                              f"({_listing(faces, photo_scale)}); use --face 0 to {len(faces) - 1}")
        return face_index, ()
    if len(faces) == 1:
        return 0, ()
    doubts = _doubts(faces, image_rgb)
    real = [i for i in range(len(faces)) if not doubts[i]] or list(range(len(faces)))
    dominant = real[0] if len(real) == 1 else _dominant(faces, real)
    if dominant is None:
        raise AvatarError(f"the photo shows {len(real)} faces ({_listing(faces, photo_scale)}, left to right, "
                          f"in photo pixels); choose one with --face N")
    return dominant, (_taken_note(faces, dominant, doubts, photo_scale),)


def _doubts(faces: Sequence[Face], image_rgb: np.ndarray | None) -> list[tuple[str, ...]]:
    if image_rgb is None:
        return [() for _ in faces]
    from photoavatar.avatar.face_evidence import face_evidence

    return [face_evidence(image_rgb, face).doubts for face in faces]


def _dominant(faces: Sequence[Face], candidates: list[int]) -> int | None:
    """The one face far larger than every other candidate (a portrait with people far behind), if any."""
    by_width = sorted(candidates, key=lambda i: -faces[i].width_px)
    largest, runner_up = by_width[0], by_width[1]
    return largest if faces[largest].width_px >= DOMINANT_WIDTH_RATIO * faces[runner_up].width_px else None


def _taken_note(faces: Sequence[Face], taken: int, doubts: list[tuple[str, ...]], photo_scale: float) -> str:
    others = []
    for i, face in enumerate(faces):
        if i != taken:
            why = "; ".join(doubts[i]) or f"much smaller ({face.width_px / faces[taken].width_px:.0%} of its width)"
            others.append(f"face {i} ({describe_face(face, photo_scale)}): {why}")
    return (f"took face {taken} ({describe_face(faces[taken], photo_scale)}) of the {len(faces)} found; "
            f"set aside {', '.join(others)}; choose another with --face N")


def _size_notes(face: Face, photo_scale: float) -> tuple[str, ...]:
    width_px = face.width_px / photo_scale
    if width_px < MIN_FACE_WIDTH_PX:
        raise AvatarError(f"the face is too small to animate: {width_px:.0f} px wide in the photo, the minimum is "
                          f"{MIN_FACE_WIDTH_PX} px; use a closer or higher-resolution portrait")
    return ()


def _yaw_notes(face: Face) -> tuple[str, ...]:
    yaw = yaw_ratio(face)
    if abs(yaw) > MAX_YAW_RATIO:
        side = "to the side" if abs(yaw) < 0.8 else "almost in profile"
        raise AvatarError(f"the face is turned too far {side} (yaw ratio {yaw:+.2f}, the limit is "
                          f"±{MAX_YAW_RATIO}); use a photo where the person looks toward the camera")
    if abs(yaw) > COMFORTABLE_YAW_RATIO:
        return (f"the face is turned to the side (yaw ratio {yaw:+.2f}; up to ±{COMFORTABLE_YAW_RATIO} looks "
                f"best): the mouth shapes are turned with it; a photo facing the camera gives the most natural "
                f"mouth",)
    return ()


def _covered_mouth_notes(face: Face, image_rgb: np.ndarray | None) -> tuple[str, ...]:
    if image_rgb is None:
        return ()
    from photoavatar.avatar.face_evidence import covered_mouth_share

    covered = covered_mouth_share(image_rgb, face)
    if covered < COVERED_MOUTH_SHARE:
        return ()
    return (f"something seems to cover the mouth ({covered:.0%} of one lip is neither skin nor lip: a "
            f"microphone, a hand, a cup?): the mouth shapes will bend it with the lips; a photo with the mouth "
            f"uncovered gives a clean avatar",)
