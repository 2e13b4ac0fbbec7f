"""How well each mouth shape reads and how much of the photo's texture it keeps, measured on composed frames.

Each viseme frame is composed over the photo as a client does (photo * (1 - mask) + frame * mask), the face
is found again by the landmark detector, and measured against Rest:
- legibility: inner-lip aperture (gap / mouth width) and the mouth width relative to Rest;
- texture: the variance of the Laplacian of the luminance in two skin patches that move with the face, the
  chin below the lower lip (chin, beard) and the upper lip below the nose (moustache), relative to Rest. A
  warp that stretches or blurs skin lowers it; a near-rigid move of the chin keeps it.
The tests (tests/avatar/test_legibility.py) and the benchmark (bench/avatarize.py) both use this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from photoavatar.avatar.landmarks import CHIN, MOUTH_CORNERS, NOSE_BOTTOM, Face, detect_faces, mouth_metrics
from photoavatar.avatar.mouth_shapes import MouthFrame

LOWER_LIP_BOTTOM, UPPER_LIP_TOP = 17, 0
PATCH_HALF_WIDTH_W = 0.22  # patches span the middle of the mouth, in mouth widths
CHIN_PATCH_W = (0.06, 0.26)  # below the lower lip's bottom edge, from-to (capped above the chin point)
UPPER_LIP_PATCH_FW = (0.02, 0.06)  # the upper-lip patch below the nose, from-to, in face widths
UPPER_LIP_CLEARANCE_FW = 0.03  # and this far above the lip (the lip edge's contrast would dominate)


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


def texture_patches(face: Face) -> dict[str, np.ndarray]:
    """The chin and upper-lip patches (4-point polygons, image pixels), placed by the face's own landmarks."""
    p = face.points_px
    frame = MouthFrame.of(p[MOUTH_CORNERS[0]], p[MOUTH_CORNERS[1]])
    lip_bottom = frame.to_local(p[LOWER_LIP_BOTTOM])[1]
    chin = frame.to_local(p[CHIN])[1]
    chin_top = lip_bottom + CHIN_PATCH_W[0]
    chin_bottom = min(lip_bottom + CHIN_PATCH_W[1], chin - 0.04)
    # The moustache skin right under the nose, which stays put while the lip below moves: anchored to the
    # nose, sized by the face (a mouth width changes from shape to shape), clear of the lip.
    face_w = face.width_px / frame.width_px
    nose, lip_top = frame.to_local(p[NOSE_BOTTOM])[1], frame.to_local(p[UPPER_LIP_TOP])[1]
    top = nose + UPPER_LIP_PATCH_FW[0] * face_w
    bottom = min(nose + UPPER_LIP_PATCH_FW[1] * face_w, lip_top - UPPER_LIP_CLEARANCE_FW * face_w)
    return {"chin": _rectangle(frame, chin_top, max(chin_bottom, chin_top + 0.05)),
            "upper_lip": _rectangle(frame, top, max(bottom, top + 0.02))}


def _rectangle(frame: MouthFrame, top_v: float, bottom_v: float) -> np.ndarray:
    h = PATCH_HALF_WIDTH_W
    return frame.to_px(np.array([[-h, top_v], [h, top_v], [h, bottom_v], [-h, bottom_v]]))


def laplacian_variance(image_rgb: np.ndarray, polygon_px: np.ndarray) -> float:
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    laplacian = cv2.Laplacian(gray, cv2.CV_32F, ksize=1)
    inside = np.zeros(gray.shape, np.uint8)
    cv2.fillPoly(inside, [np.round(polygon_px).astype(np.int32)], 1)
    values = laplacian[inside.astype(bool)]
    return float(values.var()) if values.size > 4 else 0.0


def measure_frames(image: np.ndarray, frames: Mapping[str, np.ndarray], mask: np.ndarray) -> dict[str, VisemeMeasure]:
    """viseme -> measure, for frames that include "Rest". Raises if the face is lost after composing."""
    found = {}
    for name, frame in frames.items():
        composed = compose_over(image, frame, mask)
        faces = detect_faces(composed)
        if len(faces) != 1:
            raise AssertionError(f"{name}: {len(faces)} faces found after composing, expected 1")
        found[name] = (composed, faces[0])
    rest_image, rest_face = found["Rest"]
    rest_width = mouth_metrics(rest_face).width_px
    rest_texture = {key: laplacian_variance(rest_image, patch) for key, patch in texture_patches(rest_face).items()}
    measures = {}
    for name, (composed, face) in found.items():
        texture = {key: laplacian_variance(composed, patch) for key, patch in texture_patches(face).items()}
        metrics = mouth_metrics(face)
        measures[name] = VisemeMeasure(metrics.aperture, metrics.width_px / rest_width,
                                       texture["chin"] / max(rest_texture["chin"], 1e-6),
                                       texture["upper_lip"] / max(rest_texture["upper_lip"], 1e-6))
    return measures
