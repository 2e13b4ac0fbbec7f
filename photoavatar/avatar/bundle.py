"""The avatar bundle on disk (docs/bundle.md): its file table, validated loading into typed values, atomic writing.

Loading parses avatar.json, atlas.json and roi.json once into the dataclasses below; everything downstream
(compose, render, inspect, the server) reads those, never the JSON. Writing builds the whole bundle in a hidden
folder beside --out and renames it into place, so a crash or a bad photo never leaves half a bundle; with --force
the old bundle is moved aside only once the new one is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np
from PIL import Image

from photoavatar import __version__
from photoavatar.avatar.errors import AvatarError

FORMAT_VERSION = 1
Parsed = TypeVar("Parsed")


# ---------------------------------------------------------------- the file table

@dataclass(frozen=True)
class BundleFile:
    """One file a bundle folder may hold, as the server serves it."""

    name: str
    media_type: str
    asset_key: str | None  # its key in the /session-live `assets` (docs/protocol.md); None: not announced
    hashed: bool  # listed with sha256 and size in avatar.json (written by avatarize, checked on load)


MANIFEST = BundleFile("avatar.json", "application/json", "manifest", hashed=False)
IDLE_VIDEO = BundleFile("idle.mp4", "video/mp4", "idle", hashed=True)
ATLAS_IMAGE = BundleFile("atlas.png", "image/png", "atlas", hashed=True)
ATLAS_LAYOUT = BundleFile("atlas.json", "application/json", "atlas_json", hashed=True)
MASK_IMAGE = BundleFile("mask.png", "image/png", "mask", hashed=True)
ROI = BundleFile("roi.json", "application/json", "roi", hashed=True)
PREVIEW = BundleFile("preview.png", "image/png", None, hashed=False)  # optional, written by photoavatar inspect
BUNDLE_FILES = (MANIFEST, IDLE_VIDEO, ATLAS_IMAGE, ATLAS_LAYOUT, MASK_IMAGE, ROI, PREVIEW)
HASHED_FILES = tuple(file for file in BUNDLE_FILES if file.hashed)


# ---------------------------------------------------------------- the typed contract

@dataclass(frozen=True)
class Rect:
    x_px: int
    y_px: int
    width_px: int
    height_px: int


@dataclass(frozen=True)
class AtlasLayout:
    """atlas.json: where each viseme's sprite lies in atlas.png, and where a sprite goes on the idle frame."""

    sprite_size_px: tuple[int, int]  # (width, height)
    placement_px: tuple[int, int]  # (x, y) of a sprite's top-left on the untransformed idle frame
    sprites: Mapping[str, Rect]  # viseme -> its rectangle in atlas.png


class HeadPose(NamedTuple):
    """The head transform of one idle frame: base point p -> pivot + scale (p - pivot) + (dx, dy)."""

    dx_px: float
    dy_px: float
    scale: float


@dataclass(frozen=True)
class Roi:
    """roi.json: the mouth region and the head track of the idle loop."""

    mouth: Rect
    fps: int
    pivot_px: tuple[float, float]
    head_track: tuple[HeadPose, ...]  # one per idle frame

    @property
    def frame_count(self) -> int:
        return len(self.head_track)


@dataclass(frozen=True)
class FileRecord:
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class Manifest:
    """avatar.json."""

    format_version: int
    generator: str | None
    source_sha256: str | None
    frame_size_px: tuple[int, int]  # (width, height)
    fps: int
    frame_count: int
    duration_s: float
    visemes: tuple[str, ...]
    files: Mapping[str, FileRecord]
    created_at: str | None
    photo_advice: str | None


class _PathOf:
    """A read-only attribute of a loaded bundle: the path of one file of the table (bundle.idle_video)."""

    def __init__(self, file: BundleFile) -> None:
        self.file = file

    def __get__(self, bundle: AvatarBundle | None, owner: type | None = None) -> Path:
        return self if bundle is None else bundle.path_of(self.file)


@dataclass(frozen=True)
class AvatarBundle:
    root: Path
    manifest: Manifest
    atlas_layout: AtlasLayout
    roi: Roi

    def path_of(self, file: BundleFile) -> Path:
        return self.root / file.name

    manifest_path = _PathOf(MANIFEST)
    idle_video = _PathOf(IDLE_VIDEO)
    atlas_image = _PathOf(ATLAS_IMAGE)
    atlas_json = _PathOf(ATLAS_LAYOUT)
    mask_image = _PathOf(MASK_IMAGE)
    roi_json = _PathOf(ROI)
    preview_image = _PathOf(PREVIEW)

    @property
    def visemes(self) -> tuple[str, ...]:
        return self.manifest.visemes


