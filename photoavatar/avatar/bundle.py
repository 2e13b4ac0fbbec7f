"""The avatar bundle on disk (docs/bundle.md): validated loading and atomic writing.

Writing builds the whole bundle in a hidden folder beside --out and renames it into place, so a crash or a bad
photo never leaves half a bundle; with --force the old bundle is moved aside only once the new one is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from photoavatar import __version__
from photoavatar.avatar.errors import AvatarError

FORMAT_VERSION = 1
MANIFEST_NAME = "avatar.json"
FILE_NAMES = ("idle.mp4", "atlas.png", "atlas.json", "mask.png", "roi.json")


@dataclass(frozen=True)
class AvatarBundle:
    root: Path
    manifest: dict
    atlas_layout: dict  # atlas.json
    roi: dict  # roi.json

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def idle_video(self) -> Path:
        return self.root / "idle.mp4"

    @property
    def atlas_image(self) -> Path:
        return self.root / "atlas.png"

    @property
    def atlas_json(self) -> Path:
        return self.root / "atlas.json"

    @property
    def mask_image(self) -> Path:
        return self.root / "mask.png"

    @property
    def roi_json(self) -> Path:
        return self.root / "roi.json"

    @property
    def visemes(self) -> tuple[str, ...]:
        return tuple(self.manifest["visemes"])


@dataclass(frozen=True)
class BundleContents:
    """Everything a bundle holds, in memory, before it is written."""

    idle_mp4: bytes
    atlas_rgba: np.ndarray  # H x W x 4 uint8
    atlas_layout: dict
    mask: np.ndarray  # sprite-sized uint8
    roi: dict
    manifest_fields: dict  # source_sha256, frame_size, fps, frame_count, duration_s, visemes, photo_advice


# ---------------------------------------------------------------- loading

def load_bundle(path: Path) -> AvatarBundle:
    root = Path(path)
    if not root.is_dir():
        raise AvatarError(f"no avatar bundle at {root}; create one with photoavatar avatarize")
    manifest = _read_json(root, MANIFEST_NAME)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise AvatarError(f"{root / MANIFEST_NAME} has format_version {manifest.get('format_version')!r}, this "
                          f"photoavatar reads {FORMAT_VERSION}; re-run photoavatar avatarize with --force")
    _check_files(root, manifest)
    atlas, roi = _read_json(root, "atlas.json"), _read_json(root, "roi.json")
    try:
        _check_layout(root, manifest, atlas, roi)
    except (KeyError, TypeError, ValueError) as error:
        raise _fail(root, f"a required field is missing or malformed ({error!r})") from None
    return AvatarBundle(root, manifest, atlas, roi)


def _fail(root: Path, what: str) -> AvatarError:
    return AvatarError(f"the avatar bundle {root} is not usable: {what}; re-run photoavatar avatarize with --force")


def _read_json(root: Path, name: str) -> dict:
    try:
        data = json.loads((root / name).read_text())
    except FileNotFoundError:
        raise _fail(root, f"{name} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(root, f"{name} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise _fail(root, f"{name} is not a JSON object")
    return data


def _check_files(root: Path, manifest: dict) -> None:
    listed = manifest.get("files") or {}
    for name in FILE_NAMES:
        entry, path = listed.get(name), root / name
        if not isinstance(entry, dict):
            raise _fail(root, f"avatar.json does not list {name}")
        if not path.is_file():
            raise _fail(root, f"{name} is missing")
        if path.stat().st_size != entry.get("bytes"):
            raise _fail(root, f"{name} is {path.stat().st_size} bytes, avatar.json says {entry.get('bytes')}")
        if _sha256(path.read_bytes()) != entry.get("sha256"):
            raise _fail(root, f"{name} does not match its sha256 in avatar.json (changed or damaged)")


def _check_layout(root: Path, manifest: dict, atlas: dict, roi: dict) -> None:
    if atlas.get("format_version") != FORMAT_VERSION or roi.get("format_version") != FORMAT_VERSION:
        raise _fail(root, "atlas.json or roi.json is not format_version 1")
    frame_w, frame_h = manifest["frame_size"]
    sprite_w, sprite_h = atlas["sprite_size"]
    place = atlas["placement"]
    if not (0 <= place["x"] and 0 <= place["y"] and place["x"] + sprite_w <= frame_w and place["y"] + sprite_h <= frame_h):
        raise _fail(root, f"the sprite placement {place} with size {sprite_w}x{sprite_h} leaves the {frame_w}x{frame_h} frame")
    _check_sprites(root, manifest, atlas, sprite_w, sprite_h)
    _check_mask(root, sprite_w, sprite_h)
    _check_roi(root, manifest, roi, frame_w, frame_h)


def _check_sprites(root: Path, manifest: dict, atlas: dict, sprite_w: int, sprite_h: int) -> None:
    with Image.open(root / "atlas.png") as picture:
        atlas_w, atlas_h, mode = picture.width, picture.height, picture.mode
    if mode != "RGBA":
        raise _fail(root, f"atlas.png is {mode}, not RGBA")
    for name in manifest["visemes"]:
        rect = atlas["sprites"].get(name)
        if rect is None:
            raise _fail(root, f"atlas.json has no sprite for viseme {name}")
        if (rect["w"], rect["h"]) != (sprite_w, sprite_h):
            raise _fail(root, f"sprite {name} is {rect['w']}x{rect['h']}, not the sprite_size {sprite_w}x{sprite_h}")
        if rect["x"] < 0 or rect["y"] < 0 or rect["x"] + sprite_w > atlas_w or rect["y"] + sprite_h > atlas_h:
            raise _fail(root, f"sprite {name} lies outside atlas.png ({atlas_w}x{atlas_h})")


def _check_mask(root: Path, sprite_w: int, sprite_h: int) -> None:
    with Image.open(root / "mask.png") as mask:
        if mask.mode != "L" or mask.size != (sprite_w, sprite_h):
            raise _fail(root, f"mask.png is {mask.mode} {mask.width}x{mask.height}, expected 8-bit grey "
                              f"{sprite_w}x{sprite_h} (the sprite size)")


def _check_roi(root: Path, manifest: dict, roi: dict, frame_w: int, frame_h: int) -> None:
    count = manifest["frame_count"]
    if roi.get("frame_count") != count or len(roi.get("head_track", [])) != count:
        raise _fail(root, f"roi.json has {len(roi.get('head_track', []))} head_track rows for {count} idle frames")
    if any(len(row) != 3 for row in roi["head_track"]):
        raise _fail(root, "roi.json head_track rows must be [dx, dy, scale]")
    mouth = roi["mouth"]
    if mouth["x"] < 0 or mouth["y"] < 0 or mouth["x"] + mouth["w"] > frame_w or mouth["y"] + mouth["h"] > frame_h:
        raise _fail(root, f"the mouth region {mouth} leaves the {frame_w}x{frame_h} frame")


# ---------------------------------------------------------------- writing

def check_out_folder(out: Path, force: bool) -> None:
    """Refuse early (before any work) an --out that exists without --force, or that is not a bundle."""
    out = Path(out)
    if not out.exists():
        return
    if not force:
        raise AvatarError(f"{out} already exists; choose another --out or add --force to replace it")
    if not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_NAME).is_file()):
        raise AvatarError(f"{out} exists and is not an avatar bundle; --force only replaces bundles, "
                          f"so choose another --out")


def write_bundle(out: Path, contents: BundleContents, *, force: bool = False) -> AvatarBundle:
    out = Path(out).absolute()
    check_out_folder(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        _write_files(staging, contents)
        load_bundle(staging)  # never publish a bundle that would not load
        _publish(staging, out, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_bundle(out)


def _write_files(folder: Path, contents: BundleContents) -> None:
    blobs = {
        "idle.mp4": contents.idle_mp4,
        "atlas.png": _png_bytes(contents.atlas_rgba, "RGBA"),
        "atlas.json": _json_bytes(contents.atlas_layout),
        "mask.png": _png_bytes(contents.mask, "L"),
        "roi.json": _json_bytes(contents.roi),
    }
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)
    manifest = {
        "format_version": FORMAT_VERSION,
        "generator": f"photoavatar {__version__}",
        **contents.manifest_fields,
        "files": {name: {"sha256": _sha256(blob), "bytes": len(blob)} for name, blob in blobs.items()},
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    (folder / MANIFEST_NAME).write_bytes(_json_bytes(manifest))
    os.chmod(folder, 0o755)  # mkdtemp makes it private; a bundle is served to clients


def _publish(staging: Path, out: Path, force: bool) -> None:
    if not out.exists():
        staging.rename(out)
        return
    if not force:
        raise AvatarError(f"{out} appeared while the bundle was being built; add --force to replace it")
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    out.rename(old)
    try:
        staging.rename(out)
    except OSError:
        old.rename(out)  # put the previous bundle back rather than leave nothing
        raise
    shutil.rmtree(old, ignore_errors=True)


def _png_bytes(pixels: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    picture = Image.fromarray(np.ascontiguousarray(pixels))
    assert picture.mode == mode, f"expected {mode} pixels, got {picture.mode}"
    picture.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _json_bytes(data: dict) -> bytes:
    return (json.dumps(data, indent=1) + "\n").encode()


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()
