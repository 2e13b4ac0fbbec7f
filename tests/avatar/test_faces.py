import numpy as np
import pytest
from PIL import Image

from photoavatar.avatar.errors import AvatarError
from photoavatar.avatar.faces import MIN_FACE_WIDTH_PX, choose_face, find_faces
from photoavatar.avatar.landmarks import Face, detect_faces, yaw_ratio


def _faces(faces_dir, name, scale=1.0):
    picture = Image.open(faces_dir / name).convert("RGB")
    if scale != 1.0:
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.LANCZOS)
    return detect_faces(np.asarray(picture))


def test_no_face_is_an_error():
    with pytest.raises(AvatarError, match="no face found"):
        choose_face(detect_faces(np.full((300, 300, 3), 120, np.uint8)), None)


def test_two_faces_without_choice_list_both_boxes(faces_dir):
    faces = _faces(faces_dir, "two_people.jpg")
    with pytest.raises(AvatarError) as caught:
        choose_face(faces, None)
    message = str(caught.value)
    assert "2 faces" in message and "--face" in message
    for index, face in enumerate(faces):
        x, y, w, h = face.box
        assert f"face {index}: x={x} y={y} w={w} h={h}" in message


def test_face_choice_picks_that_face_and_checks_the_range(faces_dir):
    faces = _faces(faces_dir, "two_people.jpg")
    assert choose_face(faces, 1) is faces[1]
    with pytest.raises(AvatarError, match="--face 2 is out of range.*--face 0 to 1"):
        choose_face(faces, 2)


def test_boxes_are_reported_in_photo_pixels(faces_dir):
    # The same photo at half size, told that its working pixels are half the photo's, lists the same boxes.
    full = _faces(faces_dir, "two_people.jpg")
    with pytest.raises(AvatarError) as caught:
        choose_face(_faces(faces_dir, "two_people.jpg", 0.5), None, photo_scale=0.5)
    x, y, w, _ = full[0].box
    reported = [int(v.split("=")[1]) for v in str(caught.value).split(";")[0].split()[-4:][:3]]
    assert abs(reported[0] - x) <= 4 and abs(reported[1] - y) <= 4 and abs(reported[2] - w) <= 6


def test_small_face_says_its_size_and_the_minimum(faces_dir):
    faces = _faces(faces_dir, "grace_hopper.jpg", 0.2)
    assert len(faces) == 1
    found = faces[0].width_px
    assert found < MIN_FACE_WIDTH_PX
    with pytest.raises(AvatarError, match=f"{found:.0f} px wide.*minimum is {MIN_FACE_WIDTH_PX} px"):
        choose_face(faces, None)


def test_biden_small_in_a_full_body_shot_is_big_enough(faces_dir):
    face = choose_face(_faces(faces_dir, "biden.jpg"), None)
    assert face.width_px >= MIN_FACE_WIDTH_PX


def _turned(face: Face, degrees: float, image_width_px: float) -> Face:
    """The same face rotated about the vertical axis, using the mesh's depth (in units of image width)."""
    points = face.points_px
    z = face.depth * image_width_px
    centre_x, centre_z = points[:, 0].mean(), z.mean()
    angle = np.radians(degrees)
    x = centre_x + (points[:, 0] - centre_x) * np.cos(angle) + (z - centre_z) * np.sin(angle)
    return Face(np.column_stack([x, points[:, 1]]), face.depth)


def test_face_turned_too_far_is_refused(faces_dir):
    frontal = _faces(faces_dir, "grace_hopper.jpg")[0]
    slightly = _turned(frontal, 8, 512)
    assert choose_face([slightly], None) is slightly
    far = _turned(frontal, 45, 512)
    assert abs(yaw_ratio(far)) > 0.45
    with pytest.raises(AvatarError, match="turned too far"):
        choose_face([far], None)


def test_a_face_small_in_a_wide_picture_is_found_in_tiles(faces_dir):
    portrait = Image.open(faces_dir / "grace_hopper.jpg").convert("RGB")
    wide = Image.new("RGB", (2600, 1800), (70, 90, 120))
    wide.paste(portrait, (1700, 1100))
    image = np.asarray(wide)
    found = find_faces(image)
    assert len(found) == 1
    direct = detect_faces(np.asarray(portrait))[0]
    assert np.median(np.linalg.norm(found[0].points_px - (direct.points_px + (1700, 1100)), axis=1)) < 3
    assert find_faces(np.full((900, 1600, 3), 128, np.uint8)) == []
