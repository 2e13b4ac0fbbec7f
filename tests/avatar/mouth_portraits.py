"""The working crop the mouth tests use, built here from the raw photo (not by the pipeline under test)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

from photoavatar.avatar.landmarks import Face, detect_faces

WORKING_SIZE_PX = 512


class WorkingCrop(NamedTuple):
    image: np.ndarray
    face: Face
    enlargement: float  # crop pixels per photo pixel (> 1: a small face enlarged), as avatarize passes it on


def working_crop(path) -> WorkingCrop:
    """A square about twice the face around it, scaled to 512 px on its long side, and the face in it."""
    photo = np.asarray(Image.open(path).convert("RGB"))
    face = detect_faces(photo)[0]
    x, y, w, h = face.box
    center_x, center_y, side = x + w / 2, y + h / 2, 2 * max(w, h)
    x0, y0 = int(max(0, center_x - side / 2)), int(max(0, center_y - side / 2))
    x1, y1 = int(min(photo.shape[1], center_x + side / 2)), int(min(photo.shape[0], center_y + side / 2))
    scale = WORKING_SIZE_PX / max(x1 - x0, y1 - y0)
    size = (round((x1 - x0) * scale), round((y1 - y0) * scale))
    crop = np.asarray(Image.fromarray(photo[y0:y1, x0:x1]).resize(size, Image.LANCZOS))
    return WorkingCrop(crop, face.transformed(scale, (-x0 * scale, -y0 * scale)), scale)


def synthesize(crop: WorkingCrop, visemes):
    """The mouth synthesis of a working crop, told its enlargement as avatarize tells it."""
    from photoavatar.avatar.mouth import synthesize_mouths

    return synthesize_mouths(crop.image, crop.face, visemes, enlargement=crop.enlargement)
