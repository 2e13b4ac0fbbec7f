"""One natural mouth per viseme from a single photo.

Each viseme is the photo warped, not drawn: a thin-plate spline moves the lips, corners and jaw to the
shape's targets (mouth_shapes.py) and a synthesised interior (mouth_interior.py) fills what the parted lips
uncover. The upper and lower lips are warped as two layers, each anchored *inside its own lip*, so when lips
close over teeth (a smiling photo) both layers stretch lip texture to the contact line and no tooth pixel
can end up between them. Everything outside the feathered mask (mask.py) stays the photo, pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from photoavatar.avatar.landmarks import (
    JAW_LOWER,
    LIPS_INNER,
    LOWER_LIP_INNER,
    LOWER_LIP_OUTER,
    MOUTH_CORNERS,
    NOSE_BOTTOM,
    UPPER_LIP_INNER,
    UPPER_LIP_OUTER,
    Face,
    mouth_metrics,
)
from photoavatar.avatar.mask import MouthMask, mouth_mask, region_outline_px
from photoavatar.avatar.mouth_interior import (
    MouthPalette,
    PhotoTeeth,
    photo_teeth_edge,
    render_interior,
    sample_palette,
)
from photoavatar.avatar.mouth_shapes import (
    RELAXED_REST,
    LipContours,
    MouthFrame,
    MouthShape,
    MouthTarget,
    mouth_target,
    shape_for,
    smile_amount,
)
from photoavatar.avatar.warp import ThinPlateSpline, backward_map, remap_keeping_detail, split_detail
from photoavatar.visemes import VISEMES

INNER_PULL = 0.12  # each lip layer samples its inner edge this far into the lip (fraction of its thickness)
NOSE_ANCHORS = (NOSE_BOTTOM, 98, 327)  # nose base and nostril wings: never move
SHOWS_TEETH_APERTURE = 0.08  # a photo whose lips part this much shows its teeth
MID_WORD_APERTURE = 0.15  # a photo's lips this far apart without a smile: taken while speaking
SMILE_LIFT_W = 0.05  # mouth corners this much above a neutral mouth's: a smiling photo
# Skin rows between nose (0) and upper lip (1): the share of the lip's (sideways, up-down) shift they follow.
UPPER_LIP_SKIN_FOLLOW = {0.3: (0.1, 0.65), 0.7: (0.25, 0.9)}
CHIN_HALF_WIDTH_W = 0.45  # the chin, which moves rigidly with the lower lip, spans this far from the middle
MIN_MOUTH_WIDTH_PX = 40  # below this, the feather and the warp's fade-in leave no room for the lips to move


@dataclass(frozen=True)
class MouthSynthesis:
    frames: dict[str, np.ndarray]  # viseme -> HxWx3 uint8, same size as the input image
    mask: np.ndarray  # HxW float32 in [0,1]: 1 = mouth sprite, 0 = untouched; feathered 8-16 px
    mouth_box: tuple[int, int, int, int]  # x, y, w, h of the mouth region in image pixels
    advice: str | None  # a sentence about the photo kind (e.g. smiling with teeth), or None


def synthesize_mouths(image_rgb: np.ndarray, face: Face, visemes: Sequence[str], *,
                      enlargement: float = 1.0) -> MouthSynthesis:
    """A frame per viseme: the photo with that mouth shape inside a feathered mask, the photo elsewhere.
    `enlargement`: image pixels per pixel of the original photo (a small face enlarged: > 1); the skin's
    grain is kept at that scale."""
    # The splines' linear algebra is tiny: threaded BLAS only adds contention (100x slower on a busy CPU).
    with threadpool_limits(limits=1, user_api="blas"):
        return _synthesize(image_rgb, face, visemes, enlargement)


def _synthesize(image_rgb: np.ndarray, face: Face, visemes: Sequence[str], enlargement: float) -> MouthSynthesis:
    image = _checked_image(image_rgb)
    _check_visemes(visemes)
    frame = _mouth_frame(face)
    region = mouth_mask(image.shape, face, frame)
    palette = sample_palette(image, face, frame)
    lips = _lip_contours(face, frame)
    lips = replace(lips, teeth_edge=photo_teeth_edge(image, lips, frame, palette))
    own_teeth = _own_teeth(image, face, frame, lips, region.box)
    detail_layers = split_detail(image, enlargement)
    frames = {}
    for viseme in visemes:
        shape = shape_for(viseme)
        if shape is None and _taken_mid_word(face, lips):
            shape = RELAXED_REST  # the photo's own open mouth would be the mouth between words
        frames[viseme] = (image.copy() if shape is None
                          else _render(image, face, frame, lips, region, palette, shape, own_teeth, detail_layers))
    return MouthSynthesis(frames, region.mask, _mouth_box(face, image.shape), _advice(face, lips))


def _taken_mid_word(face: Face, lips: LipContours) -> bool:
    """An open mouth without a smile: the photo caught the person speaking."""
    return mouth_metrics(face).aperture >= MID_WORD_APERTURE and smile_amount(lips) < 0.5


def _checked_image(image_rgb: np.ndarray) -> np.ndarray:
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"the mouth synthesis needs an RGB image (HxWx3 uint8), got shape {image.shape} "
                         f"{image.dtype}: convert the photo to 8-bit RGB first")
    return np.ascontiguousarray(image)


def _mouth_frame(face: Face) -> MouthFrame:
    points = np.asarray(face.points_px)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) <= max(MOUTH_CORNERS + LIPS_INNER):
        raise ValueError(f"the face needs the 478 Face Mesh landmarks, got an array of shape {points.shape}")
    frame = MouthFrame.of(points[MOUTH_CORNERS[0]], points[MOUTH_CORNERS[1]])
    if frame.width_px < MIN_MOUTH_WIDTH_PX:
        raise ValueError(f"the mouth is only {frame.width_px:.0f} px wide in this image; mouth shapes need at "
                         f"least {MIN_MOUTH_WIDTH_PX} px: work on a larger crop of the face (about 512 px for "
                         "head and shoulders)")
    return frame


def _check_visemes(visemes: Sequence[str]) -> None:
    unknown = [name for name in visemes if name not in VISEMES]
    if unknown:
        raise ValueError(f"unknown viseme(s) {', '.join(unknown)}; valid names are: {','.join(VISEMES)}")


def _lip_contours(face: Face, frame: MouthFrame) -> LipContours:
    p = face.points_px
    return LipContours(*(frame.to_local(p[list(indices)]) for indices in
                         (UPPER_LIP_OUTER, UPPER_LIP_INNER, LOWER_LIP_INNER, LOWER_LIP_OUTER)))


def _own_teeth(image: np.ndarray, face: Face, frame: MouthFrame, lips: LipContours,
               box: tuple[int, int, int, int]) -> PhotoTeeth | None:
    """The photo's upper teeth inside `box`: inside its open lips, above where its teeth end."""
    if lips.teeth_edge is None:
        return None
    x, y, w, h = box
    opening = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(opening, [np.round(face.points_px[list(LIPS_INNER)] * 4).astype(np.int32)], 1, shift=2)
    opening = cv2.erode(opening, np.ones((3, 3), np.uint8))[y:y + h, x:x + w].astype(np.float32)
    local = _local_grid(frame, box)
    above_edge = np.clip(0.5 + (lips.teeth_edge(local[..., 0]) - local[..., 1]) * frame.width_px, 0.0, 1.0)
    alpha = cv2.GaussianBlur(opening, (0, 0), 0.7) * above_edge
    return PhotoTeeth(image[y:y + h, x:x + w].astype(np.float32), alpha)


