"""Load any portrait photo as 8-bit RGB, upright, and small enough to work on.

Why the care: phone photos carry their rotation in EXIF, scans come as grayscale, CMYK or 16-bit, PNGs carry
alpha, and a 100-megapixel photo must not exhaust memory. JPEGs are shrunk while decoding (`draft`), which
never allocates the full-size picture.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from photoavatar.avatar.errors import AvatarError

MAX_WORKING_SIDE_PX = 4096  # landmarks need no more; keeps a 100 MP photo to ~50 MB of RGB
MAX_PHOTO_PIXELS = 150_000_000  # refuse beyond this (PIL itself refuses above 2 x Image.MAX_IMAGE_PIXELS)
BACKGROUND_FOR_ALPHA = (255, 255, 255)


@dataclass(frozen=True)
class Photo:
    image_rgb: np.ndarray  # H x W x 3 uint8, upright
    scale: float  # working pixels per photo pixel (<= 1; 1 unless the photo was downscaled)
    photo_size_px: tuple[int, int]  # width, height of the upright photo as the user sees it
    source_sha256: str  # of the file's bytes
    path: Path


def load_photo(path: Path) -> Photo:
    path = Path(path)
    data = _read_bytes(path)
    image = _open_image(path, data)
    upright_size = _upright_size(image)
    try:
        _shrink_while_decoding(image, upright_size)
        image.load()
        image = ImageOps.exif_transpose(image)
        image = _reduce_before_converting(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise AvatarError(f"{path} is damaged or truncated ({error}); export the photo again and retry") from None
    rgb = _to_rgb8(image, path)
    rgb = _limit_size(rgb)
    scale = rgb.shape[1] / upright_size[0]
    return Photo(rgb, scale, upright_size, hashlib.sha256(data).hexdigest(), path)


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise AvatarError(f"photo not found: {path}; check the path given to --photo")
    if path.is_dir():
        raise AvatarError(f"{path} is a folder; --photo wants one image file")
    data = path.read_bytes()
    if not data:
        raise AvatarError(f"{path} is empty (0 bytes); give a JPEG or PNG portrait")
    return data


def _open_image(path: Path, data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except UnidentifiedImageError:
        raise AvatarError(f"{path} is not an image PIL can read; give a JPEG, PNG or WebP portrait") from None
    except Image.DecompressionBombError as error:
        raise AvatarError(f"{path} is too large to process safely ({error}); downscale it and retry") from None
    width, height = image.size
    if width * height > MAX_PHOTO_PIXELS:
        raise AvatarError(f"{path} is {width}x{height} pixels ({width * height / 1e6:.0f} MP), more than the "
                          f"{MAX_PHOTO_PIXELS / 1e6:.0f} MP this tool accepts; downscale it and retry")
    if width < 2 or height < 2:
        raise AvatarError(f"{path} is only {width}x{height} pixels; give a real portrait photo")
    return image


def _upright_size(image: Image.Image) -> tuple[int, int]:
    orientation = image.getexif().get(ImageOps.ExifTags.Base.Orientation, 1)
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _shrink_while_decoding(image: Image.Image, upright_size: tuple[int, int]) -> None:
    # draft picks the smallest 1/2^k scale that is at least the size asked for: ask for half the limit, so the
    # decoded picture lands between half the limit and the limit.
    if max(upright_size) > MAX_WORKING_SIDE_PX and image.format == "JPEG":
        factor = 2 * max(upright_size) / MAX_WORKING_SIDE_PX
        image.draft(image.mode, (int(image.size[0] / factor), int(image.size[1] / factor)))


def _reduce_before_converting(image: Image.Image) -> Image.Image:
    """Box-reduce, by a whole factor, a decoded picture larger than the working size (PNG, WebP, ...).

    Only JPEGs shrink while decoding; without this, every conversion below (alpha, 16-bit to 8-bit, RGB)
    would copy the full-size picture: a 40 MP RGBA or 16-bit PNG peaked at 1.2 GB, and 144 MP at 4 GB.
    Like `draft` for JPEGs, the result lands between half the working size and the working size.
    """
    factor = -(-max(image.size) // MAX_WORKING_SIDE_PX)  # ceiling
    if factor < 2:
        return image
    if image.mode not in ("L", "LA", "RGB", "RGBA", "RGBa", "La", "I", "F", "CMYK"):  # reduce() takes these
        image = image.convert("I" if image.mode.startswith("I;16") else "RGBA")
    return image.reduce(factor)


def _to_rgb8(image: Image.Image, path: Path) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _wide_gray_to_rgb8(np.asarray(image))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND_FOR_ALPHA + (255,))
        image = Image.alpha_composite(background, rgba)
    try:
        return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise AvatarError(f"{path} uses a colour mode ({image.mode}) that cannot be converted to RGB "
                          f"({error}); save it as an 8-bit RGB JPEG or PNG") from None


def _wide_gray_to_rgb8(values: np.ndarray) -> np.ndarray:
    """16-bit or float grayscale to 8 bits: full range when the data use it, else stretched to their peak."""
    is_float = values.dtype.kind == "f"
    values = values.astype(np.float64)
    peak = 65535.0 if values.max() > 255 else 255.0
    if is_float and values.max() <= 1.0:
        peak = 1.0
    gray = np.clip(np.rint(values * (255.0 / peak)), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def _limit_size(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    if max(height, width) <= MAX_WORKING_SIDE_PX:
        return rgb
    factor = MAX_WORKING_SIDE_PX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0))
