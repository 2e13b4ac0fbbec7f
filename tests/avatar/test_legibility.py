"""Legibility and texture, measured: the landmark detector, run again on every composed viseme frame, must read
the shape, and the skin under the lower lip (chin, beard) and under the nose (moustache) must keep the photo's
texture (photoavatar/avatar/legibility.py says how both are measured).

For each single-face test portrait: build the working crop (the face about half of a square crop, 512 px on
the long side), synthesise all visemes, compose image*(1-mask) + frame*mask exactly as a client does, detect
the face again and measure. The texture is also measured on the bundles avatarize builds, every sprite
composed on idle frame 0 as a client composes it. Run with `-s` to see the tables.
"""

from __future__ import annotations

import numpy as np
import pytest
from mouth_portraits import synthesize, working_crop

from photoavatar.avatar.legibility import VisemeMeasure, compose_over, measure_bundle, measure_frames
from photoavatar.visemes import VISEMES

PORTRAITS = ("obama.jpg", "biden.jpg", "grace_hopper.jpg", "obama_partial_face.jpg", "beard.jpg",
             "obama_turned.jpg", "obama_small.jpg")
MIN_TEXTURE_KEPT = 0.8  # Laplacian variance of each patch relative to Rest's
# (viseme, lowest, highest) inner-lip aperture: lips closed for MBP, the jaw open for AI, FV nearly closed.
APERTURE_BARS = (("MBP", 0.0, 0.05), ("AI", 0.25, 1.0), ("FV", 0.0, 0.08))


@pytest.fixture(scope="module")
def measured(faces_dir):
    """portrait -> {"image", "synthesis", "measures"} for all twelve visemes."""
    results = {}
    for name in PORTRAITS:
        crop = working_crop(faces_dir / name)
        synthesis = synthesize(crop, VISEMES)
        results[name] = {"image": crop.image, "synthesis": synthesis,
                         "measures": measure_frames(crop.image, synthesis.frames, synthesis.mask)}
    return results


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize(("viseme", "lowest", "highest"), APERTURE_BARS)
def test_aperture_of_closed_and_open_shapes(measured, name, viseme, lowest, highest):
    assert lowest <= measured[name]["measures"][viseme].aperture <= highest


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize("viseme", ["O", "U", "WQ"])
def test_rounded_shapes_are_narrower_than_rest(measured, name, viseme):
    assert measured[name]["measures"][viseme].width_ratio < 1.0


@pytest.mark.parametrize("name", PORTRAITS)
def test_e_is_at_least_as_wide_as_rest(measured, name):
    assert measured[name]["measures"]["E"].width_ratio >= 1.0


def _texture_lost(measures: dict[str, VisemeMeasure]) -> dict[str, tuple[float, float]]:
    """viseme -> (chin, upper lip) texture kept, for the visemes that keep less than MIN_TEXTURE_KEPT."""
    kept = {viseme: (m.chin_texture, m.upper_lip_texture) for viseme, m in measures.items()}
    return {viseme: pair for viseme, pair in kept.items() if min(pair) < MIN_TEXTURE_KEPT}


@pytest.mark.parametrize("name", PORTRAITS)
def test_every_shape_keeps_the_texture_of_chin_and_upper_lip(measured, name):
    lost = _texture_lost(measured[name]["measures"])
    assert not lost, f"{name}: texture kept (chin, upper lip) under {MIN_TEXTURE_KEPT}: {lost}"


@pytest.mark.parametrize("name", PORTRAITS)
def test_the_bundle_keeps_the_texture_on_idle_frame_0(built_bundles, name):
    """The same measure on what a client shows: the crop avatarize made (an enlarged small face included),
    sprites from the atlas, composed on the decoded idle video."""
    lost = _texture_lost(measure_bundle(built_bundles(name).bundle))
    assert not lost, f"{name} bundle: texture kept (chin, upper lip) under {MIN_TEXTURE_KEPT}: {lost}"


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
        composed = compose_over(result["image"], result["synthesis"].frames[viseme], result["synthesis"].mask)
        assert np.array_equal(composed[outside], result["image"][outside]), viseme


def _table(title: str, measured, cell) -> list[str]:
    lines = ["", title, "portrait".ljust(24) + "".join(v.rjust(11) for v in VISEMES)]
    for name, result in measured.items():
        lines.append(name.ljust(24) + "".join(cell(result["measures"][v]).rjust(11) for v in VISEMES))
    return lines


def test_tables_of_measurements(measured):
    lines = (_table("aperture / width vs Rest, measured by the detector on the composed frames", measured,
                    lambda m: f"{m.aperture:5.2f}/{m.width_ratio:4.2f}")
             + _table("texture kept vs Rest (Laplacian variance): chin / upper lip", measured,
                      lambda m: f"{m.chin_texture:4.2f}/{m.upper_lip_texture:4.2f}"))
    print("\n".join(lines))
    assert len(lines) == 6 + 2 * len(PORTRAITS)
