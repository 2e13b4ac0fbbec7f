"""Is a detected face a real one? Face Mesh fits a face to anything face-like (an emblem, a statue, a poster).

Three kinds of evidence, each cheap and general:
- the face detector's own score for the region around the face;
- the geometry of the fitted mesh: a real face oval is taller than wide (width / height 0.55-1.15 from
  frontal to well turned); a mesh stretched over a wide emblem is not;
- the cheeks: in a colour photo real cheeks are skin-coloured (a warm hue of modest chroma, whatever the
  complexion) and show some texture; stone, metal and painted patterns are grey, saturated or flat.
A face with any doubt is only set aside when another face in the photo has none (faces.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from photoavatar.avatar.landmarks import CHIN, FACE_SIDES, LIPS_INNER, LIPS_OUTER, Face, detection_score

FOREHEAD = 10
CHEEKS = (50, 280, 205, 425, 101, 330)  # both cheeks, three points each, clear of eyes, nose and lips
MIN_DETECTION_SCORE = 0.5
OUTLINE_RATIO_RANGE = (0.55, 1.15)  # face width / height (sides 234-454 over forehead 10 to chin 152)
SKIN_CHROMA_RANGE = (5.0, 50.0)  # CIELAB a*b* chroma of the cheeks (OpenCV 8-bit units)
SKIN_HUE_RANGE_DEG = (-10.0, 72.0)  # hue angle atan2(b*, a*): from pink-red to golden-brown skin
LIP_HUE_RANGE_DEG = (-30.0, 80.0)  # lips and the skin around them: a little wider, lips lean to purple-red
COLOUR_PHOTO_CHROMA = 10.0  # a photo whose most colourful pixels stay below this is treated as grey
MIN_CHEEK_TEXTURE = 0.8  # luminance standard deviation (grey levels) inside a cheek patch: below is painted
DETECTOR_REGION = 2.0  # the detector sees the face box grown to this many box sizes, scaled to DETECTOR_PX
DETECTOR_PX = 256
LIP_RING_SHARES = (0.25, 0.45)  # lip samples this far from the outer toward the inner lip contour
DARK_FOR_A_FACE = 0.45  # a lip sample darker than this share of the cheeks' lightness is no lip


@dataclass(frozen=True)
class FaceEvidence:
    detection_score: float
    outline_ratio: float
    cheek_chroma: float | None  # None for a grey photo
    cheek_hue_deg: float | None
    cheek_texture: float
    doubts: tuple[str, ...]  # why this may not be a real face; empty for a convincing face

    @property
    def convincing(self) -> bool:
        return not self.doubts


def face_evidence(image_rgb: np.ndarray, face: Face) -> FaceEvidence:
    score = detection_score(_detector_view(image_rgb, face))
    ratio = _outline_ratio(face)
    cheeks = _cheek_patches(image_rgb, face)
    chroma = hue = None
    if _is_colour_photo(image_rgb):
        lab = cv2.cvtColor(np.concatenate(cheeks)[None].astype(np.uint8), cv2.COLOR_RGB2LAB)[0].astype(float)
        a, b = lab[:, 1].mean() - 128, lab[:, 2].mean() - 128
        chroma, hue = float(np.hypot(a, b)), float(np.degrees(np.arctan2(b, a)))
    texture = float(np.median([np.std(_luminance(patch)) for patch in cheeks]))
    doubts = []
    if score < MIN_DETECTION_SCORE:
        doubts.append(f"the face detector is unsure (score {score:.2f})")
    if not OUTLINE_RATIO_RANGE[0] <= ratio <= OUTLINE_RATIO_RANGE[1]:
        doubts.append(f"its outline is not face-shaped (width/height {ratio:.2f})")
    if chroma is not None and not (SKIN_CHROMA_RANGE[0] <= chroma <= SKIN_CHROMA_RANGE[1]
                                   and SKIN_HUE_RANGE_DEG[0] <= hue <= SKIN_HUE_RANGE_DEG[1]):
        doubts.append("its cheeks are not skin-coloured")
    if texture < MIN_CHEEK_TEXTURE:
        doubts.append("its cheeks are flat, without skin texture")
    return FaceEvidence(score, ratio, chroma, hue, texture, tuple(doubts))


def _outline_ratio(face: Face) -> float:
    p = face.points_px
    height = float(np.linalg.norm(p[CHIN] - p[FOREHEAD]))
    return float(np.linalg.norm(p[FACE_SIDES[1]] - p[FACE_SIDES[0]])) / height if height > 0 else 0.0


def _detector_view(image_rgb: np.ndarray, face: Face) -> np.ndarray:
    x, y, w, h = face.box
    half = DETECTOR_REGION * max(w, h) / 2
    cx, cy = x + w / 2, y + h / 2
    height, width = image_rgb.shape[:2]
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(width, cx + half)), int(min(height, cy + half))
    region = np.ascontiguousarray(image_rgb[y0:y1, x0:x1, :3])
    if region.size == 0:
        return np.zeros((DETECTOR_PX, DETECTOR_PX, 3), np.uint8)
    scale = DETECTOR_PX / max(region.shape[:2])
    size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
    return cv2.resize(region, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _cheek_patches(image_rgb: np.ndarray, face: Face) -> list[np.ndarray]:
    radius = max(2, round(0.03 * face.width_px))
    height, width = image_rgb.shape[:2]
    patches = []
    for index in CHEEKS:
        x, y = np.round(face.points_px[index]).astype(int)
        patch = image_rgb[max(0, y - radius):min(height, y + radius + 1), max(0, x - radius):min(width, x + radius + 1)]
        patches.append(patch.reshape(-1, 3) if patch.size else np.zeros((1, 3), np.uint8))
    return patches


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, float)[..., :3] @ np.array([0.299, 0.587, 0.114])


def _is_colour_photo(image_rgb: np.ndarray) -> bool:
    step = max(1, int(np.sqrt(image_rgb.shape[0] * image_rgb.shape[1] / 40_000)))  # ~40k pixels are enough
    sample = np.ascontiguousarray(image_rgb[::step, ::step, :3])
    lab = cv2.cvtColor(sample, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(float)
    chroma = np.hypot(lab[:, 1] - 128, lab[:, 2] - 128)
    return float(np.percentile(chroma, 99)) >= COLOUR_PHOTO_CHROMA


def covered_mouth_share(image_rgb: np.ndarray, face: Face) -> float:
    """How much of the upper or the lower lip (whichever is more) falls on something that is neither skin nor
    lips (a microphone, a glove, a cup): Face Mesh still places lips there, but the mouth shapes would warp the
    object. Samples lie inside the lips, between their outer and inner contours. In a grey photo only
    darkness counts."""
    foreign = _foreign_lip_samples(image_rgb, face).reshape(len(LIP_RING_SHARES), -1)
    half = len(LIPS_OUTER) // 2  # the loop runs along the upper lip, then back along the lower lip
    return float(max(foreign[:, 1:half].mean(), foreign[:, half + 1:].mean()))


def _foreign_lip_samples(image_rgb: np.ndarray, face: Face) -> np.ndarray:
    p = face.points_px
    outer, inner = p[list(LIPS_OUTER)], p[list(LIPS_INNER)]
    samples = np.concatenate([outer + share * (inner - outer) for share in LIP_RING_SHARES])
    height, width = image_rgb.shape[:2]
    xy = np.clip(np.round(samples).astype(int), 0, (width - 1, height - 1))
    blurred = cv2.GaussianBlur(np.ascontiguousarray(image_rgb[..., :3]), (5, 5), 1.0)
    lab = cv2.cvtColor(blurred[xy[:, 1], xy[:, 0]][None], cv2.COLOR_RGB2LAB)[0].astype(float)
    cheeks = cv2.cvtColor(np.concatenate(_cheek_patches(image_rgb, face))[None].astype(np.uint8),
                          cv2.COLOR_RGB2LAB)[0].astype(float)
    foreign = lab[:, 0] < DARK_FOR_A_FACE * np.median(cheeks[:, 0])
    if _is_colour_photo(image_rgb):
        a, b = lab[:, 1] - 128, lab[:, 2] - 128
        hue = np.degrees(np.arctan2(b, a))
        warm = (np.hypot(a, b) >= SKIN_CHROMA_RANGE[0]) & (hue >= LIP_HUE_RANGE_DEG[0]) & (hue <= LIP_HUE_RANGE_DEG[1])
        foreign |= ~warm
    return foreign
