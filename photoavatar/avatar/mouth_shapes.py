"""The geometry of each viseme: a small table of numbers relative to the mouth width.

All lengths are fractions of the source mouth width (corner to corner). A shape says how wide the lips are,
how far apart their inner edges are at the middle, how much of that opening comes from raising the upper lip
(the rest is the jaw dropping), how round the opening is, and how the lips pout. The teeth are not in this
table: they follow from the geometry (upper teeth stay with the skull, lower teeth ride on the jaw), so a
shape shows as much tooth as its lips uncover.

Rest is the photo itself (the idle video shows it), so it has no entry: `shape_for("Rest")` is None.

`mouth_target` turns a shape and the photo's lip contours into where every lip point, the corners and the
jaw go, plus the curves the mouth interior is drawn between. The lips' inner edges are smooth curves (a
polynomial contact line plus an opening profile), never the jittery landmarks themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class MouthShape:
    width_scale: float  # corner-to-corner width / source width
    gap_w: float  # inner-lip gap at the middle / mouth width (0 = lips pressed together)
    upper_share: float  # part of the gap made by raising the upper lip (0..1); the jaw makes the rest
    roundness: float  # 0 = flat, spread opening (E); 1 = round opening (O, U)
    pout: float  # lips pushed forward: they look fuller (0..1)
    relax_smile: float  # 0..1: how much of a smile (raised corners, lips pulled off the teeth) to take back
    lower_lip_to_teeth: bool = False  # FV: the lower lip rises to the upper teeth
    tongue: str | None = None  # "up" (L: tip behind the upper teeth), "between" (TH: tip between the teeth)
    press_w: float = 0.0  # MBP: lips pressed, a little thinner (fraction of mouth width; the lower lip, on the
    # moving jaw, gives more of it, so that the skin under the nose is not stretched)
    teeth_gap_w: float = 0.0  # upper to lower incisor edge at the middle (negative: overlap); sets the jaw


def _shape(width_scale: float, gap_w: float, upper_share: float, roundness: float, pout: float,
           relax_smile: float, teeth_gap_w: float, **extras) -> MouthShape:
    """One row of the table below, in its column order."""
    return MouthShape(width_scale, gap_w, upper_share, roundness, pout, relax_smile, teeth_gap_w=teeth_gap_w,
                      **extras)


# Columns: width_scale, gap_w, upper_share, roundness, pout, relax_smile, teeth_gap_w (MouthShape says what
# each is), then what only some shapes have.
SHAPES: dict[str, MouthShape] = {
    "AI": _shape(0.94, 0.40, 0.20, 0.35, 0.00, 0.2, 0.22),  # wide open jaw: "father", "eye"
    "E": _shape(1.10, 0.17, 0.35, 0.00, 0.00, 0.0, 0.03),  # spread lips, teeth close: "see", "bed"
    "U": _shape(0.68, 0.13, 0.30, 1.00, 0.90, 1.0, 0.03),  # small round opening, lips forward: "you", "food"
    "O": _shape(0.76, 0.30, 0.22, 1.00, 0.60, 1.0, 0.15),  # round open: "go", "law"
    "MBP": _shape(0.97, 0.00, 0.45, 0.00, 0.00, 0.0, -0.02, press_w=0.012),  # bilabial closure: "map", "bob"
    # lower lip under the upper teeth: "five", "very"
    "FV": _shape(0.98, 0.03, 0.80, 0.00, 0.00, 0.2, -0.02, lower_lip_to_teeth=True),
    "L": _shape(0.95, 0.26, 0.20, 0.30, 0.00, 0.2, 0.12, tongue="up"),  # tongue tip behind the upper teeth: "let"
    "WQ": _shape(0.64, 0.08, 0.40, 1.00, 1.00, 1.0, 0.00),  # tight rounding, nearly closed: "we", "queen"
    "R": _shape(0.84, 0.15, 0.35, 0.70, 0.45, 0.6, 0.03),  # slight rounding, teeth near: "red"
    "CH": _shape(0.88, 0.15, 0.45, 0.50, 0.50, 0.5, 0.00),  # teeth together, lips apart: "chin", "she", "jam"
    # tongue tip between the teeth: "think", "this"
    "TH": _shape(0.96, 0.17, 0.30, 0.20, 0.00, 0.2, 0.06, tongue="between"),
}


# Rest for a photo taken mid-word: lips relaxed, just parted, teeth together.
RELAXED_REST = _shape(1.0, 0.02, 0.3, 0.2, 0.0, 0.0, 0.0)


def shape_for(viseme: str) -> MouthShape | None:
    """The shape of a viseme; None for Rest (the photo's own mouth)."""
    if viseme == "Rest":
        return None
    try:
        return SHAPES[viseme]
    except KeyError:
        raise ValueError(f"no mouth shape for viseme {viseme!r}; known: Rest, {', '.join(SHAPES)}") from None


OVERBITE_W = 0.03  # upper incisors overlap the lower ones by this much when the teeth are together
UPPER_TEETH_BELOW_CONTACT_W = 0.015  # upper incisor edges sit just below where closed lips meet
# How far the chin can drop for any shape, as a fraction of the mouth width (the mask must cover it).
MAX_JAW_DROP_W = max(shape.teeth_gap_w for shape in SHAPES.values()) + OVERBITE_W + 0.04
MAX_JAW_RISE_W = 0.45  # closing a photo taken mid-word raises the chin at most this far
SMILE_JAW_RISE_SHARE = 0.6  # closing a broad smile, the jaw rises this share of the lower lip's rise


@dataclass(frozen=True)
class MouthFrame:
    """The coordinates the table is in: origin between the mouth corners, u along the mouth (left to right in
    the image), v perpendicular to it (down the face), both in units of the source mouth width. Using the
    mouth's own axis keeps shapes right on tilted heads."""

    center_px: np.ndarray  # (2,)
    u_axis: np.ndarray  # (2,) unit vector, left corner -> right corner
    v_axis: np.ndarray  # (2,) unit vector, down the face
    width_px: float

    @classmethod
    def of(cls, left_corner_px: np.ndarray, right_corner_px: np.ndarray) -> MouthFrame:
        along = np.asarray(right_corner_px, float) - np.asarray(left_corner_px, float)
        width = float(np.linalg.norm(along))
        if width < 1.0:
            raise ValueError("the mouth corners coincide: the face landmarks are not usable for a mouth")
        u_axis = along / width
        return cls((np.asarray(left_corner_px, float) + right_corner_px) / 2, u_axis,
                   np.array([-u_axis[1], u_axis[0]]), width)

    def to_local(self, points_px: np.ndarray) -> np.ndarray:
        d = np.asarray(points_px, float) - self.center_px
        return np.stack([d @ self.u_axis, d @ self.v_axis], axis=-1) / self.width_px

    def to_px(self, points_uv: np.ndarray) -> np.ndarray:
        uv = np.asarray(points_uv, float) * self.width_px
        return self.center_px + uv[..., :1] * self.u_axis + uv[..., 1:2] * self.v_axis


SMILE_FULL_LIFT_W = 0.06  # mouth corners this far above a neutral mouth's (mouth widths): a broad smile
ROUND_LESS_ON_SMILE = 0.6  # on a broad smile a rounded shape gives back this share of its narrowing
LOWER_OUTER_FOLLOW = 0.85  # the lower lip's outer edge (and the chin) move this share of its inner edge's move
UPPER_OUTER_FOLLOW = 0.45  # the upper lip's outer edge moves this share of its inner edge's move
FV_LIP_BELOW_CONTACT_W = 0.05  # FV: the lower lip meets the upper teeth at most this far below the lips' contact
CONTACT_SHARE = 0.15  # closed lips meet this far down the source opening (the jaw does most of the closing)


@dataclass(frozen=True)
class InteriorGeometry:
    """Curves v(u) of one mouth shape (mouth-frame units), sampled at increasing `u_knots`."""

    u_knots: np.ndarray
    upper_lip_v: np.ndarray  # inner edge of the upper lip
    lower_lip_v: np.ndarray  # inner edge of the lower lip
    upper_teeth_edge_v: np.ndarray  # biting edge of the upper incisors (fixed to the skull)
    lower_teeth_edge_v: np.ndarray  # top edge of the lower incisors (moves with the jaw)
    tongue: str | None  # None, "up" (L) or "between" (TH)
    corners_u: tuple[float, float]  # where the inner lip edges meet
    shade: float = 1.0  # light reaching into the mouth: lips pushed forward shade the teeth


@dataclass(frozen=True)
class LipContours:
    """The four lip contours, 11 points each from the left corner to the right, in mouth-frame units."""

    upper_outer: np.ndarray
    upper_inner: np.ndarray
    lower_inner: np.ndarray
    lower_outer: np.ndarray
    teeth_edge: np.polynomial.Polynomial | None = None  # upper teeth edge v(u) where the photo shows it

    @property
    def midline_u(self) -> float:
        """Where the middle of the lips is (landmarks 0 and 17): 0 facing the camera, toward the far corner
        on a turned head, whose far half of the mouth is foreshortened."""
        middle = len(self.upper_outer) // 2
        return float((self.upper_outer[middle, 0] + self.lower_outer[middle, 0]) / 2)

    def widened_u(self, u: np.ndarray, scale: float) -> np.ndarray:
        """u positions scaled about the midline: a shape's width change turns with the head, so that the far
        side of the mouth moves less than the near side, as it does in 3D seen at an angle."""
        middle = self.midline_u
        return middle + (np.asarray(u, dtype=float) - middle) * scale

    @property
    def contact_v(self) -> np.ndarray:
        """Where the lips would meet if closed, per contour index."""
        return self.upper_inner[:, 1] + CONTACT_SHARE * (self.lower_inner[:, 1] - self.upper_inner[:, 1])

    @cached_property
    def contact_curve(self) -> np.polynomial.Polynomial:
        """The contact line as a smooth v(u): landmarks jitter by a pixel, a drawn lip edge must not."""
        return np.polynomial.Polynomial.fit(self.upper_inner[:, 0], self.contact_v, deg=4)

    @cached_property
    def opening_middle_curve(self) -> np.polynomial.Polynomial:
        """The line halfway between the inner lip edges, v(u): where the corners are, relative to the middle
        of the mouth, whether the mouth is closed, open mid-word or open in a smile."""
        middle = (self.upper_inner[:, 1] + self.lower_inner[:, 1]) / 2
        return np.polynomial.Polynomial.fit(self.upper_inner[:, 0], middle, deg=4)

    def smile_lift(self, u: np.ndarray) -> np.ndarray:
        """How far the mouth at u sits above a neutral mouth's (corners raised by a smile)."""
        curve = self.opening_middle_curve
        neutral = curve(0.0) - 0.03 * (np.asarray(u) / 0.5) ** 2
        return np.maximum(0.0, neutral - curve(u))

    def relaxed_over_teeth(self, u: np.ndarray) -> np.ndarray:
        """A broad smile pulls the lips off long teeth; speaking, they relax and meet lower, over them."""
        if self.teeth_edge is None:
            return np.zeros_like(np.asarray(u, dtype=float))
        middle = np.clip(1 - (np.asarray(u) / 0.45) ** 2, 0.0, 1.0)  # the corners stay where they are
        return 0.5 * middle * np.maximum(0.0, self.teeth_edge(u) - self.contact_curve(u))

    def upper_teeth_edge(self, u: np.ndarray) -> np.ndarray:
        """Biting edge of the upper teeth: fixed to the skull, highest at the canines (the smile arc)."""
        if self.teeth_edge is not None:
            return self.teeth_edge(np.asarray(u))
        return self.contact_curve(0.0) + UPPER_TEETH_BELOW_CONTACT_W - 0.05 * (np.asarray(u) / 0.45) ** 2


@dataclass(frozen=True)
class MouthTarget:
    lips: LipContours  # where the lips go (mouth-frame units)
    jaw_drop: float  # how far the chin goes down (mouth widths; negative: up, closing an open photo)
    corner_shift: np.ndarray  # (2, 2) displacement of the left and right corners
    interior: InteriorGeometry


def _opening_profile(x: np.ndarray, roundness: float) -> np.ndarray:
    """Opening height across the mouth (1 in the middle, 0 at the corners): a lens tapering into the corners
    for spread shapes, an oval for round ones."""
    power = 2.5 - 0.5 * roundness
    taper = 1.2 - 0.6 * roundness
    return np.clip(1 - np.abs(x) ** power, 0.0, 1.0) ** taper


@dataclass(frozen=True)
class LipCurves:
    """Smooth inner-lip edges v(u') of one shape, u' in output (target) mouth-frame units."""

    lips: LipContours
    shape: MouthShape

    @property
    def corners_u(self) -> tuple[float, float]:
        corners = self.lips.upper_inner[[0, -1], 0]
        return tuple(float(c) for c in self.lips.widened_u(corners, self.shape.width_scale))

    def contact(self, u: np.ndarray) -> np.ndarray:
        source_u = self.lips.widened_u(u, 1.0 / self.shape.width_scale)
        relaxed = self.lips.smile_lift(source_u) + self.lips.relaxed_over_teeth(source_u)
        return self.lips.contact_curve(source_u) + self.shape.relax_smile * relaxed

    def opening(self, u: np.ndarray) -> np.ndarray:
        left, right = self.corners_u
        middle = self.lips.midline_u
        # Rounded, pushed-forward lips touch near the corners: only the middle of the mouth opens. The opening
        # is centred on the lips' midline: on a turned head the far half of the mouth is the shorter one.
        closing = 1 - 0.4 * self.shape.roundness * self.shape.pout
        u = np.asarray(u)
        half_width = np.where(u < middle, middle - left, right - middle) * closing
        x = (u - middle) / np.maximum(half_width, 1e-6)
        return self.shape.gap_w * _opening_profile(x, self.shape.roundness)

    def upper(self, u: np.ndarray) -> np.ndarray:
        if self.shape.lower_lip_to_teeth:  # FV: the upper lip shows just the tips of the teeth (it never goes
            return np.minimum(self.lower(u) - self.opening(u), self.contact(u))  # below where closed lips meet)
        return self.contact(u) - self.shape.upper_share * self.opening(u)

    def lower(self, u: np.ndarray) -> np.ndarray:
        if self.shape.lower_lip_to_teeth:
            # Up to the upper teeth; the long teeth of a broad smile it covers from the front instead, so that
            # the upper lip need not be stretched down over them.
            contact = self.contact(u)
            return np.clip(self.lips.upper_teeth_edge(u), contact, contact + FV_LIP_BELOW_CONTACT_W)
        lower = self.contact(u) + (1 - self.shape.upper_share) * self.opening(u)
        if self.shape.tongue == "between":  # room under the upper teeth for the tongue tip
            lower = np.maximum(lower, self.lips.upper_teeth_edge(u) + 0.5 * self.opening(u))
        return lower


def smile_amount(lips: LipContours) -> float:
    """0 for a neutral mouth, 1 for a broad smile (corners raised by SMILE_FULL_LIFT_W or more)."""
    lift = float(lips.smile_lift(lips.upper_inner[[0, -1], 0]).max())
    return float(np.clip(lift / SMILE_FULL_LIFT_W, 0.0, 1.0))


def for_this_mouth(shape: MouthShape, lips: LipContours) -> MouthShape:
    """A rounded shape on a smiling photo rounds less: the smile's cheeks cannot follow a full pucker inside
    the mask, and a small round mouth in an unchanged smile reads as a grimace."""
    if shape.roundness < 0.5:
        return shape
    keep_back = ROUND_LESS_ON_SMILE * smile_amount(lips)
    return replace(shape, width_scale=shape.width_scale + (1.0 - shape.width_scale) * keep_back)


def mouth_target(lips: LipContours, shape: MouthShape) -> MouthTarget:
    """Where the lips, corners and jaw go for one shape (mouth-frame units)."""
    shape = for_this_mouth(shape, lips)
    curves = LipCurves(lips, shape)
    def scaled(points: np.ndarray) -> np.ndarray:  # narrower or wider about the lips' midline
        return np.column_stack([lips.widened_u(points[:, 0], shape.width_scale), points[:, 1]])

    upper_inner, lower_inner = scaled(lips.upper_inner), scaled(lips.lower_inner)
    upper_inner[:, 1] = curves.upper(upper_inner[:, 0])
    lower_inner[:, 1] = curves.lower(lower_inner[:, 0])
    for contour in (upper_inner, lower_inner):  # both lips meet exactly at the corners
        contour[[0, -1], 1] = curves.contact(contour[[0, -1], 0])
    upper_thickness = lips.upper_inner[:, 1] - lips.upper_outer[:, 1]
    lower_thickness = lips.lower_outer[:, 1] - lips.lower_inner[:, 1]
    upper_outer = scaled(lips.upper_outer)
    # The red of the upper lip stretches more than the skin above it: its outer edge moves part of the way.
    upper_outer[:, 1] += (UPPER_OUTER_FOLLOW * (upper_inner[:, 1] - lips.upper_inner[:, 1])
                          - 0.15 * shape.pout * upper_thickness + 0.5 * shape.press_w)
    lower_outer = scaled(lips.lower_outer)
    if shape.lower_lip_to_teeth:  # rolled in under the teeth: less of the lower lip shows
        lower_outer[:, 1] = lower_inner[:, 1] + 0.75 * lower_thickness
    else:
        lower_outer[:, 1] += (LOWER_OUTER_FOLLOW * (lower_inner[:, 1] - lips.lower_inner[:, 1])
                              + 0.15 * shape.pout * lower_thickness - 1.5 * shape.press_w)
    corner_lift = upper_inner[[0, -1], 1] - lips.contact_v[[0, -1]]
    for contour in (upper_outer, lower_outer):  # the outer corners move with the inner ones
        contour[[0, -1], 1] = lips.upper_outer[[0, -1], 1] + corner_lift
    target = LipContours(upper_outer, upper_inner, lower_inner, lower_outer)
    corner_shift = upper_outer[[0, -1]] - lips.upper_outer[[0, -1]]
    # The lower lip rides on the jaw: the chin moves down as far as the lower lip's middle, as one piece. To
    # close a photo open mid-word the jaw rises as far; a broad smile's lips are parted over teeth that are
    # nearly together, so there the lip stretches up over the lower teeth and the jaw rises only part of the
    # way (all of it would stretch the neck and collar below the chin).
    middle = len(lower_outer) // 2
    lip_move = float(lower_outer[middle, 1] - lips.lower_outer[middle, 1])
    rise_share = 1.0 - (1.0 - SMILE_JAW_RISE_SHARE) * smile_amount(lips)
    jaw_drop = float(np.clip(lip_move if lip_move > 0 else rise_share * lip_move, -MAX_JAW_RISE_W, MAX_JAW_DROP_W))
    return MouthTarget(target, jaw_drop, corner_shift, _interior(curves))


def _interior(curves: LipCurves) -> InteriorGeometry:
    u = np.linspace(*curves.corners_u, 81)
    upper_edge = curves.lips.upper_teeth_edge(u)
    # The lower incisors ride on the jaw, below the upper ones' middle; their arch curves down to the sides.
    lower_edge = float(curves.lips.upper_teeth_edge(0.0)) + curves.shape.teeth_gap_w + 0.03 * (u / 0.45) ** 2
    return InteriorGeometry(u, curves.upper(u), curves.lower(u), upper_edge, lower_edge, curves.shape.tongue,
                            curves.corners_u, shade=1 - 0.5 * curves.shape.pout)
