"""How well each mouth shape reads and how much of the photo's texture it keeps, measured on composed frames.

Each viseme frame is composed over the photo as a client does (photo * (1 - mask) + frame * mask), the face
is found again by the landmark detector, and measured against Rest:
- legibility: inner-lip aperture (gap / mouth width) and the mouth width relative to Rest;
- texture: the variance of the Laplacian of the luminance in two skin patches placed by each frame's own
  landmarks, relative to Rest: the chin (beard) between the lower lip and the chin point, and the upper lip
  (moustache) halfway between nose and lip. Both keep clear of lips and nostrils, whose edges would dominate. A
  warp that stretches or blurs skin lowers it; a near-rigid move of the chin keeps it.
Two places to measure: the synthesis itself (`measure_frames`, over the image it was made from) and a built
bundle (`measure_bundle`, every sprite composed on idle frame 0 exactly as a client composes it).
The tests (tests/avatar/test_legibility.py) and the benchmark (bench/avatarize.py) both use this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from photoavatar.avatar.bundle import AvatarBundle
from photoavatar.avatar.compose import compose_frame, load_assets
from photoavatar.avatar.landmarks import CHIN, MOUTH_CORNERS, NOSE_BOTTOM, Face, detect_faces, mouth_metrics
from photoavatar.avatar.mouth_shapes import MouthFrame
from photoavatar.avatar.video import read_mp4

LOWER_LIP_BOTTOM, UPPER_LIP_TOP = 17, 0
# Patch sizes in face widths (landmarks 234 to 454).
PATCH_HALF_WIDTH_FW = 0.1  # both patches span the middle of the face, about half a mouth wide each side
CHIN_PATCH_FW = (0.17, 0.07)  # the chin patch: from this far above the chin point to this far above it
LIP_CLEARANCE_FW = 0.03  # both patches keep this far from the lips (the lip edge's contrast would dominate)
UPPER_LIP_HALF_HEIGHT_FW = 0.025  # the upper-lip patch's half height at most


@dataclass(frozen=True)
class VisemeMeasure:
    aperture: float
    width_ratio: float  # mouth width / Rest's
    chin_texture: float  # Laplacian variance of the chin patch / Rest's
    upper_lip_texture: float  # the same for the upper-lip patch


def compose_over(image: np.ndarray, frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """What a client shows: image * (1 - mask) + frame * mask, rounded to 8 bits."""
    blended = image.astype(np.float32) * (1 - mask[..., None]) + frame.astype(np.float32) * mask[..., None]
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def texture_patches(face: Face, upper_lip_half_height_fw: float | None = None) -> dict[str, np.ndarray]:
    """The chin and upper-lip patches (4-point polygons, image pixels), placed by the face's own landmarks and
    sized in face widths (a mouth width changes from shape to shape, the face does not). The upper-lip patch
    fits the gap between nose and lip unless its half height (face widths) is given: compare frames with
    Rest's, since a taller patch of the same skin would average in smoother skin."""
    p = face.points_px
    frame = MouthFrame.of(p[MOUTH_CORNERS[0]], p[MOUTH_CORNERS[1]])
    face_w = face.width_px / frame.width_px  # in units of this frame's mouth width
    # The chin above the chin point, which the jaw carries; clear of the lower lip.
    lip_bottom, chin = frame.to_local(p[LOWER_LIP_BOTTOM])[1], frame.to_local(p[CHIN])[1]
    chin_top = max(chin - CHIN_PATCH_FW[0] * face_w, lip_bottom + LIP_CLEARANCE_FW * face_w)
    chin_bottom = max(chin - CHIN_PATCH_FW[1] * face_w, chin_top + 0.02 * face_w)
    # The moustache halfway between nose and lip, clear of both (a short upper lip gets a thin patch).
    nose, lip_top = frame.to_local(p[NOSE_BOTTOM])[1], frame.to_local(p[UPPER_LIP_TOP])[1]
    middle = (nose + lip_top) / 2
    if upper_lip_half_height_fw is None:
        upper_lip_half_height_fw = upper_lip_half_height(face)
    half_height = upper_lip_half_height_fw * face_w
    top, bottom = middle - half_height, middle + half_height
    half_width = PATCH_HALF_WIDTH_FW * face_w
    return {"chin": _rectangle(frame, half_width, chin_top, chin_bottom),
            "upper_lip": _rectangle(frame, half_width, top, bottom)}


def upper_lip_half_height(face: Face) -> float:
    """Half the height (face widths) of an upper-lip patch that fits between this face's nose and lip."""
    p = face.points_px
    gap = float(np.linalg.norm(p[UPPER_LIP_TOP] - p[NOSE_BOTTOM])) / face.width_px
    return max(min(UPPER_LIP_HALF_HEIGHT_FW, gap / 2 - LIP_CLEARANCE_FW), 0.008)


def _rectangle(frame: MouthFrame, half_width: float, top_v: float, bottom_v: float) -> np.ndarray:
    h = half_width
    return frame.to_px(np.array([[-h, top_v], [h, top_v], [h, bottom_v], [-h, bottom_v]]))


def laplacian_variance(image_rgb: np.ndarray, polygon_px: np.ndarray) -> float:
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    laplacian = cv2.Laplacian(gray, cv2.CV_32F, ksize=1)
    inside = np.zeros(gray.shape, np.uint8)
    cv2.fillPoly(inside, [np.round(polygon_px).astype(np.int32)], 1)
    values = laplacian[inside.astype(bool)]
    return float(values.var()) if values.size > 4 else 0.0


def measure_frames(image: np.ndarray, frames: Mapping[str, np.ndarray], mask: np.ndarray) -> dict[str, VisemeMeasure]:
    """viseme -> measure, for synthesised frames (including "Rest") composed over `image` through `mask`."""
    return measure_composed({name: compose_over(image, frame, mask) for name, frame in frames.items()})


def measure_bundle(bundle: AvatarBundle) -> dict[str, VisemeMeasure]:
    """viseme -> measure, for every sprite of a bundle composed on its idle frame 0 (as a client shows it)."""
    frame0 = read_mp4(bundle.idle_video)[0]
    assets = load_assets(bundle)
    return measure_composed({name: compose_frame(frame0, assets, 0, {name: 1.0}) for name in bundle.visemes})


def measure_composed(composed: Mapping[str, np.ndarray]) -> dict[str, VisemeMeasure]:
    """viseme -> measure, for frames as a client shows them (including "Rest"). Raises if the face is lost."""
    found = {}
    for name, picture in composed.items():
        faces = detect_faces(picture)
        if len(faces) != 1:
            raise AssertionError(f"{name}: {len(faces)} faces found after composing, expected 1")
        found[name] = (picture, faces[0])
    rest_image, rest_face = found["Rest"]
    rest_width = mouth_metrics(rest_face).width_px
    half_height = upper_lip_half_height(rest_face)
    rest_texture = {key: laplacian_variance(rest_image, patch)
                    for key, patch in texture_patches(rest_face, half_height).items()}
    measures = {}
    for name, (picture, face) in found.items():
        texture = {key: laplacian_variance(picture, patch)
                   for key, patch in texture_patches(face, half_height).items()}
        metrics = mouth_metrics(face)
        measures[name] = VisemeMeasure(metrics.aperture, metrics.width_px / rest_width,
                                       texture["chin"] / max(rest_texture["chin"], 1e-6),
                                       texture["upper_lip"] / max(rest_texture["upper_lip"], 1e-6))
    return measures
