import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from photoavatar.avatar.errors import AvatarError
from photoavatar.avatar.faces import find_faces
from photoavatar.avatar.landmarks import detect_faces
from photoavatar.avatar.photo import MAX_WORKING_SIDE_PX, load_photo


@pytest.fixture(scope="module")
def hopper_rgb(faces_dir):
    return np.asarray(Image.open(faces_dir / "grace_hopper.jpg").convert("RGB"))


def _mean_abs(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"hello, this is a text file\n", "not an image"),
])
def test_empty_and_text_files_are_refused(tmp_path, content, message):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(AvatarError, match=message):
        load_photo(path)


def test_truncated_jpeg_is_refused(tmp_path, faces_dir):
    data = (faces_dir / "obama.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(AvatarError, match="damaged or truncated"):
        load_photo(path)


def test_missing_file_and_folder_are_refused(tmp_path):
    with pytest.raises(AvatarError, match="not found"):
        load_photo(tmp_path / "nothing.jpg")
    with pytest.raises(AvatarError, match="is a folder"):
        load_photo(tmp_path)


def test_grayscale_becomes_three_equal_channels(tmp_path, hopper_rgb):
    path = tmp_path / "gray.png"
    Image.fromarray(hopper_rgb).convert("L").save(path)
    photo = load_photo(path)
    assert photo.image_rgb.shape == hopper_rgb.shape and photo.image_rgb.dtype == np.uint8
    assert np.array_equal(photo.image_rgb[..., 0], photo.image_rgb[..., 2])
    assert len(detect_faces(photo.image_rgb)) == 1


def test_sixteen_bit_png_keeps_its_full_range(tmp_path, hopper_rgb):
    gray8 = np.asarray(Image.fromarray(hopper_rgb).convert("L"))
    path = tmp_path / "deep.png"
    Image.fromarray(gray8.astype(np.uint16) * 257).save(path)  # 16-bit grayscale PNG
    assert Image.open(path).mode.startswith("I")
    photo = load_photo(path)
    assert np.array_equal(photo.image_rgb[..., 1], gray8)


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path, hopper_rgb):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(hopper_rgb).convert("CMYK").save(path, quality=95)
    photo = load_photo(path)
    assert photo.image_rgb.shape == hopper_rgb.shape
    assert _mean_abs(photo.image_rgb, hopper_rgb) < 6


def test_alpha_is_composited_on_white(tmp_path, hopper_rgb):
    rgba = np.dstack([hopper_rgb, np.full(hopper_rgb.shape[:2], 255, np.uint8)])
    rgba[:50, :50, 3] = 0  # a transparent corner
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(path)
    photo = load_photo(path)
    assert (photo.image_rgb[:50, :50] == 255).all()
    assert np.array_equal(photo.image_rgb[100:, 100:], hopper_rgb[100:, 100:])


def test_palette_png_with_transparency(tmp_path, hopper_rgb):
    path = tmp_path / "palette.png"
    Image.fromarray(hopper_rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=255).save(path, transparency=0)
    photo = load_photo(path)
    assert photo.image_rgb.shape == hopper_rgb.shape
    assert len(detect_faces(photo.image_rgb)) == 1


def test_exif_rotation_is_respected(tmp_path, hopper_rgb):
    # Stored on its side with orientation 6 ("rotate 90° clockwise to display"): the viewer sees it upright.
    stored = Image.fromarray(hopper_rgb[:, :400]).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=95, exif=exif)
    photo = load_photo(path)
    assert photo.photo_size_px == (400, 512)
    assert photo.image_rgb.shape == (512, 400, 3)
    assert _mean_abs(photo.image_rgb, hopper_rgb[:, :400]) < 4


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory, hopper_rgb):
    """12000 x 9000 px with the portrait enlarged in the middle (face about 1100 px wide)."""
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    canvas = Image.new("RGB", (12000, 9000), (90, 110, 140))
    canvas.paste(Image.fromarray(hopper_rgb).resize((3072, 3072)), (4464, 2964))
    canvas.save(path, quality=80)
    return path


def test_huge_image_is_shrunk_while_decoding(huge_jpeg):
    # Decoding 12000x9000 in full would need 324 MB for the pixels alone; measure a fresh process's peak.
    code = textwrap.dedent(f"""
        import re
        from photoavatar.avatar.photo import load_photo
        photo = load_photo({str(huge_jpeg)!r})
        # VmHWM: this process's peak resident memory (ru_maxrss would include the parent's, kept across exec)
        peak_kib = re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)
        print(photo.image_rgb.shape[1], photo.image_rgb.shape[0], photo.scale, *photo.photo_size_px, peak_kib)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    width, height, scale, photo_w, photo_h, peak_kib = result.stdout.split()
    assert (int(photo_w), int(photo_h)) == (12000, 9000)
    assert max(int(width), int(height)) <= MAX_WORKING_SIDE_PX
    assert float(scale) == pytest.approx(int(width) / 12000)
    assert int(peak_kib) < 200 * 1024, f"peak memory {int(peak_kib) / 1024:.0f} MiB"


def test_huge_image_face_is_found_where_it_was(huge_jpeg):
    photo = load_photo(huge_jpeg)
    faces = find_faces(photo.image_rgb)  # small in the frame: found in tiles
    assert len(faces) == 1
    x, _, w, _ = faces[0].box
    centre_in_photo = (x + w / 2) / photo.scale
    assert abs(centre_in_photo - (4464 + 3072 * 0.5)) < 300
