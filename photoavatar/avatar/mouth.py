"""One natural mouth per viseme from a single photo.

Each viseme is the photo warped, not drawn: a thin-plate spline moves the lips, corners and jaw to the
shape's targets (mouth_shapes.py) and a synthesised interior (mouth_interior.py) fills what the parted lips
uncover. The upper and lower lips are warped as two layers, each anchored *inside its own lip*, so when lips
close over teeth (a smiling photo) both layers stretch lip texture to the contact line and no tooth pixel
can end up between them. Everything outside the feathered mask (mask.py) stays the photo, pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from photoavatar.avatar.landmarks import (JAW_LOWER, LOWER_LIP_INNER, LOWER_LIP_OUTER, MOUTH_CORNERS, NOSE_BOTTOM,
                                          UPPER_LIP_INNER, UPPER_LIP_OUTER, Face, mouth_metrics)
from photoavatar.avatar.mask import MouthMask, mouth_mask, region_outline_px
from photoavatar.avatar.mouth_interior import InteriorGeometry, MouthPalette, render_interior, sample_palette
from photoavatar.avatar.mouth_shapes import (OVERBITE_W, UPPER_TEETH_BELOW_CONTACT_W, MouthFrame, MouthShape,
                                             shape_for)
from photoavatar.avatar.warp import ThinPlateSpline, backward_map, remap
from photoavatar.visemes import REST, VISEMES

CONTACT_SHARE = 0.4  # closed lips meet this far down the source opening (the jaw does most of the closing)
INNER_PULL = 0.12  # each lip layer samples its inner edge this far into the lip (fraction of its thickness)
NOSE_ANCHORS = (NOSE_BOTTOM, 98, 327)  # nose base and nostril wings: never move
SHOWS_TEETH_APERTURE = 0.08
SMILE_LIFT_W = 0.05


@dataclass(frozen=True)
class MouthSynthesis:
    frames: dict[str, np.ndarray]  # viseme -> HxWx3 uint8, same size as the input image
    mask: np.ndarray  # HxW float32 in [0,1]: 1 = mouth sprite, 0 = untouched; feathered 8-16 px
    mouth_box: tuple[int, int, int, int]  # x, y, w, h of the mouth region in image pixels
    advice: str | None  # a sentence about the photo kind (e.g. smiling with teeth), or None


@dataclass(frozen=True)
class LipContours:
    """The four lip contours, 11 points each from the left corner to the right, in mouth-frame units."""

    upper_outer: np.ndarray
    upper_inner: np.ndarray
    lower_inner: np.ndarray
    lower_outer: np.ndarray

    @property
    def contact_v(self) -> np.ndarray:
        """Where the lips would meet if closed, per contour index."""
        return self.upper_inner[:, 1] + CONTACT_SHARE * (self.lower_inner[:, 1] - self.upper_inner[:, 1])

    @cached_property
    def contact_curve(self) -> np.polynomial.Polynomial:
        """The contact line as a smooth v(u): landmarks jitter by a pixel, a drawn lip edge must not."""
        return np.polynomial.Polynomial.fit(self.upper_inner[:, 0], self.contact_v, deg=4)

    def smile_lift(self, u: np.ndarray) -> np.ndarray:
        """How far the contact line at u sits above a neutral mouth's (corners raised by a smile)."""
        curve = self.contact_curve
        neutral = curve(0.0) - 0.03 * (np.asarray(u) / 0.5) ** 2
        return np.maximum(0.0, neutral - curve(u))


@dataclass(frozen=True)
class MouthTarget:
    lips: LipContours  # where the lips go (mouth-frame units)
    jaw_drop: float  # how far the chin goes down (mouth widths)
    corner_shift: np.ndarray  # (2, 2) displacement of the left and right corners
    interior: InteriorGeometry


