import hashlib
import json
import shutil
from dataclasses import replace

import av
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from photoavatar.avatar.bundle import (
    BUNDLE_FILES,
    HASHED_FILES,
    MANIFEST,
    BundleContents,
    HeadPose,
    Rect,
    load_bundle,
    write_bundle,
)
from photoavatar.avatar.errors import AvatarError
from photoavatar.visemes import VISEMES


def _json(path) -> dict:
    return json.loads(path.read_text())


def _contents_of(bundle) -> BundleContents:
    """The bundle's files as the writer takes them: the JSON documents exactly as they are on disk."""
    manifest = _json(bundle.manifest_path)
    fields = {k: manifest[k] for k in ("source_sha256", "frame_size", "fps", "frame_count", "duration_s",
                                       "visemes", "photo_advice")}
    return BundleContents(
        idle_mp4=bundle.idle_video.read_bytes(),
        atlas_rgba=np.asarray(Image.open(bundle.atlas_image)),
        atlas_layout=_json(bundle.atlas_json), mask=np.asarray(Image.open(bundle.mask_image)),
        roi=_json(bundle.roi_json), manifest_fields=fields)


def _siblings(folder):
    return sorted(p.name for p in folder.iterdir())


def test_manifest_describes_the_bundle(hopper, faces_dir):
    manifest = hopper.bundle.manifest
    assert manifest.format_version == 1 and manifest.generator.startswith("photoavatar ")
    assert manifest.source_sha256 == hashlib.sha256((faces_dir / "grace_hopper.jpg").read_bytes()).hexdigest()
    assert manifest.visemes == tuple(VISEMES)
    assert manifest.frame_size_px == (hopper.idle.shape[2], hopper.idle.shape[1])
    assert manifest.duration_s == pytest.approx(manifest.frame_count / manifest.fps)
    assert manifest.created_at.endswith("Z")
    for name in ("idle.mp4", "atlas.png", "atlas.json", "mask.png", "roi.json"):
        assert manifest.files[name].size_bytes == (hopper.bundle.root / name).stat().st_size


def test_atlas_holds_one_opaque_sprite_per_viseme(hopper):
    layout = hopper.bundle.atlas_layout
    atlas = np.asarray(Image.open(hopper.bundle.atlas_image))
    assert atlas.shape[2] == 4
    w, h = layout.sprite_size_px
    for name in VISEMES:
        rect = layout.sprites[name]
        assert (rect.width_px, rect.height_px) == (w, h)
        assert (atlas[rect.y_px:rect.y_px + h, rect.x_px:rect.x_px + w, 3] == 255).all()
    rest, ai = (layout.sprites[n] for n in ("Rest", "AI"))
    rest_px = atlas[rest.y_px:rest.y_px + h, rest.x_px:rest.x_px + w, :3].astype(int)
    ai_px = atlas[ai.y_px:ai.y_px + h, ai.x_px:ai.x_px + w, :3].astype(int)
    assert np.abs(rest_px - ai_px).mean() > 2  # the sprites really differ


def test_mask_is_feathered_8_to_16_px(hopper):
    mask = np.asarray(Image.open(hopper.bundle.mask_image)).astype(np.float64) / 255
    assert mask.shape == tuple(reversed(hopper.bundle.atlas_layout.sprite_size_px))
    # Along the normal of a smooth ramp, the 10 % and 90 % levels lie ramp-width apart: for every pixel on
    # the 50 % level, the distances to the <= 10 % region and to the >= 90 % region add up to that width.
    to_outside = ndimage.distance_transform_edt(mask > 0.1)
    to_inside = ndimage.distance_transform_edt(mask < 0.9)
    middle = (mask > 0.45) & (mask < 0.55)
    assert middle.sum() > 50
    ramp = to_outside[middle] + to_inside[middle]
    assert 8 <= np.median(ramp) <= 16, np.percentile(ramp, [10, 50, 90])
    assert mask.max() == 1.0 and mask[0].max() == 0 and mask[:, 0].max() == 0  # solid core, clear edges


def test_idle_video_is_h264_yuv420p_25fps_faststart(hopper):
    path = hopper.bundle.idle_video
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 25
        assert stream.width % 2 == 0 and stream.height % 2 == 0
    data = path.read_bytes()
    atoms, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        atoms.append(data[offset + 4:offset + 8].decode("latin-1"))
        offset += size if size >= 8 else len(data)
    assert atoms.index("moov") < atoms.index("mdat"), atoms


