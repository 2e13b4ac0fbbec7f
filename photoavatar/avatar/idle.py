"""The idle loop: a still photo that breathes, sways by a pixel or two and blinks, looping seamlessly.

Every frame is one backward warp of the photo (cv2.remap), built from two parts:
- head motion: a similarity (dx, dy, scale about `pivot`) applied fully over the head and the mouth region and
  faded to zero toward the image border, so the background stays still. Where the weight is 1 the frame shows
  the photo moved by exactly head_track[i], which is what lets the mouth overlay stay locked.
- blink: inside each eye, image rows are pushed down so that the upper lid (and the skin above it) slides over
  the eyeball to the lower lid, then back. A smooth column-wise warp: lid texture, lashes and skin stay real.
All motions are periodic in the loop length, so the frame after the last is the first.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import PchipInterpolator

from photoavatar.avatar.landmarks import Face

FPS = 25
LOOP_S = 5.0
SWAY_PX = (0.9, 0.3)  # amplitudes of the 1st and 2nd harmonic of the sideways sway
BREATH_RISE_PX = 0.6  # the head rises this much at the top of a breath (two breaths per loop)
BREATH_SCALE = 0.003  # and grows by this fraction about the pivot
BLINK_START_S = 2.08
BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_OPEN_S = 0.16, 0.04, 0.20  # closed (94 %) after 120 ms, then it lands
LID_CLOSURE = 0.97  # the lid stops just short of the lower lid's landmarks (they sit on the lash line)
LOCK_MARGIN_PX, LOCK_FADE_PX = 6, 24  # around the locked box: full motion, then easing to the head's weight
BORDER_STILL, BORDER_FADE = 0.03, 0.07  # fractions of the long side: a still band at the border, then a fade

# Eye outlines, corner to corner (MediaPipe FACEMESH_RIGHT_EYE / LEFT_EYE).
EYES = (
    {"upper": (33, 246, 161, 160, 159, 158, 157, 173, 133), "lower": (33, 7, 163, 144, 145, 153, 154, 155, 133)},
    {"upper": (263, 466, 388, 387, 386, 385, 384, 398, 362), "lower": (263, 249, 390, 373, 374, 380, 381, 382, 362)},
)


@dataclass(frozen=True)
class IdleLoop:
    frames: np.ndarray  # N x H x W x 3 uint8
    head_track: tuple[tuple[float, float, float], ...]  # per frame (dx, dy, scale) about pivot
    pivot: tuple[float, float]
    fps: int
    blink_frames: tuple[int, ...]  # frames where the lids are at least half closed

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps


def head_motion(t_s: float, loop_s: float = LOOP_S) -> tuple[float, float, float]:
    """(dx, dy, scale) at time t: zero at t = 0 and periodic in loop_s."""
    phase = 2 * np.pi * t_s / loop_s
    dx = SWAY_PX[0] * np.sin(phase) + SWAY_PX[1] * np.sin(2 * phase)
    breath = (1 - np.cos(2 * phase)) / 2  # 0..1, two breaths per loop
    return float(dx), float(-BREATH_RISE_PX * breath), float(1 + BREATH_SCALE * breath)


def blink_closure(t_s: float) -> float:
    """0 = open, 1 = closed: close in BLINK_CLOSE_S, hold, reopen more slowly (as people do)."""
    return float(_blink_closure(t_s))


def _blink_closure(t_s: float) -> float:
    u = t_s - BLINK_START_S
    if u <= 0 or u >= BLINK_CLOSE_S + BLINK_HOLD_S + BLINK_OPEN_S:
        return 0.0
    if u < BLINK_CLOSE_S:
        return 1.0 - (1.0 - u / BLINK_CLOSE_S) ** 2  # the lid starts fast and lands softly
    if u <= BLINK_CLOSE_S + BLINK_HOLD_S:
        return 1.0
    return 1.0 - _smoothstep((u - BLINK_CLOSE_S - BLINK_HOLD_S) / BLINK_OPEN_S)


def _smoothstep(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def make_idle_loop(image_rgb: np.ndarray, face: Face, locked_box: tuple[int, int, int, int],
                   fps: int = FPS, loop_s: float = LOOP_S) -> IdleLoop:
    """Idle frames of `image_rgb`; `locked_box` (x, y, w, h: the mouth sprite) moves exactly by head_track."""
    weight = motion_weight(image_rgb.shape[:2], face, locked_box)
    bx, by, bw, bh = locked_box
    pivot = (bx + bw / 2, by + bh / 2)
    warp = _HeadWarp(weight, pivot)
    eyes = [_EyeWarp.from_face(face, eye) for eye in EYES]
    frames, track, blinks = [], [], []
    for index in range(round(loop_s * fps)):
        t_s = index / fps
        motion = head_motion(t_s, loop_s)
        closure = blink_closure(t_s)
        frames.append(warp.render(image_rgb, motion, eyes, closure))
        track.append(motion)
        if closure >= 0.5:
            blinks.append(index)
    return IdleLoop(np.stack(frames), tuple(track), pivot, fps, tuple(blinks))


def motion_weight(shape: tuple[int, int], face: Face, locked_box: tuple[int, int, int, int]) -> np.ndarray:
    """1 over the head and the locked box, easing to 0 away from the head and at the image border."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    fx, fy, fw, fh = face.box
    cx, cy = fx + fw / 2, fy + fh * 0.55
    radius = np.sqrt(((xs - cx) / (0.68 * fw)) ** 2 + ((ys - cy) / (0.72 * fh)) ** 2)
    head = 1 - _smoothstep((radius - 1.0) / 0.9)
    border = np.minimum.reduce([xs + 0.5, width - 0.5 - xs, ys + 0.5, height - 0.5 - ys])
    long_side = max(height, width)
    head *= _smoothstep((border - BORDER_STILL * long_side) / (BORDER_FADE * long_side))
    # The locked box moves fully even near the image border (a face at the edge), easing off outside it.
    bx, by, bw, bh = locked_box
    outside_x = np.maximum(np.maximum(bx - xs, xs - (bx + bw - 1)), 0)
    outside_y = np.maximum(np.maximum(by - ys, ys - (by + bh - 1)), 0)
    box = 1 - _smoothstep((np.hypot(outside_x, outside_y) - LOCK_MARGIN_PX) / LOCK_FADE_PX)
    weight = np.maximum(head, box)
    return weight.astype(np.float32)


