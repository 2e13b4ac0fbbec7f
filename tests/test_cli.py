import subprocess
import sys

import pytest

from photoavatar.cli import main


def test_unknown_viseme_is_a_clear_error(tmp_path, capsys, faces_dir):
    code = main(["avatarize", "--photo", str(faces_dir / "grace_hopper.jpg"), "--out", str(tmp_path / "a"),
                 "--visemes", "Rest,AI,Bogus"])
    assert code == 2
    assert "Bogus" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_say_with_a_missing_avatar_says_so(tmp_path, capsys):
    code = main(["say", "--avatar", str(tmp_path / "nope"), "--text", "hi", "--out", str(tmp_path / "t.mp4")])
    assert code == 2
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "t.mp4").exists()


def test_say_with_empty_text_writes_nothing(built_bundle, tmp_path, capsys):
    bundle = built_bundle("grace_hopper.jpg")
    code = main(["say", "--avatar", str(bundle.root), "--text", "   ", "--out", str(tmp_path / "t.mp4")])
    assert code == 2
    assert "text" in capsys.readouterr().err.lower()
    assert list(tmp_path.iterdir()) == []


def test_bad_roi_is_rejected_by_the_parser(tmp_path):
    with pytest.raises(SystemExit):
        main(["avatarize", "--photo", "x.jpg", "--out", str(tmp_path / "a"), "--roi", "1,2,3"])


def test_console_script_reports_its_version():
    result = subprocess.run([sys.executable, "-m", "photoavatar.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "photoavatar" in result.stdout