@dataclass(frozen=True)
class BundleContents:
    """Everything a bundle holds, in memory, before it is written; the JSON parts as they go to disk."""

    idle_mp4: bytes
    atlas_rgba: np.ndarray  # H x W x 4 uint8
    atlas_layout: dict  # the atlas.json document
    mask: np.ndarray  # sprite-sized uint8
    roi: dict  # the roi.json document
    manifest_fields: dict  # source_sha256, frame_size, fps, frame_count, duration_s, visemes, photo_advice


# ---------------------------------------------------------------- loading

def load_bundle(path: Path) -> AvatarBundle:
    root = Path(path)
    if not root.is_dir():
        raise AvatarError(f"no avatar bundle at {root}; create one with photoavatar avatarize")
    manifest_json = _read_json(root, MANIFEST)
    if manifest_json.get("format_version") != FORMAT_VERSION:
        raise AvatarError(f"{root / MANIFEST.name} has format_version {manifest_json.get('format_version')!r}, "
                          f"this photoavatar reads {FORMAT_VERSION}; re-run photoavatar avatarize with --force")
    manifest = _parsed(root, _parse_manifest, manifest_json)
    _check_files(root, manifest)
    atlas_json, roi_json = _read_json(root, ATLAS_LAYOUT), _read_json(root, ROI)
    if atlas_json.get("format_version") != FORMAT_VERSION or roi_json.get("format_version") != FORMAT_VERSION:
        raise _fail(root, f"{ATLAS_LAYOUT.name} or {ROI.name} is not format_version {FORMAT_VERSION}")
    layout = _parsed(root, _parse_layout, atlas_json)
    roi = _parsed(root, lambda data: _parse_roi(root, data, manifest), roi_json)
    bundle = AvatarBundle(root, manifest, layout, roi)
    _check_layout(bundle)
    return bundle


def _parsed(root: Path, parse: Callable[[dict], Parsed], data: dict) -> Parsed:
    """PARSE(DATA), with a missing or mistyped field reported as an unusable bundle."""
    try:
        return parse(data)
    except (KeyError, TypeError, ValueError) as error:
        raise _fail(root, f"a required field is missing or malformed ({error!r})") from None


def _parse_manifest(data: dict) -> Manifest:
    width, height = data["frame_size"]
    files = {name: FileRecord(str(entry["sha256"]), int(entry["bytes"]))
             for name, entry in (data.get("files") or {}).items() if isinstance(entry, dict)}
    return Manifest(
        format_version=int(data["format_version"]), generator=data.get("generator"),
        source_sha256=data.get("source_sha256"), frame_size_px=(int(width), int(height)), fps=int(data["fps"]),
        frame_count=int(data["frame_count"]), duration_s=float(data["duration_s"]),
        visemes=tuple(str(name) for name in data["visemes"]), files=files, created_at=data.get("created_at"),
        photo_advice=data.get("photo_advice"))


def _parse_rect(data: dict) -> Rect:
    return Rect(int(data["x"]), int(data["y"]), int(data["w"]), int(data["h"]))


def _parse_layout(data: dict) -> AtlasLayout:
    width, height = data["sprite_size"]
    place = data["placement"]
    sprites = {str(name): _parse_rect(rect) for name, rect in data["sprites"].items()}
    return AtlasLayout((int(width), int(height)), (int(place["x"]), int(place["y"])), sprites)


def _parse_roi(root: Path, data: dict, manifest: Manifest) -> Roi:
    rows, count = data.get("head_track", []), manifest.frame_count
    if data.get("frame_count") != count or len(rows) != count:
        raise _fail(root, f"{ROI.name} has {len(rows)} head_track rows for {count} idle frames")
    if any(len(row) != 3 for row in rows):
        raise _fail(root, f"{ROI.name} head_track rows must be [dx, dy, scale]")
    pivot_x, pivot_y = data["pivot"]
    track = tuple(HeadPose(float(dx), float(dy), float(scale)) for dx, dy, scale in rows)
    return Roi(_parse_rect(data["mouth"]), int(data.get("fps", manifest.fps)), (float(pivot_x), float(pivot_y)),
               track)


def _fail(root: Path, what: str) -> AvatarError:
    return AvatarError(f"the avatar bundle {root} is not usable: {what}; re-run photoavatar avatarize with --force")


