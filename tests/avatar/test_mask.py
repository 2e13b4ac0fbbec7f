import numpy as np
import pytest
from PIL import Image

from photoavatar.avatar.landmarks import (
    CHIN,
    EYE_IMAGE_LEFT,
    EYE_IMAGE_RIGHT,
    LIPS_OUTER,
    MOUTH_CORNERS,
    detect_faces,
)
from photoavatar.avatar.mask import FULL_MASK, FULL_MASK_DEPTH_PX, mouth_mask, ramp_width_px
from photoavatar.avatar.mouth_shapes import MAX_JAW_DROP_W, MouthFrame


@pytest.fixture(scope="module", params=["grace_hopper.jpg", "obama.jpg"])
def masked(request, faces_dir):
    photo = Image.open(faces_dir / request.param).convert("RGB")
    photo.thumbnail((512, 512))
    image = np.asarray(photo)
    face = detect_faces(image)[0]
    frame = MouthFrame.of(face.points_px[MOUTH_CORNERS[0]], face.points_px[MOUTH_CORNERS[1]])
    return image, face, frame, mouth_mask(image.shape, face, frame)


def _profile(mask, start_px, direction, length_px):
    """Mask values sampled every 0.25 px from `start_px` along `direction`."""
    steps = np.arange(0.0, length_px, 0.25)
    points = np.asarray(start_px, float) + steps[:, None] * np.asarray(direction, float)
    xs, ys = np.round(points[:, 0]).astype(int), np.round(points[:, 1]).astype(int)
    return mask[ys, xs], 0.25


def test_mask_is_float_in_unit_range_of_image_size(masked):
    image, _, _, region = masked
    assert region.mask.shape == image.shape[:2] and region.mask.dtype == np.float32
    assert region.mask.min() == 0.0 and region.mask.max() == pytest.approx(1.0)


@pytest.mark.parametrize("direction_uv", [(0.0, 1.0), (0.0, -1.0), (1.0, 0.0), (-1.0, 0.0)])
def test_feather_is_8_to_16_px_in_every_direction(masked, direction_uv):
    _, _, frame, region = masked
    direction = direction_uv[0] * frame.u_axis + direction_uv[1] * frame.v_axis
    values, step_px = _profile(region.mask, frame.center_px, direction, 3 * frame.width_px)
    assert values[0] == pytest.approx(1.0) and values[-1] == 0.0
    falling = values[::-1]  # from outside (0) to inside (1)
    assert 8.0 <= ramp_width_px(falling) * step_px <= 16.0


def test_mask_covers_lips_and_the_dropped_chin(masked):
    _, face, frame, region = masked
    chin = face.points_px[CHIN]
    dropped_chin = chin + MAX_JAW_DROP_W * frame.width_px * frame.v_axis
    for x, y in np.concatenate([face.points_px[list(LIPS_OUTER)], [chin, dropped_chin]]):
        assert region.mask[int(round(y)), int(round(x))] == pytest.approx(1.0, abs=1e-3)
        assert region.warp_weight[int(round(y)), int(round(x))] > 0.0


def test_eyes_are_untouched(masked):
    _, face, _, region = masked
    for eye in (EYE_IMAGE_LEFT, EYE_IMAGE_RIGHT):
        for index in eye["upper"] + eye["lower"]:
            x, y = face.points_px[index]
            assert region.mask[int(round(y)), int(round(x))] == 0.0


def test_mask_is_a_face_shape_not_a_box(masked):
    _, _, _, region = masked
    x, y, w, h = region.box
    inside = region.mask[y:y + h, x:x + w]
    assert (inside > 0.5).mean() < 0.85
    for corner in (inside[0, 0], inside[0, -1], inside[-1, 0], inside[-1, -1]):
        assert corner < 0.1


def test_warp_is_still_wherever_the_mask_is_not_full(masked):
    _, _, _, region = masked
    assert region.warp_weight[region.mask < FULL_MASK].max() == 0.0
    assert region.warp_weight.max() == pytest.approx(1.0)
    assert FULL_MASK_DEPTH_PX > 2.5 * 4  # the zero-motion margin reaches past the feather


def test_ramp_width_of_a_known_linear_ramp():
    ramp = np.concatenate([np.zeros(10), np.linspace(0, 1, 21), np.ones(10)])
    assert ramp_width_px(ramp) == pytest.approx(16.0)


def test_face_outside_the_image_is_a_clear_error(masked):
    image, face, frame, _ = masked
    far_away = type(face)(face.points_px + 5000.0, face.depth)
    far_frame = MouthFrame(frame.center_px + 5000.0, frame.u_axis, frame.v_axis, frame.width_px)
    with pytest.raises(ValueError, match="outside the image"):
        mouth_mask(image.shape, far_away, far_frame)
