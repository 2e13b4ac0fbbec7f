"""Test photos made at run time from the shared portraits and from images that packages ship (never saved
into the project). Each says how it is made, so a failure can be reproduced by eye.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps


def photographed(picture: Image.Image, noise_sigma: float = 2.5, quality: int = 88, seed: int = 3) -> np.ndarray:
    """As if it came from a camera: sensor noise, then JPEG compression (no drawn pixel stays perfectly flat)."""
    pixels = np.asarray(picture.convert("RGB"), dtype=float)
    pixels += np.random.default_rng(seed).normal(0.0, noise_sigma, pixels.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _backdrop(size: tuple[int, int]) -> Image.Image:
    """A press-room backdrop: a blue-grey vertical gradient."""
    width, height = size
    column = np.linspace(70, 40, height)[:, None, None] * np.array([0.8, 0.9, 1.3])
    return Image.fromarray(np.broadcast_to(column, (height, width, 3)).astype(np.uint8))


def golden_emblem(diameter_px: int) -> Image.Image:
    """A face-like emblem, as on a building or a lectern: a golden disc with eyes, brows, a nose and a mouth."""
    emblem = Image.new("RGBA", (diameter_px, diameter_px), (0, 0, 0, 0))
    d, r = ImageDraw.Draw(emblem), diameter_px / 2
    d.ellipse([0, 0, diameter_px - 1, diameter_px - 1], fill=(214, 176, 64, 255), outline=(150, 112, 30, 255),
              width=max(2, diameter_px // 60))
    for side in (-1, 1):
        cx = r + side * 0.36 * r
        d.ellipse([cx - 0.15 * r, r - 0.38 * r, cx + 0.15 * r, r - 0.2 * r], fill=(60, 40, 15, 255))
        d.line([cx - 0.2 * r, r - 0.5 * r, cx + 0.2 * r, r - 0.55 * r], fill=(110, 80, 20, 255),
               width=max(2, diameter_px // 40))
    d.polygon([(r, r - 0.15 * r), (r - 0.12 * r, r + 0.2 * r), (r + 0.12 * r, r + 0.2 * r)], fill=(170, 130, 40, 255))
    d.ellipse([r - 0.32 * r, r + 0.38 * r, r + 0.32 * r, r + 0.55 * r], fill=(120, 70, 25, 255))
    return emblem.filter(ImageFilter.GaussianBlur(1.2))


def stone_relief(height_px: int) -> Image.Image:
    """A grey stone head (a bust on a facade): the astronaut's face from scikit-image, desaturated and softened."""
    from skimage import data

    face = Image.fromarray(data.astronaut()).crop((140, 30, 300, 210))
    face = face.resize((round(height_px * 160 / 180), height_px), Image.Resampling.LANCZOS)
    grey = ImageOps.grayscale(face).filter(ImageFilter.GaussianBlur(1.5))
    return ImageOps.colorize(grey, (72, 72, 70), (205, 203, 196))


def portrait_before_false_faces(faces_dir) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """grace_hopper.jpg (enlarged to 600 px) standing in front of a backdrop that shows a golden emblem bigger
    than her face, and a grey stone head; returns the photo and where the portrait was pasted (x, y, w, h)."""
    canvas = _backdrop((1500, 820))
    portrait = Image.open(faces_dir / "grace_hopper.jpg").convert("RGB").resize((600, 600), Image.Resampling.LANCZOS)
    canvas.paste(portrait, (120, 160))
    emblem = golden_emblem(400)
    canvas.paste(emblem, (830, 90), emblem)
    canvas.paste(stone_relief(300), (1180, 420))
    return photographed(canvas), (120, 160, 600, 600)


def portrait_with_a_small_face_behind(faces_dir) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """grace_hopper.jpg enlarged to 560 px, and behind her shoulder a real face far smaller than hers (the
    astronaut from scikit-image, her face about 40 % as wide); returns the photo and where the portrait is."""
    from skimage import data

    canvas = _backdrop((820, 680))
    portrait = Image.open(faces_dir / "grace_hopper.jpg").convert("RGB").resize((560, 560), Image.Resampling.LANCZOS)
    canvas.paste(portrait, (260, 120))
    passer_by = Image.fromarray(data.astronaut()).crop((100, 0, 380, 300)).resize((300, 320), Image.Resampling.LANCZOS)
    canvas.paste(passer_by, (0, 40))
    return photographed(canvas), (260, 120, 560, 560)


def downscaled(faces_dir, name: str, face_width_px: float, found_width_px: float) -> np.ndarray:
    """The shared portrait `name` shrunk (Lanczos) so that its face, found `found_width_px` wide at full size,
    is `face_width_px` wide: a webcam-size picture of a real face."""
    picture = Image.open(faces_dir / name).convert("RGB")
    factor = face_width_px / found_width_px
    size = (round(picture.width * factor), round(picture.height * factor))
    return np.asarray(picture.resize(size, Image.Resampling.LANCZOS))


def microphone_before_the_mouth(portrait: np.ndarray, mouth_center_px: tuple[float, float],
                                mouth_width_px: float) -> np.ndarray:
    """A dark microphone head on its stand in front of the lower lip and chin: a rounded grey grille, lit from
    above, drawn over a copy of the portrait."""
    picture = Image.fromarray(portrait).convert("RGBA")
    layer = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    cx, cy = mouth_center_px
    w = mouth_width_px
    d.rounded_rectangle([cx - 0.45 * w, cy - 0.05 * w, cx + 0.45 * w, cy + 0.9 * w], radius=int(0.3 * w),
                        fill=(48, 48, 52, 255))
    for k in range(1, 8):  # the grille's bars
        y = cy + k * 0.11 * w
        d.line([cx - 0.4 * w, y, cx + 0.4 * w, y], fill=(80, 80, 86, 255), width=max(1, int(0.02 * w)))
    d.rectangle([cx - 0.08 * w, cy + 0.9 * w, cx + 0.08 * w, portrait.shape[0]], fill=(30, 30, 32, 255))
    return photographed(Image.alpha_composite(picture, layer))