def synthesize_mouths(image_rgb: np.ndarray, face: Face, visemes: Sequence[str]) -> MouthSynthesis:
    """A frame per viseme: the photo with that mouth shape inside a feathered mask, the photo elsewhere."""
    image = _checked_image(image_rgb)
    _check_visemes(visemes)
    frame = MouthFrame.of(face.points_px[MOUTH_CORNERS[0]], face.points_px[MOUTH_CORNERS[1]])
    lips = _lip_contours(face, frame)
    region = mouth_mask(image.shape, face, frame)
    palette = sample_palette(image, face, frame)
    frames = {}
    for viseme in visemes:
        shape = shape_for(viseme)
        frames[viseme] = image.copy() if shape is None else _render(image, face, frame, lips, region, palette,
                                                                  shape)
    return MouthSynthesis(frames, region.mask, _mouth_box(face, image.shape), _advice(face, lips))


def _checked_image(image_rgb: np.ndarray) -> np.ndarray:
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"the mouth synthesis needs an RGB image (HxWx3 uint8), got shape {image.shape} "
                         f"{image.dtype}: convert the photo to 8-bit RGB first")
    return np.ascontiguousarray(image)


def _check_visemes(visemes: Sequence[str]) -> None:
    unknown = [name for name in visemes if name not in VISEMES]
    if unknown:
        raise ValueError(f"unknown viseme(s) {', '.join(unknown)}; valid names are: {','.join(VISEMES)}")


def _lip_contours(face: Face, frame: MouthFrame) -> LipContours:
    p = face.points_px
    return LipContours(*(frame.to_local(p[list(indices)]) for indices in
                         (UPPER_LIP_OUTER, UPPER_LIP_INNER, LOWER_LIP_INNER, LOWER_LIP_OUTER)))


