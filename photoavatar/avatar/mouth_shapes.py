"""The geometry of each viseme: a small table of numbers relative to the mouth width.

All lengths are fractions of the source mouth width (corner to corner). A shape says how wide the lips are,
how far apart their inner edges are at the middle, how much of that opening comes from raising the upper lip
(the rest is the jaw dropping), how round the opening is, and how the lips pout. The teeth are not in this
table: they follow from the geometry (upper teeth stay with the skull, lower teeth ride on the jaw), so a
shape shows as much tooth as its lips uncover.

Rest is the photo itself (the idle video shows it), so it has no entry: `shape_for("Rest")` is None.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MouthShape:
    width_scale: float  # corner-to-corner width / source width
    gap_w: float  # inner-lip gap at the middle / mouth width (0 = lips pressed together)
    upper_share: float  # part of the gap made by raising the upper lip (0..1); the jaw makes the rest
    roundness: float  # 0 = flat, spread opening (E); 1 = round opening (O, U)
    pout: float  # lips pushed forward: they look fuller (0..1)
    relax_smile: float  # 0..1: how much of a smiling source's raised corners to take back (rounded shapes)
    lower_lip_to_teeth: bool = False  # FV: the lower lip rises to the upper teeth
    tongue: str | None = None  # "up" (L: tip behind the upper teeth), "between" (TH: tip between the teeth)
    press_w: float = 0.0  # MBP: lips pressed, each lip a little thinner (fraction of mouth width)
    teeth_gap_w: float = 0.0  # upper to lower incisor edges at the middle (negative: they overlap); sets the jaw


SHAPES: dict[str, MouthShape] = {
    # wide open jaw: "father", "eye"
    "AI": MouthShape(width_scale=0.94, gap_w=0.40, upper_share=0.2, roundness=0.35, pout=0.0, relax_smile=0.2,
                     teeth_gap_w=0.22),
    # spread lips, teeth close: "see", "bed"
    "E": MouthShape(width_scale=1.05, gap_w=0.17, upper_share=0.35, roundness=0.0, pout=0.0, relax_smile=0.0,
                    teeth_gap_w=0.03),
    # small round opening, lips pushed forward: "you", "food"
    "U": MouthShape(width_scale=0.68, gap_w=0.13, upper_share=0.3, roundness=1.0, pout=0.9, relax_smile=1.0,
                    teeth_gap_w=0.03),
    # round open: "go", "law"
    "O": MouthShape(width_scale=0.76, gap_w=0.30, upper_share=0.22, roundness=1.0, pout=0.6, relax_smile=1.0,
                    teeth_gap_w=0.15),
    # bilabial closure: "map", "bob"
    "MBP": MouthShape(width_scale=0.97, gap_w=0.0, upper_share=0.45, roundness=0.0, pout=0.0, relax_smile=0.3,
                      press_w=0.012, teeth_gap_w=-0.02),
    # lower lip under the upper teeth: "five", "very"
    "FV": MouthShape(width_scale=0.98, gap_w=0.03, upper_share=0.8, roundness=0.0, pout=0.0, relax_smile=0.2,
                     lower_lip_to_teeth=True, teeth_gap_w=-0.02),
    # tongue tip up behind the upper teeth: "let"
    "L": MouthShape(width_scale=0.95, gap_w=0.26, upper_share=0.2, roundness=0.3, pout=0.0, relax_smile=0.2,
                    tongue="up", teeth_gap_w=0.12),
    # tight rounding, nearly closed: "we", "queen"
    "WQ": MouthShape(width_scale=0.64, gap_w=0.08, upper_share=0.4, roundness=1.0, pout=1.0, relax_smile=1.0,
                     teeth_gap_w=0.0),
    # slight rounding, teeth near: "red"
    "R": MouthShape(width_scale=0.84, gap_w=0.15, upper_share=0.35, roundness=0.7, pout=0.45, relax_smile=0.6,
                    teeth_gap_w=0.03),
    # teeth together, lips apart and a little forward: "chin", "she", "jam"
    "CH": MouthShape(width_scale=0.88, gap_w=0.15, upper_share=0.45, roundness=0.5, pout=0.5, relax_smile=0.5,
                     teeth_gap_w=0.0),
    # tongue tip between the teeth: "think", "this"
    "TH": MouthShape(width_scale=0.96, gap_w=0.17, upper_share=0.3, roundness=0.2, pout=0.0, relax_smile=0.2,
                     tongue="between", teeth_gap_w=0.06),
}


def shape_for(viseme: str) -> MouthShape | None:
    """The shape of a viseme; None for Rest (the photo's own mouth)."""
    if viseme == "Rest":
        return None
    try:
        return SHAPES[viseme]
    except KeyError:
        raise ValueError(f"no mouth shape for viseme {viseme!r}; known: Rest, {', '.join(SHAPES)}") from None


# How far the chin can drop for any shape, as a fraction of the mouth width (the mask must cover it).
OVERBITE_W = 0.03  # upper incisors overlap the lower ones by this much when the teeth are together
UPPER_TEETH_BELOW_CONTACT_W = 0.015  # upper incisor edges sit just below where closed lips meet
MAX_JAW_DROP_W = max(shape.teeth_gap_w for shape in SHAPES.values()) + OVERBITE_W + 0.04


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
