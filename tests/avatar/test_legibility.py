"""Legibility, measured: the landmark detector, run again on every composed viseme frame, must read the shape.

For each usable test portrait: build the working crop (the face about half of a square crop, 512 px on the
long side), synthesise all visemes, compose image*(1-mask) + frame*mask exactly as a client does, detect the
face again and measure the inner-lip aperture (gap / mouth width) and the mouth width against Rest.
Run with `-s` to see the table.
"""

from __future__ import annotations

import numpy as np
import pytest
from mouth_portraits import compose, working_crop

from photoavatar.avatar.landmarks import detect_faces, mouth_metrics
from photoavatar.avatar.mouth import synthesize_mouths
from photoavatar.visemes import VISEMES

PORTRAITS = ("obama.jpg", "biden.jpg", "grace_hopper.jpg", "obama_partial_face.jpg")


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
    aperture = measured[name]["metrics"]["MBP"].aperture
    assert aperture <= 0.05


@pytest.mark.parametrize("name", PORTRAITS)
def test_jaw_opens_for_ai(measured, name):
    aperture = measured[name]["metrics"]["AI"].aperture
    assert aperture >= 0.25


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize("viseme", ["O", "U", "WQ"])
def test_rounded_shapes_are_narrower_than_rest(measured, name, viseme):
    ratio = _width_ratio(measured[name]["metrics"], viseme)
    assert ratio < 1.0


@pytest.mark.parametrize("name", PORTRAITS)
def test_e_is_at_least_as_wide_as_rest(measured, name):
    ratio = _width_ratio(measured[name]["metrics"], "E")
    assert ratio >= 1.0


@pytest.mark.parametrize("name", PORTRAITS)
def test_fv_is_nearly_closed(measured, name):
    aperture = measured[name]["metrics"]["FV"].aperture
    assert aperture <= 0.08


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
        cells = "".join(f"{metrics[v].aperture:5.2f}/{_width_ratio(metrics, v):4.2f}".rjust(11)
                        for v in VISEMES)
        lines.append(name.ljust(24) + cells)
    print("\n" + "\n".join(lines))
    assert len(lines) == 2 + len(PORTRAITS)
