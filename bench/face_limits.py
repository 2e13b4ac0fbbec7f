"""Measure the limits of photos `avatarize` accepts: how small a face can be, and how far it can be turned.

Small faces (landmark stability): each portrait is shrunk so its face is W px wide (Lanczos), then treated as
avatarize treats it: the same head-and-shoulders region is enlarged to the 512 px working crop and the
landmarks are found again in it. The lip landmarks are compared with those found on the full-size photo in
the same crop: median error in mouth widths, and the mouth aperture error. The lower bound is the smallest
width at which every portrait stays under LIP_ERROR_LIMIT_W and APERTURE_ERROR_LIMIT.

Turned faces: for each real photo, the head's yaw (degrees, from the mesh's own depth), the yaw ratio the
pipeline checks, how much of the far half of the mouth is in view (far / near half-width, corner to lip
midline), how far the far lip corner sits inside the cheek's silhouette (mouth widths), and how consistent the
lip landmarks are between the photo and its mirror image (mouth widths; a guess of hidden points disagrees).
Turning the real turned photo's mesh further (by its depth) shows where the far corner meets the silhouette.

Run: .venv/bin/python bench/face_limits.py [--faces ../shared/testdata/faces]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from photoavatar.avatar.native_logs import quiet_environment

quiet_environment()

from photoavatar.avatar.crop import _crop_box  # noqa: E402
from photoavatar.avatar.landmarks import (  # noqa: E402
    FACE_SIDES,
    LIPS_INNER,
    LIPS_OUTER,
    MOUTH_CORNERS,
    Face,
    detect_faces,
    mouth_metrics,
    yaw_ratio,
)

DEFAULT_FACES = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "faces"
SMALL_FACE_PORTRAITS = ("grace_hopper.jpg", "obama.jpg", "biden.jpg", "beard.jpg", "obama_turned.jpg")
TURNED_PORTRAITS = ("grace_hopper.jpg", "obama.jpg", "biden.jpg", "beard.jpg", "two_people.jpg",
                    "two_small_faces.jpg", "obama_turned.jpg")
WIDTHS_PX = (24, 32, 40, 48, 56, 64, 72, 80, 96, 108, 120)
LIP_ERROR_LIMIT_W = 0.03  # 1.5 px on the 50 px mouth of a 512 px crop
APERTURE_ERROR_LIMIT = 0.03
FAR_CORNER_MARGIN_W = 0.18
LIPS = list(LIPS_OUTER + LIPS_INNER)
MIDLINE = (0, 17)  # upper and lower lip middles (outer contour)


def _working_crop(photo: Image.Image, box: tuple[float, float, float, float], size: int = 512):
    x0, y0, w, h = box
    w, h = min(w, photo.width - x0), min(h, photo.height - y0)  # the shrunk photo's size is rounded
    scale = size / max(w, h)
    picture = photo.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS,
                           box=(x0, y0, x0 + w, y0 + h))
    return np.asarray(picture)


def _face_in(image: np.ndarray) -> Face | None:
    faces = detect_faces(image)
    return max(faces, key=lambda f: f.width_px) if faces else None


def small_face_rows(faces_dir: Path) -> list[tuple[str, int, float, float]]:
    rows = []
    for name in SMALL_FACE_PORTRAITS:
        photo = Image.open(faces_dir / name).convert("RGB")
        full = _face_in(np.asarray(photo))
        box = _crop_box(full, photo.width, photo.height)
        reference = _face_in(_working_crop(photo, box))
        for width in WIDTHS_PX:
            factor = width / full.width_px
            if factor >= 1:
                continue
            small = photo.resize((round(photo.width * factor), round(photo.height * factor)),
                                 Image.Resampling.LANCZOS)
            if _face_in(np.asarray(small)) is None:
                rows.append((name, width, float("inf"), float("inf")))
                continue
            found = _face_in(_working_crop(small, tuple(v * factor for v in box)))
            if found is None:
                rows.append((name, width, float("inf"), float("inf")))
                continue
            mouth_w = mouth_metrics(reference).width_px
            error = float(np.median(np.linalg.norm(found.points_px[LIPS] - reference.points_px[LIPS], axis=1)))
            aperture = abs(mouth_metrics(found).aperture - mouth_metrics(reference).aperture)
            rows.append((name, width, error / mouth_w, aperture))
    return rows


def lower_bound(rows) -> int:
    stable = {}
    for _name, width, error, aperture in rows:
        stable.setdefault(width, []).append(error <= LIP_ERROR_LIMIT_W and aperture <= APERTURE_ERROR_LIMIT)
    # the smallest width from which every larger width is stable for every portrait
    bound = max(WIDTHS_PX)
    for width in sorted(stable, reverse=True):
        if not all(stable[width]):
            break
        bound = width
    return bound


def turn_measures(face: Face) -> dict[str, float]:
    p = face.points_px
    left, right = p[MOUTH_CORNERS[0]], p[MOUTH_CORNERS[1]]
    mid_x = p[list(MIDLINE), 0].mean()
    halves = (mid_x - left[0], right[0] - mid_x)
    yaw = yaw_ratio(face)
    far = 0 if yaw < 0 else 1  # the nose points toward the near side: the far side is the other one
    mouth_w = float(np.linalg.norm(right - left))
    silhouette_x = p[FACE_SIDES[far], 0]
    corner_x = (left, right)[far][0]
    margin = (corner_x - silhouette_x) if far == 0 else (silhouette_x - corner_x)
    return {"yaw_ratio": yaw, "far_near_half": halves[far] / max(halves[1 - far], 1e-6),
            "corner_inside_w": margin / mouth_w}


def yaw_degrees(face: Face, image_width_px: int) -> float:
    p = face.points_px
    z = face.depth * image_width_px
    left, right = FACE_SIDES
    return float(np.degrees(np.arctan2(z[right] - z[left], p[right, 0] - p[left, 0])))


def mirror_error_w(image: np.ndarray, face: Face) -> float:
    """Lip landmarks found in the mirrored photo, mirrored back, against those of the photo (mouth widths)."""
    candidates = detect_faces(np.ascontiguousarray(image[:, ::-1]))
    if not candidates:
        return float("inf")
    backs = [np.column_stack([image.shape[1] - f.points_px[:, 0], f.points_px[:, 1]]) for f in candidates]
    back = min(backs, key=lambda b: float(np.linalg.norm(b.mean(axis=0) - face.points_px.mean(axis=0))))
    # mirroring swaps left and right: landmark i's mirror twin is the symmetric index
    count = len(LIPS_OUTER)  # the loop starts at one corner: position k mirrors to position count/2 - k
    order = [LIPS_OUTER[(count // 2 - k) % count] for k in range(count)]
    error = np.linalg.norm(back[order] - face.points_px[list(LIPS_OUTER)], axis=1)
    return float(np.median(error) / mouth_metrics(face).width_px)


def turned_further(face: Face, image_width_px: int, degrees: float) -> Face:
    """The mesh turned by `degrees` more about the vertical axis through its centre, using its own depth."""
    p, z = face.points_px, face.depth * image_width_px
    cx, cz = p[:, 0].mean(), z.mean()
    a = np.radians(degrees)
    x = cx + (p[:, 0] - cx) * np.cos(a) - (z - cz) * np.sin(a)
    znew = cz + (p[:, 0] - cx) * np.sin(a) + (z - cz) * np.cos(a)
    return Face(np.column_stack([x, p[:, 1]]), znew / image_width_px)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    args = parser.parse_args()
    rows = small_face_rows(args.faces)
    print("small faces: lip landmark error (mouth widths) / aperture error, by face width in the photo")
    print("portrait".ljust(20) + "".join(f"{w:>12}" for w in WIDTHS_PX))
    for name in SMALL_FACE_PORTRAITS:
        cells = {w: f"{e:.3f}/{a:.3f}" for n, w, e, a in rows if n == name}
        print(name.ljust(20) + "".join(f"{cells.get(w, '-'):>12}" for w in WIDTHS_PX))
    print(f"lower bound (every portrait <= {LIP_ERROR_LIMIT_W} and <= {APERTURE_ERROR_LIMIT} from here up): "
          f"{lower_bound(rows)} px\n")
    print("turned faces: yaw (deg), yaw ratio, far/near half-mouth, far corner inside the silhouette (W), "
          "mirror error (W)")
    for name in TURNED_PORTRAITS:
        image = np.asarray(Image.open(args.faces / name).convert("RGB"))
        for face in detect_faces(image):
            m = turn_measures(face)
            print(f"{name:20} {yaw_degrees(face, image.shape[1]):6.1f} {m['yaw_ratio']:+6.2f} "
                  f"{m['far_near_half']:6.2f} {m['corner_inside_w']:6.2f} {mirror_error_w(image, face):6.3f}")
    image = np.asarray(Image.open(args.faces / "obama_turned.jpg").convert("RGB"))
    face = _face_in(image)
    sign = -1.0 if yaw_ratio(face) < 0 else 1.0
    print("\nobama_turned's mesh turned further: extra deg, yaw ratio, far/near half-mouth, corner inside (W)")
    ratios, margins = [], []
    for extra in (0, 5, 10, 15, 20, 25, 30):
        m = turn_measures(turned_further(face, image.shape[1], sign * extra))
        ratios.append(abs(m["yaw_ratio"]))
        margins.append(m["corner_inside_w"])
        print(f"{extra:5d} {m['yaw_ratio']:+6.2f} {m['far_near_half']:6.2f} {m['corner_inside_w']:6.2f}")
    limit = float(np.interp(-FAR_CORNER_MARGIN_W, -np.array(margins), ratios))
    print(f"yaw limit (far lip corner at least {FAR_CORNER_MARGIN_W} mouth widths inside the cheek's outline, "
          f"room for the warp beyond the corner): yaw ratio {limit:.2f}")


if __name__ == "__main__":
    main()