def test_tampered_or_missing_files_are_refused(hopper, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(hopper.bundle.root, copy)
    assert load_bundle(copy).manifest == hopper.bundle.manifest
    (copy / "roi.json").write_text((copy / "roi.json").read_text().replace('"fps": 25', '"fps": 25 '))
    with pytest.raises(AvatarError, match="roi.json is .* bytes|roi.json does not match"):
        load_bundle(copy)
    (copy / "roi.json").unlink()
    with pytest.raises(AvatarError, match="roi.json is missing"):
        load_bundle(copy)
    with pytest.raises(AvatarError, match="no avatar bundle"):
        load_bundle(tmp_path / "nowhere")


def test_a_newer_format_version_is_refused(hopper, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(hopper.bundle.root, copy)
    manifest = json.loads((copy / "avatar.json").read_text())
    manifest["format_version"] = 2
    (copy / "avatar.json").write_text(json.dumps(manifest))
    with pytest.raises(AvatarError, match="format_version 2"):
        load_bundle(copy)


def test_inconsistent_parts_are_refused_and_nothing_is_left(hopper, tmp_path):
    good = _contents_of(hopper.bundle)
    short_track = dict(good.roi, head_track=good.roi["head_track"][:-1])
    small_mask = good.mask[:-2]
    for bad in (replace(good, roi=short_track), replace(good, mask=small_mask)):
        with pytest.raises(AvatarError, match="not usable"):
            write_bundle(tmp_path / "avatar", bad)
        assert _siblings(tmp_path) == []  # no --out and no temporary folder


def test_force_replaces_only_after_the_new_bundle_is_complete(hopper, tmp_path):
    good = _contents_of(hopper.bundle)
    out = tmp_path / "avatar"
    first = write_bundle(out, good)
    with pytest.raises(AvatarError, match="already exists.*--force"):
        write_bundle(out, good)
    broken = replace(good, roi=dict(good.roi, frame_count=3))
    with pytest.raises(AvatarError):
        write_bundle(out, broken, force=True)
    assert load_bundle(out).manifest == first.manifest  # the old bundle survives a failed rebuild
    assert _siblings(tmp_path) == ["avatar"]
    second = write_bundle(out, good, force=True)
    assert second.manifest.files == first.manifest.files and _siblings(tmp_path) == ["avatar"]


def test_force_never_replaces_a_folder_that_is_not_a_bundle(hopper, tmp_path):
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(AvatarError, match="not an avatar bundle"):
        write_bundle(precious, _contents_of(hopper.bundle), force=True)
    assert (precious / "thesis.txt").read_text() == "years of work"


def test_the_typed_bundle_is_what_the_json_files_say(hopper):
    """One parse of avatar.json, atlas.json and roi.json (docs/bundle.md) into the values compose and render read."""
    bundle = hopper.bundle
    atlas, roi, manifest = _json(bundle.atlas_json), _json(bundle.roi_json), _json(bundle.manifest_path)
    assert bundle.atlas_layout.sprite_size_px == tuple(atlas["sprite_size"])
    assert bundle.atlas_layout.placement_px == (atlas["placement"]["x"], atlas["placement"]["y"])
    assert bundle.atlas_layout.sprites == {name: Rect(r["x"], r["y"], r["w"], r["h"])
                                           for name, r in atlas["sprites"].items()}
    mouth = roi["mouth"]
    assert bundle.roi.mouth == Rect(mouth["x"], mouth["y"], mouth["w"], mouth["h"])
    assert bundle.roi.pivot_px == tuple(roi["pivot"]) and bundle.roi.fps == roi["fps"] == manifest["fps"]
    assert bundle.roi.head_track == tuple(HeadPose(*row) for row in roi["head_track"])
    assert bundle.roi.frame_count == manifest["frame_count"] == bundle.manifest.frame_count
    assert {name: (f.sha256, f.size_bytes) for name, f in bundle.manifest.files.items()} == \
        {name: (f["sha256"], f["bytes"]) for name, f in manifest["files"].items()}


def test_a_bundle_without_the_optional_fields_still_loads(hopper, tmp_path):
    """Bundles written before photo_advice/created_at/roi fps existed keep loading (docs/bundle.md)."""
    copy = tmp_path / "copy"
    shutil.copytree(hopper.bundle.root, copy)
    roi = _json(copy / "roi.json")
    del roi["fps"]
    (copy / "roi.json").write_text(json.dumps(roi))
    manifest = _json(copy / MANIFEST.name)
    for optional in ("photo_advice", "created_at", "generator"):
        del manifest[optional]
    blob = (copy / "roi.json").read_bytes()
    manifest["files"]["roi.json"] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    (copy / MANIFEST.name).write_text(json.dumps(manifest))
    loaded = load_bundle(copy)
    assert loaded.roi.fps == hopper.bundle.manifest.fps and loaded.roi.head_track == hopper.bundle.roi.head_track
    assert loaded.manifest.photo_advice is None and loaded.manifest.created_at is None


def test_the_file_table_names_every_file_avatarize_writes(hopper):
    """BUNDLE_FILES is the one list: what avatarize writes and hashes, each with the media type served."""
    on_disk = {path.name for path in hopper.bundle.root.iterdir()}
    assert {f.name for f in HASHED_FILES} | {MANIFEST.name} == on_disk
    assert set(hopper.bundle.manifest.files) == {f.name for f in HASHED_FILES}
    media = {f.name: f.media_type for f in BUNDLE_FILES}
    assert media["idle.mp4"] == "video/mp4" and media["atlas.png"] == media["mask.png"] == "image/png"
    assert media["atlas.json"] == media["roi.json"] == media["avatar.json"] == "application/json"
