"""The demo avatar: Grace Hopper's official US Navy portrait (1984, public domain), which matplotlib ships as
sample data, built once and reused.

Why this photo: a newcomer's first look should be the best case, and this is the one a package ships that is
a neutral face, lips closed, looking at the camera, with a face 190 px wide (no enlarging). The astronaut
portrait scikit-image ships, used before, is a broad smile with a 91 px face: the smile folds stay in rounded
shapes and the face has to be enlarged.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from photoavatar import __version__
from photoavatar.avatar.bundle import AvatarBundle, load_bundle
from photoavatar.avatar.errors import AvatarError

log = logging.getLogger(__name__)

DEMO_ID = "demo"
SOURCE_DIR = ".demo-source"  # hidden: the avatars folder lists bundles only
SOURCE_NAME = "grace_hopper.jpg"


def demo_photo_bytes() -> bytes:
    """The portrait's file as matplotlib ships it (not re-encoded)."""
    from matplotlib import cbook

    return Path(cbook.get_sample_data(SOURCE_NAME, asfileobj=False)).read_bytes()


def build_demo_avatar(avatars_dir: Path) -> tuple[AvatarBundle, Path]:
    """The demo bundle in avatars_dir/demo and its preview; a valid one from this version is reused."""
    from photoavatar.avatar.build import avatarize
    from photoavatar.avatar.inspect import write_preview

    avatars_dir = Path(avatars_dir)
    photo = _write_source_photo(avatars_dir)
    out = avatars_dir / DEMO_ID
    bundle = _reusable(out, photo)
    if bundle is None:
        log.info("building the demo avatar from %s", photo)
        bundle = avatarize(photo, out, force=out.exists())
    preview = bundle.preview_image
    if not preview.is_file() or preview.stat().st_mtime < bundle.manifest_path.stat().st_mtime:
        write_preview(bundle.root, preview)
    return bundle, preview


def _write_source_photo(avatars_dir: Path) -> Path:
    path = avatars_dir / SOURCE_DIR / SOURCE_NAME
    blob = demo_photo_bytes()
    if not path.is_file() or path.read_bytes() != blob:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    return path


def _reusable(out: Path, photo: Path) -> AvatarBundle | None:
    if not out.exists():
        return None
    try:
        bundle = load_bundle(out)
    except AvatarError as error:
        log.info("rebuilding the demo avatar: %s", error)
        return None
    same_photo = bundle.manifest.source_sha256 == hashlib.sha256(photo.read_bytes()).hexdigest()
    same_version = bundle.manifest.generator == f"photoavatar {__version__}"
    return bundle if same_photo and same_version else None
