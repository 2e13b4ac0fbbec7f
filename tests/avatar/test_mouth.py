"""The mouth synthesis contract and its hard cases, on real portraits at working size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from mouth_portraits import synthesize, working_crop

from photoavatar.avatar.landmarks import (
    CHIN,
    LIPS_INNER,
    LIPS_OUTER,
    LOWER_LIP_INNER,
    LOWER_LIP_OUTER,
    MOUTH_CORNERS,
    UPPER_LIP_INNER,
    UPPER_LIP_OUTER,
    mouth_metrics,
)
from photoavatar.avatar.legibility import compose_over
from photoavatar.avatar.mask import FULL_MASK
from photoavatar.avatar.mouth import MouthSynthesis, synthesize_mouths
from photoavatar.avatar.mouth_shapes import LipContours, MouthFrame, mouth_target, shape_for
from photoavatar.visemes import VISEMES


@pytest.fixture(scope="module")
def grace(faces_dir):
    crop = working_crop(faces_dir / "grace_hopper.jpg")
    return crop.image, crop.face, synthesize(crop, VISEMES)


@pytest.fixture(scope="module")
def obama(faces_dir):
    crop = working_crop(faces_dir / "obama.jpg")
    return crop.image, crop.face, synthesize(crop, VISEMES)


def _compose(image, synthesis: MouthSynthesis, viseme):
    return compose_over(image, synthesis.frames[viseme], synthesis.mask)


def _lip_area(face, image_shape, grow_px=9):
    area = np.zeros(image_shape[:2], np.uint8)
    cv2.fillPoly(area, [np.round(face.points_px[list(LIPS_OUTER)]).astype(np.int32)], 1)
    return cv2.dilate(area, np.ones((grow_px, grow_px), np.uint8)).astype(bool)


def _luminance(pixels):
    return pixels.astype(float) @ np.array([0.299, 0.587, 0.114])


def _teeth_like(pixels, max_saturation=0.32):
    """Bright, weakly saturated pixels: enamel, not skin or lips (skin and lips are above 0.4)."""
    pixels = pixels.astype(float)
    saturation = (pixels.max(axis=1) - pixels.min(axis=1)) / np.maximum(pixels.max(axis=1), 1.0)
    return (_luminance(pixels) > 140) & (saturation < max_saturation)


def _lip_ring(face, image_shape):
    ring = np.zeros(image_shape[:2], np.uint8)
    cv2.fillPoly(ring, [np.round(face.points_px[list(LIPS_OUTER)]).astype(np.int32)], 1)
    cv2.fillPoly(ring, [np.round(face.points_px[list(LIPS_INNER)]).astype(np.int32)], 0)
    return ring.astype(bool)


@pytest.mark.parametrize("portrait", ["grace", "obama"])
def test_contract_shapes_and_types(portrait, request):
    image, face, synthesis = request.getfixturevalue(portrait)
    assert list(synthesis.frames) == list(VISEMES)
    for frame in synthesis.frames.values():
        assert frame.shape == image.shape and frame.dtype == np.uint8
    assert synthesis.mask.shape == image.shape[:2] and synthesis.mask.dtype == np.float32
    assert 0.0 <= synthesis.mask.min() and synthesis.mask.max() <= 1.0
    x, y, w, h = synthesis.mouth_box
    lips = face.points_px[list(LIPS_OUTER)]
    assert x <= lips[:, 0].min() and lips[:, 0].max() <= x + w
    assert y <= lips[:, 1].min() and lips[:, 1].max() <= y + h


@pytest.mark.parametrize("portrait", ["grace", "obama"])
def test_rest_is_the_photo_and_every_frame_is_the_photo_until_the_mask_is_full(portrait, request):
    image, _, synthesis = request.getfixturevalue(portrait)
    assert np.array_equal(synthesis.frames["Rest"], image)
    not_full = synthesis.mask < FULL_MASK
    for viseme, frame in synthesis.frames.items():
        assert np.array_equal(frame[not_full], image[not_full]), viseme
        changed = np.any(frame != image, axis=-1)
        if viseme != "Rest":
            assert changed.sum() > 200, f"{viseme} did not change the mouth"


def _vertical_shift_px(before, after, center, half_px=12, search_px=45):
    """How far down the patch of `before` around `center` went in `after` (best match by SSD)."""
    x, y = np.round(center).astype(int)
    patch = before[y - half_px:y + half_px, x - half_px:x + half_px].astype(float)
    errors = [np.mean((after[y - half_px + dy:y + half_px + dy, x - half_px:x + half_px] - patch) ** 2)
              for dy in range(-5, search_px)]
    return int(np.argmin(errors)) - 5


@pytest.mark.parametrize("portrait", ["grace", "obama"])
def test_open_jaw_moves_the_chin_down_inside_the_mask(portrait, request):
    image, face, synthesis = request.getfixturevalue(portrait)
    width_px = mouth_metrics(face).width_px
    chin = face.points_px[CHIN]
    assert abs(_vertical_shift_px(image, _compose(image, synthesis, "MBP"), chin)) <= 0.05 * width_px
    drop_px = _vertical_shift_px(image, _compose(image, synthesis, "AI"), chin)
    assert drop_px > 0.12 * width_px  # obama's photo is open already: his chin has less far to go
    x, y = np.round(chin + (0, drop_px)).astype(int)
    assert synthesis.mask[y, x] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("portrait", ["grace", "obama"])
@pytest.mark.parametrize("viseme", ["AI", "O", "L"])
def test_the_chin_moves_as_one_piece_with_the_lower_lip(portrait, viseme, request):
    """Near-rigid: the skin just under the lower lip and the chin point move the same whole-pixel distance
    (a stretched chin would move less at the chin point than under the lip)."""
    image, face, synthesis = request.getfixturevalue(portrait)
    composed = _compose(image, synthesis, viseme)
    under_lip = 0.65 * face.points_px[17] + 0.35 * face.points_px[CHIN]
    shifts = [_vertical_shift_px(image, composed, point, half_px=8) for point in (under_lip, face.points_px[CHIN])]
    assert shifts[0] > 3 and abs(shifts[0] - shifts[1]) <= 1, shifts


def test_closing_a_smile_leaves_no_teeth_and_no_dark_seam(obama):
    image, face, synthesis = obama
    area = _lip_area(face, image.shape)
    rest = _compose(image, synthesis, "Rest")[area]
    closed = _compose(image, synthesis, "MBP")[area]
    # Obama's teeth are nearly neutral; his lips' highlights reach 0.26 saturation, so be strict here.
    assert _teeth_like(rest, max_saturation=0.2).sum() > 150  # the photo does show teeth
    assert _teeth_like(closed, max_saturation=0.2).sum() < 15
    # The contact line may be a faint crease, never a dark gap: the closed mouth's darkest pixels are no
    # darker than the darkest pixels of the photo's own lips.
    own_lips = _luminance(image[_lip_ring(face, image.shape)])
    assert np.percentile(_luminance(closed), 1) >= np.percentile(own_lips, 1)


def test_closed_mouth_photo_gets_shaded_warm_teeth_and_a_dark_cavity(grace):
    image, face, synthesis = grace
    area = _lip_area(face, image.shape, grow_px=25)
    assert _teeth_like(image[area]).sum() == 0  # lips closed in the photo
    opened = _compose(image, synthesis, "AI")[area].astype(float)
    teeth = opened[_teeth_like(opened)]
    assert len(teeth) > 40
    red, green, blue = np.median(teeth, axis=0)
    assert red >= green >= blue  # off-white matched to the warm photo, not grey-blue
    assert _luminance(teeth).std() > 6.0  # shaded (corners, gums, separations), not a flat grey band
    assert (_luminance(opened) < 50).sum() > 150  # the cavity


@pytest.mark.parametrize(("viseme", "without_tongue"), [("L", "AI"), ("TH", "E")])
def test_tongue_shows_for_l_and_th(grace, viseme, without_tongue):
    image, face, synthesis = grace
    width_px = mouth_metrics(face).width_px
    center = (face.points_px[MOUTH_CORNERS[0]] + face.points_px[MOUTH_CORNERS[1]]) / 2
    x0, x1 = int(center[0] - 0.15 * width_px), int(center[0] + 0.15 * width_px)
    y0, y1 = int(center[1] - 0.05 * width_px), int(center[1] + 0.3 * width_px)

    def tongue_pixels(name):
        pixels = _compose(image, synthesis, name)[y0:y1, x0:x1].reshape(-1, 3).astype(float)
        luminance = _luminance(pixels)
        return ((pixels[:, 0] > 1.4 * pixels[:, 1]) & (luminance > 50) & (luminance < 150)).sum()

    assert tongue_pixels(viseme) > tongue_pixels(without_tongue) + 30


def test_advice_for_a_smile_with_teeth_and_none_for_a_neutral_face(grace, obama):
    assert grace[2].advice is None
    assert "neutral" in obama[2].advice and obama[2].advice.endswith(".")


def test_only_the_requested_visemes_and_the_same_result_twice(grace):
    image, face, _ = grace
    first = synthesize_mouths(image, face, ("Rest", "MBP"))
    second = synthesize_mouths(image, face, ("Rest", "MBP"))
    assert list(first.frames) == ["Rest", "MBP"]
    assert np.array_equal(first.frames["MBP"], second.frames["MBP"])


def test_bad_input_is_a_clear_error(grace):
    image, face, _ = grace
    with pytest.raises(ValueError, match="RGB"):
        synthesize_mouths(image[..., 0], face, VISEMES)
    with pytest.raises(ValueError, match="valid names"):
        synthesize_mouths(image, face, ("Rest", "Smile"))
    small = image[::4, ::4].copy()
    with pytest.raises(ValueError, match="px wide"):
        synthesize_mouths(small, face.transformed(0.25, (0.0, 0.0)), VISEMES)


def test_shapes_turn_with_the_head_the_far_side_moves_less(faces_dir):
    """obama_turned.jpg (yaw ratio -0.46): narrowing for U scales the mouth about the lips' midline, so the
    far corner, whose half of the mouth is foreshortened, moves in less than the near one."""
    face = working_crop(faces_dir / "obama_turned.jpg").face
    frame = MouthFrame.of(face.points_px[61], face.points_px[291])
    lips = LipContours(*(frame.to_local(face.points_px[list(indices)]) for indices in
                         (UPPER_LIP_OUTER, UPPER_LIP_INNER, LOWER_LIP_INNER, LOWER_LIP_OUTER)))
    middle = lips.midline_u
    halves = (middle - lips.upper_outer[0, 0], lips.upper_outer[-1, 0] - middle)
    far, near = (0, 1) if halves[0] < halves[1] else (1, 0)
    assert halves[far] < 0.85 * halves[near]  # the photo really is turned
    target = mouth_target(lips, shape_for("U"))
    moved_in = np.abs(target.lips.upper_outer[[0, -1], 0] - lips.upper_outer[[0, -1], 0])
    assert moved_in[far] < 0.9 * moved_in[near]
    assert moved_in[far] / moved_in[near] == pytest.approx(halves[far] / halves[near], rel=0.1)