def _read_json(root: Path, file: BundleFile) -> dict:
    try:
        data = json.loads((root / file.name).read_text())
    except FileNotFoundError:
        raise _fail(root, f"{file.name} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(root, f"{file.name} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise _fail(root, f"{file.name} is not a JSON object")
    return data


def _check_files(root: Path, manifest: Manifest) -> None:
    for file in HASHED_FILES:
        record, path = manifest.files.get(file.name), root / file.name
        if record is None:
            raise _fail(root, f"{MANIFEST.name} does not list {file.name}")
        if not path.is_file():
            raise _fail(root, f"{file.name} is missing")
        if path.stat().st_size != record.size_bytes:
            raise _fail(root, f"{file.name} is {path.stat().st_size} bytes, {MANIFEST.name} says {record.size_bytes}")
        if _sha256(path.read_bytes()) != record.sha256:
            raise _fail(root, f"{file.name} does not match its sha256 in {MANIFEST.name} (changed or damaged)")


def _check_layout(bundle: AvatarBundle) -> None:
    root, layout = bundle.root, bundle.atlas_layout
    (frame_w, frame_h), (sprite_w, sprite_h) = bundle.manifest.frame_size_px, layout.sprite_size_px
    x, y = layout.placement_px
    if not (0 <= x and 0 <= y and x + sprite_w <= frame_w and y + sprite_h <= frame_h):
        raise _fail(root, f"the sprite placement {{'x': {x}, 'y': {y}}} with size {sprite_w}x{sprite_h} leaves "
                          f"the {frame_w}x{frame_h} frame")
    _check_sprites(bundle)
    _check_mask(bundle)
    _check_roi(bundle)


def _check_sprites(bundle: AvatarBundle) -> None:
    root, layout = bundle.root, bundle.atlas_layout
    sprite_w, sprite_h = layout.sprite_size_px
    with Image.open(bundle.atlas_image) as picture:
        atlas_w, atlas_h, mode = picture.width, picture.height, picture.mode
    if mode != "RGBA":
        raise _fail(root, f"{ATLAS_IMAGE.name} is {mode}, not RGBA")
    for name in bundle.visemes:
        rect = layout.sprites.get(name)
        if rect is None:
            raise _fail(root, f"{ATLAS_LAYOUT.name} has no sprite for viseme {name}")
        if (rect.width_px, rect.height_px) != (sprite_w, sprite_h):
            raise _fail(root, f"sprite {name} is {rect.width_px}x{rect.height_px}, not the sprite_size "
                              f"{sprite_w}x{sprite_h}")
        if rect.x_px < 0 or rect.y_px < 0 or rect.x_px + sprite_w > atlas_w or rect.y_px + sprite_h > atlas_h:
            raise _fail(root, f"sprite {name} lies outside {ATLAS_IMAGE.name} ({atlas_w}x{atlas_h})")


def _check_mask(bundle: AvatarBundle) -> None:
    sprite_w, sprite_h = bundle.atlas_layout.sprite_size_px
    with Image.open(bundle.mask_image) as mask:
        if mask.mode != "L" or mask.size != (sprite_w, sprite_h):
            raise _fail(bundle.root, f"{MASK_IMAGE.name} is {mask.mode} {mask.width}x{mask.height}, expected "
                                     f"8-bit grey {sprite_w}x{sprite_h} (the sprite size)")


def _check_roi(bundle: AvatarBundle) -> None:
    mouth, (frame_w, frame_h) = bundle.roi.mouth, bundle.manifest.frame_size_px
    if (mouth.x_px < 0 or mouth.y_px < 0 or mouth.x_px + mouth.width_px > frame_w
            or mouth.y_px + mouth.height_px > frame_h):
        raise _fail(bundle.root, f"the mouth region {mouth} leaves the {frame_w}x{frame_h} frame")


# ---------------------------------------------------------------- writing

def check_out_folder(out: Path, force: bool) -> None:
    """Refuse early (before any work) an --out that exists without --force, or that is not a bundle."""
    out = Path(out)
    if not out.exists():
        return
    if not force:
        raise AvatarError(f"{out} already exists; choose another --out or add --force to replace it")
    if not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST.name).is_file()):
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
        IDLE_VIDEO.name: contents.idle_mp4,
        ATLAS_IMAGE.name: _png_bytes(contents.atlas_rgba, "RGBA"),
        ATLAS_LAYOUT.name: _json_bytes(contents.atlas_layout),
        MASK_IMAGE.name: _png_bytes(contents.mask, "L"),
        ROI.name: _json_bytes(contents.roi),
    }
    assert set(blobs) == {file.name for file in HASHED_FILES}
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)
    manifest = {
        "format_version": FORMAT_VERSION,
        "generator": f"photoavatar {__version__}",
        **contents.manifest_fields,
        "files": {name: {"sha256": _sha256(blob), "bytes": len(blob)} for name, blob in blobs.items()},
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    (folder / MANIFEST.name).write_bytes(_json_bytes(manifest))
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
