"""Legibility, measured: the landmark detector, run again on every composed viseme frame, must read the shape.

For each usable test portrait: build the working crop (the face about half of a square crop, 512 px on the
long side), synthesise all visemes, compose image*(1-mask) + frame*mask exactly as a client does, detect the
face again and measure the inner-lip aperture (gap / mouth width) and the mouth width against Rest.
Run with `-s` to see the table.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from photoavatar.avatar.landmarks import Face, detect_faces, mouth_metrics
from photoavatar.avatar.mouth import synthesize_mouths
from photoavatar.visemes import VISEMES

PORTRAITS = ("obama.jpg", "biden.jpg", "grace_hopper.jpg", "obama_partial_face.jpg")
WORKING_SIZE_PX = 512


def working_crop(path) -> tuple[np.ndarray, Face]:
    """The crop the pipeline works on: a square about twice the face, scaled to 512 px on its long side."""
    photo = np.asarray(Image.open(path).convert("RGB"))
    face = detect_faces(photo)[0]
    x, y, w, h = face.box
    center_x, center_y, side = x + w / 2, y + h / 2, 2 * max(w, h)
    x0, y0 = int(max(0, center_x - side / 2)), int(max(0, center_y - side / 2))
    x1, y1 = int(min(photo.shape[1], center_x + side / 2)), int(min(photo.shape[0], center_y + side / 2))
    scale = WORKING_SIZE_PX / max(x1 - x0, y1 - y0)
    size = (round((x1 - x0) * scale), round((y1 - y0) * scale))
    crop = np.asarray(Image.fromarray(photo[y0:y1, x0:x1]).resize(size, Image.LANCZOS))
    return crop, face.transformed(scale, (-x0 * scale, -y0 * scale))


def compose(image: np.ndarray, frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    blended = image.astype(np.float32) * (1 - mask[..., None]) + frame.astype(np.float32) * mask[..., None]
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def measured(faces_dir):
    """portrait -> {"image", "synthesis", "composed", "metrics"} for all twelve visemes."""
    results = {}
    for name in PORTRAITS:
        image, face = working_crop(faces_dir / name)
        synthesis = synthesize_mouths(image, face, VISEMES)
        composed, metrics = {}, {}
        for viseme in VISEMES:
            composed[viseme] = compose(image, synthesis.frames[viseme], synthesis.mask)
            found = detect_faces(composed[viseme])
            assert len(found) == 1, f"{name} {viseme}: the face is no longer found after composing"
            metrics[viseme] = mouth_metrics(found[0])
        results[name] = {"image": image, "synthesis": synthesis, "composed": composed, "metrics": metrics}
    return results


def _width_ratio(metrics, viseme):
    return metrics[viseme].width_px / metrics["Rest"].width_px


@pytest.mark.parametrize("name", PORTRAITS)
def test_lips_close_for_mbp(measured, name):
    assert measured[name]["metrics"]["MBP"].aperture <= 0.05


@pytest.mark.parametrize("name", PORTRAITS)
def test_jaw_opens_for_ai(measured, name):
    assert measured[name]["metrics"]["AI"].aperture >= 0.25


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize("viseme", ["O", "U", "WQ"])
def test_rounded_shapes_are_narrower_than_rest(measured, name, viseme):
    assert _width_ratio(measured[name]["metrics"], viseme) < 1.0


@pytest.mark.parametrize("name", PORTRAITS)
def test_e_is_at_least_as_wide_as_rest(measured, name):
    assert _width_ratio(measured[name]["metrics"], "E") >= 1.0


@pytest.mark.parametrize("name", PORTRAITS)
def test_fv_is_nearly_closed(measured, name):
    assert measured[name]["metrics"]["FV"].aperture <= 0.08


@pytest.mark.parametrize("name", PORTRAITS)
def test_pixels_outside_the_mask_are_the_source(measured, name):
    result = measured[name]
    outside = result["synthesis"].mask == 0
    assert outside.mean() > 0.5  # the mask is the lower face, not the picture
    for viseme in VISEMES:
        assert np.array_equal(result["composed"][viseme][outside], result["image"][outside]), viseme


def test_table_of_measurements(measured):
    header = "portrait".ljust(24) + "".join(v.rjust(11) for v in VISEMES)
    lines = ["aperture / width vs Rest, measured by the detector on the composed frames", header]
    for name, result in measured.items():
        metrics = result["metrics"]
        cells = "".join(f"{metrics[v].aperture:5.2f}/{_width_ratio(metrics, v):4.2f}".rjust(11) for v in VISEMES)
        lines.append(name.ljust(24) + cells)
    print("\n" + "\n".join(lines))
    assert len(lines) == 2 + len(PORTRAITS)
