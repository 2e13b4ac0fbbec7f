import numpy as np
import pytest
from made_photos import (
    downscaled,
    microphone_before_the_mouth,
    portrait_before_false_faces,
    portrait_with_a_small_face_behind,
)
from PIL import Image

from photoavatar.avatar.crop import crop_head_and_shoulders, redetected_in_crop
from photoavatar.avatar.errors import AvatarError
from photoavatar.avatar.face_evidence import face_evidence
from photoavatar.avatar.faces import (
    COMFORTABLE_YAW_RATIO,
    MAX_YAW_RATIO,
    MIN_FACE_WIDTH_PX,
    choose_face,
    find_faces,
    select_face,
)
from photoavatar.avatar.landmarks import LIPS_INNER, LIPS_OUTER, Face, detect_faces, mouth_metrics, yaw_ratio


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
    far = _turned(frontal, 60, 512)
    assert abs(yaw_ratio(far)) > MAX_YAW_RATIO
    with pytest.raises(AvatarError, match="turned too far"):
        choose_face([far], None)


def test_the_real_turned_photo_is_accepted_with_a_note(faces_dir):
    faces = _faces(faces_dir, "obama_turned.jpg")
    choice = select_face(faces, None)
    assert COMFORTABLE_YAW_RATIO < abs(yaw_ratio(choice.face)) <= MAX_YAW_RATIO
    assert any("turned to the side" in note for note in choice.notes), choice.notes


def test_a_face_like_emblem_and_a_stone_head_behind_the_portrait_are_set_aside(faces_dir):
    photo, (px, py, pw, ph) = portrait_before_false_faces(faces_dir)
    faces = find_faces(photo)
    assert len(faces) >= 2, "the emblem must be found as a face, or this test proves nothing"
    choice = select_face(faces, None, image_rgb=photo)
    cx, cy = choice.face.points_px.mean(axis=0)
    assert px < cx < px + pw and py < cy < py + ph  # the real portrait
    others = [i for i in range(len(faces)) if i != choice.index]
    assert all(face_evidence(photo, faces[i]).doubts for i in others)
    (note,) = choice.notes
    assert f"took face {choice.index}" in note and "--face N" in note and "not skin-coloured" in note
    assert select_face(faces, others[0], image_rgb=photo).face is faces[others[0]]  # still choosable


def test_one_far_larger_face_is_taken_with_a_note(faces_dir):
    photo, (px, py, pw, ph) = portrait_with_a_small_face_behind(faces_dir)
    faces = find_faces(photo)
    assert len(faces) == 2, "the small face must be found, or this test proves nothing"
    assert all(face_evidence(photo, face).convincing for face in faces)
    choice = select_face(faces, None, image_rgb=photo)
    assert px < choice.face.points_px[:, 0].mean() < px + pw
    assert "much smaller" in choice.notes[0] and "--face N" in choice.notes[0]


@pytest.mark.parametrize("name", ["two_people.jpg", "two_small_faces.jpg"])
def test_several_real_faces_of_similar_size_still_need_a_choice(faces_dir, name):
    photo = np.asarray(Image.open(faces_dir / name).convert("RGB"))
    faces = find_faces(photo)
    assert len(faces) == 2
    with pytest.raises(AvatarError, match=r"2 faces \(face 0: x=.*face 1: x=.*choose one with --face N"):
        select_face(faces, None, image_rgb=photo)


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg", "grace_hopper.jpg", "obama_partial_face.jpg", "beard.jpg",
                                  "obama_turned.jpg", "obama_small.jpg", "two_people.jpg", "two_small_faces.jpg"])
def test_every_real_face_of_the_shared_portraits_is_convincing(faces_dir, name):
    photo = np.asarray(Image.open(faces_dir / name).convert("RGB"))
    for face in find_faces(photo):
        assert face_evidence(photo, face).doubts == ()


def test_a_grey_photo_is_not_judged_by_skin_colour(faces_dir):
    grey = np.asarray(Image.open(faces_dir / "grace_hopper.jpg").convert("L").convert("RGB"))
    evidence = face_evidence(grey, find_faces(grey)[0])
    assert evidence.cheek_chroma is None and evidence.convincing


def test_a_small_face_down_to_the_bound_keeps_stable_lip_landmarks(faces_dir):
    """The measured lower bound (bench/face_limits.py): at it, the lips found in the enlarged crop agree with
    those of the full-size photo within 3 % of the mouth width (the crop covers the same head and shoulders)."""
    full = np.asarray(Image.open(faces_dir / "grace_hopper.jpg").convert("RGB"))
    reference_face = find_faces(full)[0]
    reference = redetected_in_crop(crop_head_and_shoulders(full, reference_face, 512))
    small = downscaled(faces_dir, "grace_hopper.jpg", MIN_FACE_WIDTH_PX + 2, reference_face.width_px)
    small_face = find_faces(small)[0]
    choice = select_face([small_face], None, image_rgb=small)
    assert choice.face is small_face
    found = redetected_in_crop(crop_head_and_shoulders(small, small_face, 512))
    lips = list(LIPS_OUTER + LIPS_INNER)
    error = np.median(np.linalg.norm(_in_photo(found, small, full)[lips] - _in_photo(reference, full, full)[lips],
                                     axis=1))
    assert error <= 0.03 * mouth_metrics(reference_face).width_px


def _in_photo(crop, image, full) -> np.ndarray:
    """The crop's landmarks in pixels of the full-size photo."""
    x0, y0 = crop.box_px[:2]
    return (crop.face.points_px / crop.scale + (x0, y0)) * (full.shape[1] / image.shape[1])


def test_below_the_bound_the_face_is_too_small(faces_dir):
    reference_width = find_faces(np.asarray(Image.open(faces_dir / "grace_hopper.jpg").convert("RGB")))[0].width_px
    tiny = downscaled(faces_dir, "grace_hopper.jpg", MIN_FACE_WIDTH_PX - 6, reference_width)
    with pytest.raises(AvatarError, match=f"too small.*minimum is {MIN_FACE_WIDTH_PX} px"):
        select_face(find_faces(tiny), None, image_rgb=tiny)


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


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "obama.jpg", "beard.jpg"])
def test_a_microphone_in_front_of_the_mouth_is_noticed(faces_dir, name):
    photo = np.asarray(Image.open(faces_dir / name).convert("RGB"))
    face = find_faces(photo)[0]
    corners = face.points_px[[61, 291]]
    covered = microphone_before_the_mouth(photo, corners.mean(axis=0), mouth_metrics(face).width_px)
    for picture in (covered, np.repeat(covered.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)):
        notes = select_face(find_faces(picture), None, image_rgb=picture).notes
        assert any("cover the mouth" in note for note in notes), notes


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg", "grace_hopper.jpg", "obama_partial_face.jpg", "beard.jpg",
                                  "obama_turned.jpg", "obama_small.jpg"])
def test_an_uncovered_mouth_gives_no_covered_note(faces_dir, name):
    photo = np.asarray(Image.open(faces_dir / name).convert("RGB"))
    notes = select_face(find_faces(photo), None, image_rgb=photo).notes
    assert not any("cover the mouth" in note for note in notes), notes