def _mouth_box(face: Face, image_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    lips = face.points_px[list(UPPER_LIP_OUTER + LOWER_LIP_OUTER)]
    margin = 0.15 * float(np.ptp(lips[:, 0]))
    x0, y0 = np.floor(lips.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(lips.max(axis=0) + margin).astype(int)
    height, width = image_shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def _advice(face: Face, lips: LipContours) -> str | None:
    if mouth_metrics(face).aperture >= SHOWS_TEETH_APERTURE:
        return ("This photo shows an open, smiling mouth with teeth; a neutral face with the lips closed or "
                "slightly parted gives the most natural mouth shapes.")
    if lips.smile_lift(lips.upper_inner[[0, -1], 0]).max() > SMILE_LIFT_W:
        return ("This photo shows a smile; a neutral face with the lips closed or slightly parted gives the most "
                "natural rounded mouth shapes (O, U, W).")
    return None


# ---- targets --------------------------------------------------------------------------------------------

def _opening_profile(x: np.ndarray, roundness: float) -> np.ndarray:
    """Opening height across the mouth (1 in the middle, 0 at the corners): a lens tapering into the corners
    for spread shapes, an oval for round ones."""
    power = 2.5 - 0.5 * roundness
    taper = 1.2 - 0.6 * roundness
    return np.clip(1 - np.abs(x) ** power, 0.0, 1.0) ** taper


def _upper_teeth_edge(u: np.ndarray, lips: LipContours) -> np.ndarray:
    """Biting edge of the upper teeth: fixed to the skull, highest at the canines (the smile arc)."""
    return lips.contact_curve(0.0) + UPPER_TEETH_BELOW_CONTACT_W - 0.05 * (np.asarray(u) / 0.45) ** 2


@dataclass(frozen=True)
class LipCurves:
    """Smooth inner-lip edges v(u') of one shape, u' in output (target) mouth-frame units."""

    lips: LipContours
    shape: MouthShape

    @property
    def corners_u(self) -> tuple[float, float]:
        scale = self.shape.width_scale
        return float(self.lips.upper_inner[0, 0] * scale), float(self.lips.upper_inner[-1, 0] * scale)

    def contact(self, u: np.ndarray) -> np.ndarray:
        source_u = np.asarray(u) / self.shape.width_scale
        return self.lips.contact_curve(source_u) + self.shape.relax_smile * self.lips.smile_lift(source_u)

    def opening(self, u: np.ndarray) -> np.ndarray:
        left, right = self.corners_u
        half_width = (right - left) / 2
        x = (np.asarray(u) - (left + right) / 2) / half_width
        return self.shape.gap_w * _opening_profile(x, self.shape.roundness)

    def upper(self, u: np.ndarray) -> np.ndarray:
        return self.contact(u) - self.shape.upper_share * self.opening(u)

    def lower(self, u: np.ndarray) -> np.ndarray:
        if self.shape.lower_lip_to_teeth:
            return np.maximum(self.contact(u), _upper_teeth_edge(u, self.lips))
        return self.contact(u) + (1 - self.shape.upper_share) * self.opening(u)


def mouth_target(lips: LipContours, shape: MouthShape) -> MouthTarget:
    """Where the lips, corners and jaw go for one shape (mouth-frame units)."""
    curves = LipCurves(lips, shape)
    scale = np.array([shape.width_scale, 1.0])
    upper_inner, lower_inner = lips.upper_inner * scale, lips.lower_inner * scale
    upper_inner[:, 1] = curves.upper(upper_inner[:, 0])
    lower_inner[:, 1] = curves.lower(lower_inner[:, 0])
    for contour in (upper_inner, lower_inner):  # both lips meet exactly at the corners
        contour[[0, -1], 1] = curves.contact(contour[[0, -1], 0])
    upper_thickness = lips.upper_inner[:, 1] - lips.upper_outer[:, 1]
    lower_thickness = lips.lower_outer[:, 1] - lips.lower_inner[:, 1]
    upper_outer = lips.upper_outer * scale
    upper_outer[:, 1] += (0.6 * (upper_inner[:, 1] - lips.upper_inner[:, 1])
                          - 0.15 * shape.pout * upper_thickness + shape.press_w)
    lower_outer = lips.lower_outer * scale
    if shape.lower_lip_to_teeth:  # rolled in under the teeth: less of the lower lip shows
        lower_outer[:, 1] = lower_inner[:, 1] + 0.75 * lower_thickness
    else:
        lower_outer[:, 1] += (0.85 * (lower_inner[:, 1] - lips.lower_inner[:, 1])
                              + 0.15 * shape.pout * lower_thickness - shape.press_w)
    corner_lift = upper_inner[[0, -1], 1] - lips.contact_v[[0, -1]]
    for contour in (upper_outer, lower_outer):  # the outer corners move with the inner ones
        contour[[0, -1], 1] = lips.upper_outer[[0, -1], 1] + corner_lift
    target = LipContours(upper_outer, upper_inner, lower_inner, lower_outer)
    corner_shift = upper_outer[[0, -1]] - lips.upper_outer[[0, -1]]
    return MouthTarget(target, shape.teeth_gap_w + OVERBITE_W, corner_shift, _interior(curves))


def _interior(curves: LipCurves) -> InteriorGeometry:
    u = np.linspace(*curves.corners_u, 81)
    upper_edge = _upper_teeth_edge(u, curves.lips)
    lower_edge = (curves.lips.contact_curve(0.0) + UPPER_TEETH_BELOW_CONTACT_W + curves.shape.teeth_gap_w
                  + 0.03 * (u / 0.45) ** 2)
    return InteriorGeometry(u, curves.upper(u), curves.lower(u), upper_edge, lower_edge, curves.shape.tongue,
                            curves.corners_u)


# ---- warp -----------------------------------------------------------------------------------------------

def _pulled(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    return inner + INNER_PULL * (outer - inner)


def _control_points(face: Face, frame: MouthFrame, lips: LipContours, target: MouthTarget, layer: str):
    """(output_px, source_px) control points of the upper or lower lip layer."""
    t = target.lips
    pairs = [(t.upper_outer, lips.upper_outer), (t.lower_outer[1:-1], lips.lower_outer[1:-1]),
             (t.upper_inner[[0, -1]], lips.upper_inner[[0, -1]])]
    if layer == "upper":
        pairs.append((t.upper_inner[1:-1], _pulled(lips.upper_inner, lips.upper_outer)[1:-1]))
    else:
        pairs.append((t.lower_inner[1:-1], _pulled(lips.lower_inner, lips.lower_outer)[1:-1]))
    pairs += _cheek_and_jaw_points(face, frame, lips, target)
    output = np.concatenate([frame.to_px(out) for out, _ in pairs])
    source = np.concatenate([frame.to_px(src) for _, src in pairs])
    fixed = np.concatenate([face.points_px[list(NOSE_ANCHORS)], _outline_anchors(face, frame)])
    return np.concatenate([output, fixed]), np.concatenate([source, fixed])


def _cheek_and_jaw_points(face: Face, frame: MouthFrame, lips: LipContours, target: MouthTarget):
    pairs = []
    for side, corner in ((0, lips.upper_outer[0]), (1, lips.upper_outer[-1])):
        direction = -1.0 if side == 0 else 1.0
        cheeks = corner + np.array([[0.2 * direction, -0.12], [0.22 * direction, 0.0], [0.2 * direction, 0.14]])
        pairs.append((cheeks + 0.45 * target.corner_shift[side], cheeks))
    jaw = frame.to_local(face.points_px[list(JAW_LOWER)])
    jaw = jaw[np.abs(jaw[:, 0]) <= 0.95]
    drop = target.jaw_drop * np.clip(1 - 0.35 * np.abs(jaw[:, 0]), 0.4, 1.0)
    pairs.append((jaw + np.stack([np.zeros_like(drop), drop], axis=1), jaw))
    return pairs


def _outline_anchors(face: Face, frame: MouthFrame) -> np.ndarray:
    outline = region_outline_px(face, frame)
    closed = np.concatenate([outline, outline[:1]])
    lengths = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    positions = np.concatenate([[0.0], np.cumsum(lengths)])
    spacing = 0.25 * frame.width_px
    samples = np.arange(0.0, positions[-1], spacing)
    return np.stack([np.interp(samples, positions, closed[:, k]) for k in (0, 1)], axis=1)


# ---- composition ----------------------------------------------------------------------------------------

def _render(image: np.ndarray, face: Face, frame: MouthFrame, lips: LipContours, region: MouthMask,
            palette: MouthPalette, shape: MouthShape) -> np.ndarray:
    target = mouth_target(lips, shape)
    x, y, w, h = region.box
    weight = region.warp_weight[y:y + h, x:x + w]
    layers = {}
    for layer in ("upper", "lower"):
        output_px, source_px = _control_points(face, frame, lips, target, layer)
        spline = ThinPlateSpline.fit(output_px, source_px)
        layers[layer] = remap(image, *backward_map(spline, region.box, weight)).astype(np.float32)
    grid = np.stack(np.meshgrid(np.arange(x, x + w), np.arange(y, y + h)), axis=-1)
    local = frame.to_local(grid)
    u, v = local[..., 0], local[..., 1]
    lips_rgb = _join_lips(layers["upper"], layers["lower"], u, v, target, frame.width_px)
    interior, coverage = render_interior(u, v, target.interior, palette, frame.width_px)
    composed = lips_rgb * (1 - coverage[..., None]) + interior * coverage[..., None]
    out = image.copy()
    moved = weight > 0
    out[y:y + h, x:x + w][moved] = np.clip(np.round(composed[moved]), 0, 255).astype(np.uint8)
    return out


def _join_lips(upper: np.ndarray, lower: np.ndarray, u: np.ndarray, v: np.ndarray, target: MouthTarget,
               width_px: float) -> np.ndarray:
    """Upper layer above the parting line, lower layer below; a soft blend beside the corners."""
    g = target.interior
    knots = g.u_knots
    parting = np.interp(u, knots, (g.upper_lip_v + g.lower_lip_v) / 2)
    beyond_corner = np.maximum(0.0, np.maximum(knots[0] - u, u - knots[-1]))
    softness_px = 0.7 + 0.6 * beyond_corner * width_px
    above = np.clip(0.5 + (parting - v) * width_px / (2 * softness_px), 0.0, 1.0)[..., None]
    joined = upper * above + lower * (1 - above)
    # Pressed lips meet in a faint crease, fading out beyond the corners.
    crease = 0.18 * np.exp(-(((v - parting) * width_px / 1.1) ** 2)) * np.exp(-beyond_corner * 12)
    return joined * (1 - crease[..., None])
