"""A smooth thin-plate-spline warp of an image region, driven by control points and evaluated with cv2.remap.

The spline maps *output* positions to *source* positions (a backward map), so every output pixel samples the
photo once and the warp never leaves holes. A thin plate bends smoothly through its control points, which
avoids the kinks a triangle mesh makes at the mouth corners. A weight field multiplies the displacement, so
the warp is exactly the identity wherever the weight is zero (the feathered edge of the mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def _kernel(squared_distance: np.ndarray) -> np.ndarray:
    # U(r) = r^2 log r^2 (the thin-plate energy's Green function); 0 at r = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        values = squared_distance * np.log(squared_distance)
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass(frozen=True)
class ThinPlateSpline:
    """f(p) = affine(p) + sum_i w_i U(|p - c_i|), in coordinates normalised by `scale_px`."""

    centers: np.ndarray  # (n, 2) normalised output positions
    weights: np.ndarray  # (n, 2)
    affine: np.ndarray  # (3, 2)
    origin_px: np.ndarray  # (2,)
    scale_px: float

    @classmethod
    def fit(cls, output_px: np.ndarray, source_px: np.ndarray, smoothing: float = 1e-4) -> ThinPlateSpline:
        """The spline that sends each output control point to its source point."""
        output_px = np.asarray(output_px, float)
        source_px = np.asarray(source_px, float)
        if output_px.shape != source_px.shape or output_px.ndim != 2 or output_px.shape[1] != 2:
            raise ValueError("warp control points must be two (n, 2) arrays of the same shape")
        if len(output_px) < 3:
            raise ValueError("a thin-plate warp needs at least 3 control points")
        origin = output_px.mean(axis=0)
        scale = float(np.ptp(output_px, axis=0).max()) or 1.0
        centers = (output_px - origin) / scale
        targets = (source_px - origin) / scale
        n = len(centers)
        diff = centers[:, None, :] - centers[None, :, :]
        system = np.zeros((n + 3, n + 3))
        system[:n, :n] = _kernel((diff**2).sum(-1)) + smoothing * np.eye(n)
        system[:n, n] = 1.0
        system[:n, n + 1:] = centers
        system[n, :n] = 1.0
        system[n + 1:, :n] = centers.T
        rhs = np.zeros((n + 3, 2))
        rhs[:n] = targets
        try:
            solution = np.linalg.solve(system, rhs)
        except np.linalg.LinAlgError:  # repeated control points: the least-squares spline still exists
            solution = np.linalg.lstsq(system, rhs, rcond=None)[0]
        return cls(centers, solution[:n], solution[n:], origin, scale)

    def __call__(self, points_px: np.ndarray) -> np.ndarray:
        """Source positions (pixels) of output positions `points_px` (..., 2)."""
        shape = points_px.shape
        p = (points_px.reshape(-1, 2) - self.origin_px) / self.scale_px
        # |p - c|^2 = |p|^2 + |c|^2 - 2 p.c, as one matrix product (fast for many points).
        d2 = (p * p).sum(1)[:, None] + (self.centers * self.centers).sum(1)[None, :] - 2 * p @ self.centers.T
        d2 = np.maximum(d2, 0.0)
        mapped = _kernel(d2) @ self.weights + self.affine[0] + p @ self.affine[1:]
        return (mapped * self.scale_px + self.origin_px).reshape(shape)


def backward_map(spline: ThinPlateSpline, box: tuple[int, int, int, int], weight: np.ndarray,
                 step_px: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps (float32) for the pixels of `box` (x, y, w, h): source = p + weight * (spline(p) - p).

    The spline is evaluated on a coarse grid and interpolated: it is smooth, so this loses nothing visible
    and makes the warp fast.
    """
    x, y, w, h = box
    xs = np.arange(x, x + w + step_px, step_px, dtype=float)
    ys = np.arange(y, y + h + step_px, step_px, dtype=float)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1)
    displacement = spline(grid) - grid
    full = cv2.resize(displacement.astype(np.float32), (len(xs) * step_px, len(ys) * step_px),
                      interpolation=cv2.INTER_LINEAR)
    # cv2.resize aligns pixel centres; shift so that grid node k lands on pixel k * step.
    shift = (step_px - 1) / 2
    sample = np.float32([[1, 0, shift], [0, 1, shift]])
    full = cv2.warpAffine(full, sample, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    full *= weight[..., None]
    px, py = np.meshgrid(np.arange(x, x + w, dtype=np.float32), np.arange(y, y + h, dtype=np.float32))
    return px + full[..., 0], py + full[..., 1]


def remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Sample `image` at (map_x, map_y) with bicubic interpolation (keeps the skin's texture sharp)."""
    warped = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return warped




DETAIL_SIGMA_PX = 1.0  # detail = image - Gaussian(image, this): pores, stubble, single hairs
STRETCH_RIGID, STRETCH_SOFT = 0.3, 0.6  # map Jacobian deviation: grain kept crisp below, resampled above
GRAIN_LIMIT = 10.0  # grey levels: finer detail than this is grain; the rest of an edge is resampled smoothly


def split_detail(image: np.ndarray, enlargement: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(smooth, grain) float32 layers of a photo, smooth + grain == photo: computed once, warped many times.

    `enlargement` is how many image pixels one pixel of the original photo spans: an enlarged small face's
    finest grain is that many pixels wide, so the grain is split off at that scale (at one pixel it would
    stay in the smooth layer, which resampling between pixels washes out)."""
    source = image.astype(np.float32)
    detail = source - cv2.GaussianBlur(source, (0, 0), DETAIL_SIGMA_PX * max(1.0, enlargement))
    # Strong edges (a collar, a lip line) stay in the smooth layer: sampled at whole pixels they would step.
    grain = np.clip(detail, -GRAIN_LIMIT, GRAIN_LIMIT)
    return source - grain, grain


def remap_keeping_detail(layers: tuple[np.ndarray, np.ndarray], map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Warp a photo (float32 result) so that its fine detail stays as crisp as in the photo.

    The smooth layer is resampled (bicubic) at the exact positions. The detail layer is taken from the
    nearest whole pixel: resampling between pixels averages neighbours and stretching spreads them, both
    wash out pores and hairs (a chin patch kept 20-75 % of its Laplacian variance that way); a whole-pixel
    sample keeps every grain at full strength. Where the map is the identity the result is the photo."""
    smooth, grain = layers
    base = cv2.remap(smooth, map_x, map_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    crisp = cv2.remap(grain, np.round(map_x), np.round(map_y), interpolation=cv2.INTER_NEAREST,
                      borderMode=cv2.BORDER_REFLECT)
    soft = cv2.remap(grain, map_x, map_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    # Where skin is stretched or squeezed a lot (under a rising jaw), whole-pixel samples repeat or skip rows
    # and an edge would step: there the grain is resampled smoothly too.
    keep = _near_rigid(map_x, map_y)[..., None]
    return base + soft + keep * (crisp - soft)


def _near_rigid(map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """1 where the map moves a neighbourhood without stretching it (within STRETCH_RIGID), 0 beyond
    STRETCH_SOFT, smooth between; the stretch is the largest deviation of the map's Jacobian from identity."""
    dxx, dxy = np.gradient(map_x, axis=1), np.gradient(map_x, axis=0)
    dyx, dyy = np.gradient(map_y, axis=1), np.gradient(map_y, axis=0)
    stretch = np.maximum.reduce([np.abs(dxx - 1), np.abs(dyy - 1), np.abs(dxy), np.abs(dyx)])
    return np.clip((STRETCH_SOFT - stretch) / (STRETCH_SOFT - STRETCH_RIGID), 0.0, 1.0).astype(np.float32)