def _local_grid(frame: MouthFrame, box: tuple[int, int, int, int]) -> np.ndarray:
    """Mouth-frame coordinates (h, w, 2) of every pixel in `box`."""
    x, y, w, h = box
    return frame.to_local(np.stack(np.meshgrid(np.arange(x, x + w), np.arange(y, y + h)), axis=-1))


def _mouth_box(face: Face, image_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    lips = face.points_px[list(UPPER_LIP_OUTER + LOWER_LIP_OUTER)]
    margin = 0.15 * float(np.ptp(lips[:, 0]))
    x0, y0 = np.floor(lips.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(lips.max(axis=0) + margin).astype(int)
    height, width = image_shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def _advice(face: Face, lips: LipContours) -> str | None:
    if _taken_mid_word(face, lips):
        return ("This photo shows the mouth open, as if taken mid-word: Rest (the mouth between words) is drawn "
                "as a relaxed, nearly closed mouth; a photo with the lips closed gives the most natural Rest.")
    if mouth_metrics(face).aperture >= SHOWS_TEETH_APERTURE:
        return ("This photo shows an open, smiling mouth with teeth; a neutral face with the lips closed or "
                "slightly parted gives the most natural mouth shapes.")
    if lips.smile_lift(lips.upper_inner[[0, -1], 0]).max() > SMILE_LIFT_W:
        return ("This photo shows a smile; a neutral face with the lips closed or slightly parted gives the "
                "most natural rounded mouth shapes (O, U, W).")
    return None


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
        # The cheek beside the corner follows it, further out less: a smile relaxes over the whole cheek.
        near = corner + np.array([[0.2, -0.12], [0.22, 0.0], [0.2, 0.14]]) * (direction, 1.0)
        far = corner + np.array([[0.36, -0.1], [0.38, 0.05]]) * (direction, 1.0)
        below = corner + np.array([[0.06, 0.16], [0.1, 0.3]]) * (direction, 1.0)  # the fold down to the jaw
        pairs.append((near + 0.65 * target.corner_shift[side], near))
        pairs.append((far + 0.4 * target.corner_shift[side], far))
        pairs.append((below + (0.5, 0.2) * target.corner_shift[side], below))
    return pairs + _upper_lip_skin_points(face, frame, lips, target) + _chin_points(face, frame, lips, target)


def _upper_lip_skin_points(face: Face, frame: MouthFrame, lips: LipContours, target: MouthTarget):
    """The skin between nose and lip (a moustache) rides on the upper lip up and down, so its texture moves
    rather than stretches: the stretch goes into the crease under the nose, where skin folds. Sideways it
    follows the lip only partly: rounding pulls the lips, not the moustache, which would streak."""
    nose_v = frame.to_local(face.points_px[NOSE_BOTTOM])[1]
    source_u, target_u = lips.upper_outer[:, 0], target.lips.upper_outer[:, 0]
    outputs, sources = [], []
    for height, (follow_u, follow_v) in UPPER_LIP_SKIN_FOLLOW.items():
        for u in (-0.3, 0.0, 0.3):
            lip_v = np.interp(u, source_u, lips.upper_outer[:, 1])
            skin = np.array([u, nose_v + height * (lip_v - nose_v)])
            lip_shift = np.array([np.interp(u, source_u, target_u) - u,
                                  np.interp(u, source_u, target.lips.upper_outer[:, 1]) - lip_v])
            outputs.append(skin + (follow_u, follow_v) * lip_shift)
            sources.append(skin)
    return [(np.array(outputs), np.array(sources))]


def _chin_points(face: Face, frame: MouthFrame, lips: LipContours, target: MouthTarget):
    """The chin moves as one rigid piece, by a whole number of pixels (resampling at whole pixels keeps every
    hair of a beard sharp); beside the chin the jaw line follows less. The skin stretches or folds below the
    jaw line, between it and the still outline of the mask (into the neck, which the chin covers)."""
    drop = _whole_pixels(frame, target.jaw_drop)
    jaw = frame.to_local(face.points_px[list(JAW_LOWER)])
    jaw = jaw[np.abs(jaw[:, 0]) <= 0.95]
    # Toward the mask's side the jaw line eases to still, so that it never bends where the warp fades out.
    beyond_chin = np.clip((np.abs(jaw[:, 0]) - CHIN_HALF_WIDTH_W) / (0.95 - CHIN_HALF_WIDTH_W), 0.0, 1.0)
    follow = 1.0 - 0.85 * beyond_chin * beyond_chin * (3 - 2 * beyond_chin)
    pairs = [(jaw + drop * follow[:, None], jaw)]
    # Inside the chin, between the lower lip and the jaw line: the same shift everywhere.
    for u in (-0.3, -0.15, 0.0, 0.15, 0.3):
        lip_v = np.interp(u, lips.lower_outer[:, 0], lips.lower_outer[:, 1])
        jaw_v = np.interp(u, jaw[:, 0], jaw[:, 1])
        inside = np.array([[u, lip_v + k * (jaw_v - lip_v)] for k in (0.35, 0.7)])
        pairs.append((inside + drop, inside))
    return pairs


def _whole_pixels(frame: MouthFrame, drop_w: float) -> np.ndarray:
    """The jaw drop (mouth widths, along v) as a shift in mouth-frame units that is whole pixels in the image."""
    shift_px = np.round(drop_w * frame.width_px * frame.v_axis)
    return frame.to_local(frame.center_px + shift_px)


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
            palette: MouthPalette, shape: MouthShape, own_teeth: PhotoTeeth | None,
            detail_layers: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    target = mouth_target(lips, shape)
    x, y, w, h = region.box
    weight = region.warp_weight[y:y + h, x:x + w]
    layers = {}
    for layer in ("upper", "lower"):
        output_px, source_px = _control_points(face, frame, lips, target, layer)
        spline = ThinPlateSpline.fit(output_px, source_px)
        layers[layer] = remap_keeping_detail(detail_layers, *backward_map(spline, region.box, weight))
    local = _local_grid(frame, region.box)
    u, v = local[..., 0], local[..., 1]
    composed = _join_lips(layers["upper"], layers["lower"], u, v, target, frame.width_px)
    _paint_interior(composed, u, v, target, palette, frame.width_px, own_teeth)
    out = image.copy()
    moved = weight > 0
    out[y:y + h, x:x + w][moved] = np.clip(np.round(composed[moved]), 0, 255).astype(np.uint8)
    return out


def _paint_interior(rgb: np.ndarray, u: np.ndarray, v: np.ndarray, target: MouthTarget, palette: MouthPalette,
                    width_px: float, own_teeth: PhotoTeeth | None) -> None:
    """Draw the mouth interior into `rgb`, computing only the rows and columns the opening can reach."""
    g = target.interior
    margin = 2.0 / width_px
    inside = ((u >= g.u_knots[0] - margin) & (u <= g.u_knots[-1] + margin)
              & (v >= g.upper_lip_v.min() - margin) & (v <= g.lower_lip_v.max() + margin))
    if not inside.any():
        return
    rows, cols = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
    window = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    if own_teeth is not None:
        own_teeth = PhotoTeeth(own_teeth.rgb[window], own_teeth.alpha[window])
    interior, coverage = render_interior(u[window], v[window], g, palette, width_px, own_teeth)
    rgb[window] = rgb[window] * (1 - coverage[..., None]) + interior * coverage[..., None]


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
