import numpy as np
import pytest

from photoavatar.avatar.crop import crop_head_and_shoulders, roi_in_crop
from photoavatar.avatar.errors import AvatarError
from photoavatar.avatar.faces import choose_face
from photoavatar.avatar.landmarks import LIPS_OUTER, detect_faces
from photoavatar.avatar.photo import load_photo


@pytest.fixture(scope="module", params=["obama.jpg", "biden.jpg", "grace_hopper.jpg", "obama_partial_face.jpg"])
def cropped(request, faces_dir):
    photo = load_photo(faces_dir / request.param)
    face = choose_face(detect_faces(photo.image_rgb), None, photo_scale=photo.scale)
    return photo, crop_head_and_shoulders(photo.image_rgb, face, 512)


def test_crop_has_the_working_size_and_even_sides(cropped):
    _, crop = cropped
    height, width = crop.image_rgb.shape[:2]
    assert max(height, width) == 512
    assert height % 2 == 0 and width % 2 == 0


def test_moved_landmarks_match_a_fresh_detection_on_the_crop(cropped):
    _, crop = cropped
    redetected = detect_faces(crop.image_rgb)
    assert len(redetected) == 1
    lips_error = np.linalg.norm(redetected[0].points_px[list(LIPS_OUTER)] - crop.face.points_px[list(LIPS_OUTER)], axis=1)
    assert np.median(lips_error) < 2.0


def test_crop_keeps_head_and_shoulders(cropped):
    photo, crop = cropped
    height, width = crop.image_rgb.shape[:2]
    x, y, w, h = crop.face.box
    if crop.box_px[0] > 0 and crop.box_px[0] + crop.box_px[2] < photo.image_rgb.shape[1] - 1:
        assert x + w / 2 == pytest.approx(width / 2, abs=2)  # room on both sides: the face is centred
    assert 0 < x + w / 2 < width
    assert y + h < 0.75 * height  # room below the chin for neck and shoulders


def _lips_box_in_photo(photo, crop):
    points = crop.face.points_px[list(LIPS_OUTER)] / crop.scale + crop.box_px[:2]
    points = points / photo.scale
    (x0, y0), (x1, y1) = np.floor(points.min(axis=0)), np.ceil(points.max(axis=0))
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def test_roi_around_the_lips_is_moved_into_crop_pixels(faces_dir):
    photo = load_photo(faces_dir / "obama.jpg")
    crop = crop_head_and_shoulders(photo.image_rgb, detect_faces(photo.image_rgb)[0], 512)
    x, y, w, h = _lips_box_in_photo(photo, crop)
    roi = (x - 10, y - 10, w + 20, h + 20)
    cx, cy, cw, ch = roi_in_crop(roi, crop, photo.scale, photo.photo_size_px)
    lips = crop.face.points_px[list(LIPS_OUTER)]
    assert (lips[:, 0] >= cx).all() and (lips[:, 0] <= cx + cw).all()
    assert (lips[:, 1] >= cy).all() and (lips[:, 1] <= cy + ch).all()
    assert cw == pytest.approx((w + 20) * crop.scale, abs=2)


def test_roi_must_hold_the_lips_and_lie_in_the_photo(faces_dir):
    photo = load_photo(faces_dir / "obama.jpg")
    crop = crop_head_and_shoulders(photo.image_rgb, detect_faces(photo.image_rgb)[0], 512)
    x, y, w, h = _lips_box_in_photo(photo, crop)
    with pytest.raises(AvatarError, match="does not contain the lips"):
        roi_in_crop((x + w // 2, y, w, h), crop, photo.scale, photo.photo_size_px)
    with pytest.raises(AvatarError, match="outside the photo"):
        roi_in_crop((800, 1000, 200, 200), crop, photo.scale, photo.photo_size_px)
    with pytest.raises(AvatarError, match="larger than the face"):
        roi_in_crop((0, 0, 900, 1100), crop, photo.scale, photo.photo_size_px)


@pytest.mark.parametrize("size", [100, 5000])
def test_size_out_of_range_is_refused(faces_dir, size):
    photo = load_photo(faces_dir / "grace_hopper.jpg")
    with pytest.raises(AvatarError, match=f"--size {size} is outside"):
        crop_head_and_shoulders(photo.image_rgb, detect_faces(photo.image_rgb)[0], size)