class _HeadWarp:
    """Backward maps for the head motion, computed only where the weight is not zero (the rest is copied)."""

    def __init__(self, weight: np.ndarray, pivot: tuple[float, float]):
        rows, cols = np.nonzero(weight > 0)
        self.window = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        grid_y, grid_x = np.mgrid[self.window].astype(np.float32)
        self.grid_x, self.grid_y = grid_x, grid_y
        self.weight = weight[self.window]
        # Pixel centres: index i is the continuous point i + 0.5, and the similarity acts on continuous points.
        self.lever_x = self.weight * (grid_x + 0.5 - pivot[0])
        self.lever_y = self.weight * (grid_y + 0.5 - pivot[1])

    def render(self, image_rgb: np.ndarray, motion, eyes, closure: float) -> np.ndarray:
        """Where weight is 1 the source point p appears at pivot + s (p - pivot) + (dx, dy)."""
        dx, dy, scale = motion
        shrink = 1 / scale - 1
        map_x = self.grid_x + shrink * self.lever_x - (dx / scale) * self.weight
        map_y = self.grid_y + shrink * self.lever_y - (dy / scale) * self.weight
        for eye in eyes:
            eye.apply(map_x, map_y, closure)
        frame = image_rgb.copy()
        frame[self.window] = cv2.remap(image_rgb, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        return frame


@dataclass
class _EyeWarp:
    """Column-wise lid warp of one eye, in the photo's (unmoved) coordinates."""

    upper: PchipInterpolator
    lower: PchipInterpolator
    x_range: tuple[float, float]
    above_px: float

    @classmethod
    def from_face(cls, face: Face, eye: dict) -> _EyeWarp:
        upper = _lid_curve(face.points_px[list(eye["upper"])])
        lower = _lid_curve(face.points_px[list(eye["lower"])])
        xs = face.points_px[list(eye["upper"])][:, 0]
        eye_width = float(xs.max() - xs.min())
        return cls(upper, lower, (float(xs.min()), float(xs.max())), 0.55 * eye_width)

    def apply(self, map_x: np.ndarray, map_y: np.ndarray, closure: float) -> None:
        """Replace map_y in the eye's neighbourhood by its blinked source row (in place)."""
        if closure <= 0:
            return
        x0, x1 = self.x_range
        samples = np.linspace(x0, x1, 16)
        top = self.upper(samples).min() - self.above_px - 4
        bottom = self.lower(samples).max() + 2
        region = (map_x > x0) & (map_x < x1) & (map_y > top) & (map_y < bottom)
        if not region.any():
            return
        xs, ys = map_x[region].astype(np.float64), map_y[region].astype(np.float64)
        map_y[region] = self._source_row(xs, ys, closure).astype(np.float32)

    def _source_row(self, xs: np.ndarray, ys: np.ndarray, closure: float) -> np.ndarray:
        lid, low = self.upper(xs), self.lower(xs)
        gap = np.maximum(low - lid, 0.0)
        drop = LID_CLOSURE * closure * gap
        start = lid - self.above_px
        source = ys.copy()
        # Above the lid: rows from `start` to the lid line stretch down to lid + drop (smooth, monotone).
        above = (ys > start) & (ys <= lid + drop)
        source[above] = _invert_stretch(ys[above], start[above], self.above_px, drop[above])
        # Between the moved lid and the lower lid: the visible eyeball shrinks toward the lower lid.
        between = (ys > lid + drop) & (ys < low) & (gap - drop > 1e-6)
        g, d = gap[between], drop[between]
        source[between] = lid[between] + (ys[between] - lid[between] - d) * g / (g - d)
        return source


def _lid_curve(points: np.ndarray) -> PchipInterpolator:
    order = np.argsort(points[:, 0])
    xs, ys = points[order, 0], points[order, 1]
    keep = np.concatenate([[True], np.diff(xs) > 1e-6])
    return PchipInterpolator(xs[keep], ys[keep], extrapolate=True)


def _invert_stretch(y_out, start, span, drop):
    """Solve y + drop * smoothstep((y - start) / span) = y_out for y (monotone, so Newton converges)."""
    y = start + (y_out - start) * span / (span + drop)
    for _ in range(6):
        u = np.clip((y - start) / span, 0, 1)
        f = y + drop * u * u * (3 - 2 * u) - y_out
        slope = 1 + drop * 6 * u * (1 - u) / span
        y = y - f / slope
    return y
