"""Legibility and texture, measured: the landmark detector, run again on every composed viseme frame, must read
the shape, and the skin under the lower lip (chin, beard) and under the nose (moustache) must keep the photo's
texture (photoavatar/avatar/legibility.py says how both are measured).

For each single-face test portrait: build the working crop (the face about half of a square crop, 512 px on
the long side), synthesise all visemes, compose image*(1-mask) + frame*mask exactly as a client does, detect
the face again and measure. Run with `-s` to see the tables.
"""

from __future__ import annotations

import numpy as np
import pytest
from mouth_portraits import compose, working_crop

from photoavatar.avatar.legibility import measure_frames
from photoavatar.avatar.mouth import synthesize_mouths
from photoavatar.visemes import VISEMES

PORTRAITS = ("obama.jpg", "biden.jpg", "grace_hopper.jpg", "obama_partial_face.jpg", "beard.jpg",
             "obama_turned.jpg", "obama_small.jpg")
MIN_TEXTURE_KEPT = 0.8  # Laplacian variance of each patch relative to Rest's


@pytest.fixture(scope="module")
def measured(faces_dir):
    """portrait -> {"image", "synthesis", "measures"} for all twelve visemes."""
    results = {}
    for name in PORTRAITS:
        image, face = working_crop(faces_dir / name)
        synthesis = synthesize_mouths(image, face, VISEMES)
        results[name] = {"image": image, "synthesis": synthesis,
                         "measures": measure_frames(image, synthesis.frames, synthesis.mask)}
    return results


@pytest.mark.parametrize("name", PORTRAITS)
def test_lips_close_for_mbp(measured, name):
    assert measured[name]["measures"]["MBP"].aperture <= 0.05


@pytest.mark.parametrize("name", PORTRAITS)
def test_jaw_opens_for_ai(measured, name):
    assert measured[name]["measures"]["AI"].aperture >= 0.25


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize("viseme", ["O", "U", "WQ"])
def test_rounded_shapes_are_narrower_than_rest(measured, name, viseme):
    assert measured[name]["measures"][viseme].width_ratio < 1.0


@pytest.mark.parametrize("name", PORTRAITS)
def test_e_is_at_least_as_wide_as_rest(measured, name):
    assert measured[name]["measures"]["E"].width_ratio >= 1.0


@pytest.mark.parametrize("name", PORTRAITS)
def test_fv_is_nearly_closed(measured, name):
    assert measured[name]["measures"]["FV"].aperture <= 0.08


@pytest.mark.parametrize("name", PORTRAITS)
def test_every_shape_keeps_the_texture_of_chin_and_upper_lip(measured, name):
    measures = measured[name]["measures"]
    kept = {viseme: (m.chin_texture, m.upper_lip_texture) for viseme, m in measures.items()}
    lost = {viseme: pair for viseme, pair in kept.items() if min(pair) < MIN_TEXTURE_KEPT}
    assert not lost, f"{name}: texture kept (chin, upper lip) under {MIN_TEXTURE_KEPT}: {lost}"


def test_a_photo_taken_mid_word_gets_a_relaxed_nearly_closed_rest(measured):
    result = measured["obama_turned.jpg"]
    assert not np.array_equal(result["synthesis"].frames["Rest"], result["image"])
    assert result["measures"]["Rest"].aperture <= 0.05
    assert "mid-word" in result["synthesis"].advice


@pytest.mark.parametrize("name", PORTRAITS)
def test_pixels_outside_the_mask_are_the_source(measured, name):
    result = measured[name]
    outside = result["synthesis"].mask == 0
    assert outside.mean() > 0.5  # the mask is the lower face, not the picture
    for viseme in VISEMES:
        composed = compose(result["image"], result["synthesis"].frames[viseme], result["synthesis"].mask)
        assert np.array_equal(composed[outside], result["image"][outside]), viseme


def test_tables_of_measurements(measured):
    lines = ["aperture / width vs Rest, measured by the detector on the composed frames",
             "portrait".ljust(24) + "".join(v.rjust(11) for v in VISEMES)]
    for name, result in measured.items():
        m = result["measures"]
        lines.append(name.ljust(24) + "".join(f"{m[v].aperture:5.2f}/{m[v].width_ratio:4.2f}".rjust(11)
                                              for v in VISEMES))
    lines += ["", "texture kept vs Rest (Laplacian variance): chin / upper lip",
              "portrait".ljust(24) + "".join(v.rjust(11) for v in VISEMES)]
    for name, result in measured.items():
        m = result["measures"]
        lines.append(name.ljust(24) + "".join(f"{m[v].chin_texture:4.2f}/{m[v].upper_lip_texture:4.2f}".rjust(11)
                                              for v in VISEMES))
    print("\n" + "\n".join(lines))
    assert len(lines) == 5 + 2 * len(PORTRAITS)
