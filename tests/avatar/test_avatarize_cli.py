"""`photoavatar avatarize` from the command line: bad input -> exit code 2, one clear line, nothing written."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from photoavatar.avatar.bundle import load_bundle
from photoavatar.avatar.faces import MIN_FACE_WIDTH_PX
from photoavatar.avatar.landmarks import LIPS_OUTER, detect_faces
from photoavatar.cli import main


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


def _run(capsys, *args):
    code = main(["avatarize", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.err


def _assert_refused(capsys, tmp_path, args, *fragments):
    out = tmp_path / "out" / "avatar"
    code, err = _run(capsys, *args, "--out", out)
    assert code != 0
    assert err.startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    assert not (tmp_path / "out").exists()  # nothing written, not even a temporary folder
    return err


def test_empty_truncated_and_text_files(capsys, tmp_path, inputs, faces_dir):
    empty, text, cut = inputs / "empty.jpg", inputs / "notes.jpg", inputs / "cut.jpg"
    empty.write_bytes(b"")
    text.write_text("not a photo\n")
    data = (faces_dir / "obama.jpg").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    _assert_refused(capsys, tmp_path, ["--photo", empty], "empty")
    _assert_refused(capsys, tmp_path, ["--photo", text], "not an image")
    _assert_refused(capsys, tmp_path, ["--photo", cut], "truncated")
    _assert_refused(capsys, tmp_path, ["--photo", inputs / "missing.jpg"], "not found")


def test_photo_without_a_face(capsys, tmp_path, inputs):
    path = inputs / "wall.png"
    Image.fromarray(np.full((400, 300, 3), 180, np.uint8)).save(path)
    _assert_refused(capsys, tmp_path, ["--photo", path], "no face found")


def test_two_faces_need_a_choice(capsys, tmp_path, faces_dir):
    err = _assert_refused(capsys, tmp_path, ["--photo", faces_dir / "two_people.jpg"], "2 faces", "--face N")
    assert "face 0: x=" in err and "face 1: x=" in err
    _assert_refused(capsys, tmp_path, ["--photo", faces_dir / "two_people.jpg", "--face", "2"], "out of range")


def test_face_too_small(capsys, tmp_path, inputs, faces_dir):
    path = inputs / "small.png"  # the face about 36 px wide, under the measured lower bound
    Image.open(faces_dir / "grace_hopper.jpg").resize((100, 100), Image.Resampling.LANCZOS).save(path)
    _assert_refused(capsys, tmp_path, ["--photo", path], "too small", f"minimum is {MIN_FACE_WIDTH_PX} px")


def test_roi_checks(capsys, tmp_path, faces_dir):
    photo = faces_dir / "grace_hopper.jpg"
    lips = detect_faces(np.asarray(Image.open(photo).convert("RGB")))[0].points_px[list(LIPS_OUTER)]
    x0, y0 = lips.min(axis=0).astype(int)
    _assert_refused(capsys, tmp_path, ["--photo", photo, "--roi", "400,400,200,200"], "outside the photo")
    _assert_refused(capsys, tmp_path, ["--photo", photo, "--roi", f"{x0 + 20},{y0},20,20"], "does not contain the lips")


def test_option_errors(capsys, tmp_path, faces_dir):
    photo = faces_dir / "grace_hopper.jpg"
    _assert_refused(capsys, tmp_path, ["--photo", photo, "--visemes", "Rest,AI,Blah"], "Blah", "valid names are")
    _assert_refused(capsys, tmp_path, ["--photo", photo, "--size", "100"], "--size 100")


def test_existing_out_needs_force(capsys, tmp_path, faces_dir):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = _run(capsys, "--photo", faces_dir / "grace_hopper.jpg", "--out", out)
    assert code != 0 and "already exists" in err and "--force" in err
    code, err = _run(capsys, "--photo", faces_dir / "grace_hopper.jpg", "--out", out, "--force")
    assert code != 0 and "not an avatar bundle" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_second_of_two_people_with_face_1(capsys, tmp_path, faces_dir):
    out = tmp_path / "second"
    code, err = _run(capsys, "--photo", faces_dir / "two_people.jpg", "--out", out, "--face", "1",
                     "--visemes", "Rest,AI,MBP,O")
    assert code == 0, err
    bundle = load_bundle(out)
    assert bundle.visemes == ("Rest", "AI", "MBP", "O")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["second"]


def test_biden_small_face_in_a_full_body_shot(built_bundles):
    built = built_bundles("biden.jpg")
    assert built.bundle.manifest.frame_size_px[1] == 512
    assert len(detect_faces(built.idle[0])) == 1


def test_exif_rotated_photo_gives_an_upright_avatar(capsys, tmp_path, inputs, faces_dir):
    stored = Image.open(faces_dir / "grace_hopper.jpg").transpose(Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90° counter-clockwise to display"
    path = inputs / "phone.jpg"
    stored.save(path, quality=95, exif=exif)
    code, err = _run(capsys, "--photo", path, "--out", tmp_path / "upright", "--visemes", "Rest,AI")
    assert code == 0, err
    frame = np.asarray(Image.open(tmp_path / "upright" / "atlas.png"))
    assert frame.shape[2] == 4
    face = detect_faces(_first_idle_frame(tmp_path / "upright"))[0]
    eyes_y, mouth_y = face.points_px[[33, 263], 1].mean(), face.points_px[list(LIPS_OUTER), 1].mean()
    assert eyes_y < mouth_y  # upright: the eyes above the mouth


def _first_idle_frame(bundle_path):
    from photoavatar.avatar.video import read_mp4

    return read_mp4(bundle_path / "idle.mp4")[0]


@pytest.mark.slow
def test_huge_photo_from_a_pipe_logs_plain_lines(tmp_path, inputs, faces_dir):
    """12000x9000 px, run as a user would (a separate process, stderr not a terminal)."""
    path = inputs / "huge.jpg"
    canvas = Image.new("RGB", (12000, 9000), (90, 110, 140))
    canvas.paste(Image.open(faces_dir / "grace_hopper.jpg").resize((3072, 3072)), (4464, 2964))
    canvas.save(path, quality=80)
    del canvas
    env = dict(os.environ, GLOG_minloglevel="2")
    result = subprocess.run([sys.executable, "-m", "photoavatar.cli", "avatarize", "--photo", str(path),
                             "--out", str(tmp_path / "huge"), "--visemes", "Rest,AI"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "avatarize: landmarks (2/6)" in result.stderr and "\x1b[" not in result.stderr
    assert load_bundle(tmp_path / "huge").manifest.frame_size_px[1] == 512


def test_a_bad_photo_in_a_separate_process_exits_2_without_traceback(tmp_path, inputs):
    path = inputs / "empty.png"
    path.write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "photoavatar.cli", "avatarize", "--photo", str(path),
                             "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: {path} is empty (0 bytes); give a JPEG or PNG portrait"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_demo_avatar_is_built_once_then_reused(tmp_path):
    from photoavatar.avatar.demo import build_demo_avatar

    bundle, preview = build_demo_avatar(tmp_path / "avatars")
    assert bundle.root == tmp_path / "avatars" / "demo" and preview.is_file()
    assert bundle.manifest.photo_advice is None  # the best case: nothing to enlarge, turn, relax or warn about
    assert Image.open(preview).size[0] > 1000  # a contact sheet, not a thumbnail
    written_ns = bundle.manifest_path.stat().st_mtime_ns
    again, _ = build_demo_avatar(tmp_path / "avatars")
    assert again.manifest_path.stat().st_mtime_ns == written_ns  # reused, not rebuilt
    assert sorted(p.name for p in (tmp_path / "avatars").iterdir()) == [".demo-source", "demo"]


def test_inspect_writes_a_contact_sheet(capsys, hopper, tmp_path):
    out = tmp_path / "sheet.png"
    assert main(["inspect", str(hopper.bundle.root), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    sheet = np.asarray(Image.open(out))
    assert sheet.shape[0] >= 3 * 220 and sheet.shape[1] >= 6 * 220  # 12 visemes + ROI, mask, idle frames
    assert main(["inspect", str(tmp_path / "nothing")]) == 2
    assert "no avatar bundle" in capsys.readouterr().err


def _built_with_notes(capsys, caplog, photo, out, visemes) -> tuple[str, str]:
    """Avatarize in-process; (the notes logged, the bundle manifest's photo_advice)."""
    caplog.set_level(logging.INFO)
    code, err = _run(capsys, "--photo", photo, "--out", out, "--visemes", visemes)
    assert code == 0, err
    return caplog.text, load_bundle(out).manifest.photo_advice or ""


def test_small_webcam_photo_is_enlarged_and_says_so(capsys, caplog, tmp_path, faces_dir):
    out = tmp_path / "small"
    notes, advice = _built_with_notes(capsys, caplog, faces_dir / "obama_small.jpg", out, "Rest,AI,MBP")
    assert "note: the face is small (108 px wide in the photo): it was enlarged" in notes and "enlarged" in advice
    assert len(detect_faces(_first_idle_frame(out))) == 1


def test_turned_photo_taken_mid_word_is_accepted_with_notes(capsys, caplog, tmp_path, faces_dir):
    notes, advice = _built_with_notes(capsys, caplog, faces_dir / "obama_turned.jpg", tmp_path / "turned", "Rest,AI,U")
    assert "note: the face is turned to the side (yaw ratio -0.46" in notes
    assert "mid-word" in notes and "mid-word" in advice


def test_portrait_before_a_face_like_emblem_names_the_face_taken(capsys, caplog, tmp_path, inputs, faces_dir):
    from made_photos import portrait_before_false_faces

    photo, _ = portrait_before_false_faces(faces_dir)
    path = inputs / "press_room.png"
    Image.fromarray(photo).save(path)
    notes, _ = _built_with_notes(capsys, caplog, path, tmp_path / "press", "Rest,AI")
    assert "note: took face 0 (x=" in notes and "not skin-coloured" in notes and "choose another with --face N" in notes


def test_two_small_real_faces_still_need_a_choice(capsys, tmp_path, faces_dir):
    _assert_refused(capsys, tmp_path, ["--photo", faces_dir / "two_small_faces.jpg"], "2 faces", "--face N")


def test_a_cli_run_prints_no_native_library_chatter(tmp_path, inputs, faces_dir):
    """Run as a user would: MediaPipe / TF Lite / absl lines must not reach the terminal, ours must."""
    from photoavatar.avatar.native_logs import is_chatter

    env = {k: v for k, v in os.environ.items() if k not in ("GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL")}
    result = subprocess.run([sys.executable, "-m", "photoavatar.cli", "avatarize", "--photo",
                             str(faces_dir / "obama_small.jpg"), "--out", str(tmp_path / "quiet"),
                             "--visemes", "Rest,AI"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert not [line for line in lines if is_chatter(line)], result.stderr
    for noise in ("XNNPACK", "absl::InitializeLog", "inference_feedback_manager", "landmark_projection"):
        assert noise not in result.stderr
    assert "avatarize: landmarks (2/6)" in result.stderr and "note: the face is small" in result.stderr
    bad = subprocess.run([sys.executable, "-m", "photoavatar.cli", "avatarize", "--photo",
                          str(faces_dir / "two_people.jpg"), "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: the photo shows 2 faces")
    assert not [line for line in bad.stderr.splitlines() if is_chatter(line)], bad.stderr
