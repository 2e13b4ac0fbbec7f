"""Shared, session-scoped avatar bundles: each test portrait is built once for the whole test run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from photoavatar.avatar.build import avatarize
from photoavatar.avatar.bundle import AvatarBundle
from photoavatar.avatar.crop import Crop, crop_head_and_shoulders
from photoavatar.avatar.faces import choose_face
from photoavatar.avatar.landmarks import detect_faces
from photoavatar.avatar.photo import load_photo
from photoavatar.avatar.video import read_mp4


@dataclass(frozen=True)
class Built:
    bundle: AvatarBundle
    crop: Crop  # the same crop the pipeline made (detection is deterministic)
    idle: np.ndarray  # decoded idle.mp4 frames


def _build(photo: Path, out: Path, face_index: int | None = None) -> Built:
    bundle = avatarize(photo, out, face_index=face_index, progress=lambda *_: None)
    loaded = load_photo(photo)
    face = choose_face(detect_faces(loaded.image_rgb), face_index, photo_scale=loaded.scale)
    crop = crop_head_and_shoulders(loaded.image_rgb, face, 512)
    return Built(bundle, crop, read_mp4(bundle.idle_video))


@pytest.fixture(scope="session")
def built_bundles(faces_dir, tmp_path_factory):
    """name -> Built, building each portrait on first use."""
    cache: dict[str, Built] = {}
    root = tmp_path_factory.mktemp("bundles")

    def get(name: str) -> Built:
        if name not in cache:
            cache[name] = _build(faces_dir / name, root / Path(name).stem)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def hopper(built_bundles) -> Built:
    return built_bundles("grace_hopper.jpg")
