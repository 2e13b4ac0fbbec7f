import numpy as np
import pytest
from PIL import Image

from photoavatar.avatar.landmarks import detect_faces, eye_aperture, mouth_metrics, yaw_ratio


def _load(faces_dir, name):
    return np.asarray(Image.open(faces_dir / name).convert("RGB"))


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg", "grace_hopper.jpg", "obama_partial_face.jpg"])
def test_one_frontal_face_with_open_eyes(faces_dir, name):
    faces = detect_faces(_load(faces_dir, name))
    assert len(faces) == 1
    face = faces[0]
    assert face.points_px.shape == (478, 2)
    assert abs(yaw_ratio(face)) < 0.35
    assert 0.15 < eye_aperture(face) < 0.4


def test_two_people_are_ordered_left_to_right(faces_dir):
    faces = detect_faces(_load(faces_dir, "two_people.jpg"))
    assert len(faces) == 2
    assert faces[0].box[0] < faces[1].box[0]


def test_smile_with_teeth_is_open_and_closed_mouth_is_closed(faces_dir):
    smiling = mouth_metrics(detect_faces(_load(faces_dir, "obama.jpg"))[0])
    closed = mouth_metrics(detect_faces(_load(faces_dir, "grace_hopper.jpg"))[0])
    assert smiling.aperture > 0.1
    assert closed.aperture < 0.03
    assert 55 < closed.width_px < 90  # the fixture's notes say about 70 px


def test_transformed_face_moves_with_the_image(faces_dir):
    face = detect_faces(_load(faces_dir, "grace_hopper.jpg"))[0]
    moved = face.transformed(0.5, (10.0, -4.0))
    assert np.allclose(moved.points_px, face.points_px * 0.5 + (10.0, -4.0))
    assert mouth_metrics(moved).aperture == pytest.approx(mouth_metrics(face).aperture)


def test_blank_image_has_no_face():
    assert detect_faces(np.full((240, 320, 3), 128, np.uint8)) == []
