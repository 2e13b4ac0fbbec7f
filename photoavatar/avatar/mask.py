"""The feathered mask that blends the mouth sprites into the photo, and the warp's weight inside it.

The region covers what moves when a person speaks: the lips, the skin around them up to the nose, the cheeks
beside the corners, and the jaw and chin down to below where the chin goes when the jaw is fully open. Its
edge is a Gaussian feather (10 %-90 % ramp of about 11 px). The warp weight is exactly zero until the mask
has reached 1, so inside the feather the sprite *is* the photo and the blend shows no seam.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from photoavatar.avatar.landmarks import JAW_LOWER, NOSE_BOTTOM, Face
from photoavatar.avatar.mouth_shapes import MAX_JAW_DROP_W, MouthFrame

FEATHER_SIGMA_PX = 4.5  # a Gaussian edge: its 10 %-90 % ramp is 2.56 sigma = 11.5 px
FULL_MASK_DEPTH_PX = 3.2 * FEATHER_SIGMA_PX  # this far inside the edge the mask is > 0.999
FULL_MASK = 0.999  # from here in, the sprite may differ from the photo
BLEND_FLOOR = 1e-3  # below this the mask is 0: the frame is the untouched photo

# Region outline in mouth-frame units (mouth widths): how far it reaches beyond the moving parts.
ABOVE_NOSE_BOTTOM_W = 0.10
SIDE_REACH_W = 1.0
BELOW_DROPPED_CHIN_W = 0.32
WEIGHT_RAMP_W = 0.15  # the warp fades in over this distance once the mask is full


@dataclass(frozen=True)
class MouthMask:
    mask: np.ndarray  # HxW float32 in [0, 1]
    warp_weight: np.ndarray  # HxW float32 in [0, 1]: 0 wherever mask < 1
    box: tuple[int, int, int, int]  # x, y, w, h enclosing every nonzero mask pixel


def region_outline_px(face: Face, frame: MouthFrame) -> np.ndarray:
    """The convex outline (n, 2) of the moving lower face, in image pixels."""
    nose_v = frame.to_local(face.points_px[NOSE_BOTTOM])[1] - ABOVE_NOSE_BOTTOM_W
    top = [(-0.9 * SIDE_REACH_W, nose_v), (0.0, nose_v), (0.9 * SIDE_REACH_W, nose_v)]
    sides = [(-SIDE_REACH_W, 0.1), (SIDE_REACH_W, 0.1)]
    jaw = frame.to_local(face.points_px[list(JAW_LOWER)])
    jaw = jaw[np.abs(jaw[:, 0]) <= SIDE_REACH_W]
    below = jaw + (0.0, MAX_JAW_DROP_W + BELOW_DROPPED_CHIN_W)
    outline = np.concatenate([np.array(top + sides), jaw, below])
    hull = cv2.convexHull(frame.to_px(outline).astype(np.float32))
    return hull.reshape(-1, 2).astype(float)


def mouth_mask(image_shape: tuple[int, ...], face: Face, frame: MouthFrame) -> MouthMask:
    """The feathered mask and warp weight for a face in an image of `image_shape`."""
    height, width = image_shape[:2]
    region = np.zeros((height, width), np.uint8)
    cv2.fillPoly(region, [np.round(region_outline_px(face, frame) * 16).astype(np.int32)], 1, shift=4)
    if not region.any():
        raise ValueError("the mouth region lies outside the image: crop the photo with the whole face in it")
    mask = cv2.GaussianBlur(region.astype(np.float32), (0, 0), FEATHER_SIGMA_PX)
    mask[mask < BLEND_FLOOR] = 0.0
    inside_px = cv2.distanceTransform(region, cv2.DIST_L2, 5)
    ramp = np.clip((inside_px - FULL_MASK_DEPTH_PX) / (WEIGHT_RAMP_W * frame.width_px), 0.0, 1.0)
    # At the outline's corners the blur stays under 1 a little deeper: hold still there too.
    weight = (ramp * ramp * (3 - 2 * ramp) * (mask >= FULL_MASK)).astype(np.float32)
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
    return MouthMask(mask, weight, box)


def ramp_width_px(profile: np.ndarray) -> float:
    """The 10 %-90 % rise distance (pixels) of a mask profile that goes from 0 to 1."""
    profile = np.asarray(profile, float)
    positions = np.arange(len(profile), dtype=float)
    order = np.argsort(profile, kind="stable")
    rise_10 = np.interp(0.1, profile[order], positions[order])
    rise_90 = np.interp(0.9, profile[order], positions[order])
    return float(abs(rise_90 - rise_10))
