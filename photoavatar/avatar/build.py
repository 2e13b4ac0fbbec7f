"""`photoavatar avatarize`: photo -> landmarks -> crop -> mouth sprites -> idle loop -> bundle, atomically."""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from photoavatar.avatar.atlas import pack_sprites
from photoavatar.avatar.bundle import IDLE_VIDEO, AvatarBundle, BundleContents, check_out_folder, write_bundle
from photoavatar.avatar.crop import Crop, check_size, crop_head_and_shoulders, redetected_in_crop, roi_in_crop
from photoavatar.avatar.faces import COMFORTABLE_FACE_WIDTH_PX, select_face
from photoavatar.avatar.idle import IdleLoop, make_idle_loop
from photoavatar.avatar.photo import Photo, load_photo
from photoavatar.avatar.video import encode_mp4
from photoavatar.visemes import VISEMES, parse_viseme_list

log = logging.getLogger(__name__)

STAGES = ("load", "landmarks", "visemes", "idle frames", "encode", "write")
ProgressCallback = Callable[[str, int, int], None]  # (stage, index, total); stage "done" at the end


def avatarize(photo: Path, out: Path, *, roi: tuple[int, int, int, int] | None = None,
              visemes: str | Sequence[str] | None = None, face_index: int | None = None, size: int = 512,
              force: bool = False, progress: ProgressCallback | None = None) -> AvatarBundle:
    names = _viseme_names(visemes)
    size = check_size(size)
    check_out_folder(Path(out), force)
    with _reporter(progress) as report:
        report("load")
        loaded = load_photo(Path(photo))
        report("landmarks")
        crop, notes = _find_and_crop(loaded, face_index, size)
        mouth_box = roi_in_crop(roi, crop, loaded.scale, loaded.photo_size_px) if roi else None
        report("visemes")
        from photoavatar.avatar.mouth import synthesize_mouths

        synthesis = synthesize_mouths(crop.image_rgb, crop.face, names, enlargement=crop.scale * loaded.scale)
        notes += (synthesis.advice,) if synthesis.advice else ()
        sheet = pack_sprites(synthesis.frames, synthesis.mask, names)
        report("idle frames")
        loop = make_idle_loop(crop.image_rgb, crop.face, sheet.rect)
        report("encode")
        idle_mp4 = _encode(loop)
        report("write")
        contents = BundleContents(
            idle_mp4=idle_mp4, atlas_rgba=sheet.atlas_rgba, atlas_layout=sheet.layout, mask=sheet.mask,
            roi=_roi_json(mouth_box or synthesis.mouth_box, loop),
            manifest_fields=_manifest_fields(loaded, crop, loop, names, " ".join(notes) or None))
        bundle = write_bundle(Path(out), contents, force=force)
        report("done")
    for note in notes:
        log.info("note: %s", note)
    return bundle


def _viseme_names(visemes: str | Sequence[str] | None) -> tuple[str, ...]:
    if visemes is None:
        return VISEMES
    return parse_viseme_list(visemes if isinstance(visemes, str) else ",".join(visemes))


def _find_and_crop(loaded: Photo, face_index: int | None, size: int) -> tuple[Crop, tuple[str, ...]]:
    from photoavatar.avatar.faces import find_faces

    choice = select_face(find_faces(loaded.image_rgb), face_index, photo_scale=loaded.scale,
                         image_rgb=loaded.image_rgb)
    crop = crop_head_and_shoulders(loaded.image_rgb, choice.face, size)
    notes = choice.notes
    width_in_photo_px = choice.face.width_px / loaded.scale
    if width_in_photo_px < COMFORTABLE_FACE_WIDTH_PX:
        crop = redetected_in_crop(crop)
        notes += (f"the face is small ({width_in_photo_px:.0f} px wide in the photo): it was enlarged "
                  f"{crop.scale:.1f}x with Lanczos resampling and its landmarks found again; a photo with a "
                  f"face of {COMFORTABLE_FACE_WIDTH_PX} px or more looks sharper",)
    return crop, notes


def _encode(loop: IdleLoop) -> bytes:
    with tempfile.TemporaryDirectory(prefix="photoavatar-") as folder:
        path = Path(folder) / IDLE_VIDEO.name
        encode_mp4(loop.frames, path, loop.fps, loop=True)
        return path.read_bytes()


def _roi_json(mouth_box: tuple[int, int, int, int], loop: IdleLoop) -> dict:
    x, y, w, h = (int(v) for v in mouth_box)
    return {
        "format_version": 1,
        "mouth": {"x": x, "y": y, "w": w, "h": h},
        "fps": loop.fps,
        "frame_count": len(loop.frames),
        "pivot": [round(loop.pivot[0], 3), round(loop.pivot[1], 3)],
        "head_track": [[round(dx, 5), round(dy, 5), round(scale, 7)] for dx, dy, scale in loop.head_track],
    }


def _manifest_fields(loaded: Photo, crop: Crop, loop: IdleLoop, names: tuple[str, ...], advice: str | None) -> dict:
    height, width = crop.image_rgb.shape[:2]
    return {
        "source_sha256": loaded.source_sha256,
        "frame_size": [width, height],
        "fps": loop.fps,
        "frame_count": len(loop.frames),
        "duration_s": loop.duration_s,
        "visemes": list(names),
        "photo_advice": advice,
    }


def _reporter(progress: ProgressCallback | None) -> AbstractContextManager[Callable[[str], None]]:
    if progress is not None:
        return _CallbackReporter(progress)
    return _RichReporter() if sys.stderr.isatty() else _LogReporter()


class _CallbackReporter:
    def __init__(self, callback: ProgressCallback):
        self.callback, self.index = callback, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __call__(self, stage: str) -> None:
        self.callback(stage, self.index, len(STAGES))
        self.index += 1


class _LogReporter(_CallbackReporter):
    """Plain log lines when stderr is not a terminal (CI, pipes, the server's job log)."""

    def __init__(self):
        super().__init__(self._line)

    @staticmethod
    def _line(stage: str, index: int, total: int) -> None:
        if stage != "done":
            log.info("avatarize: %s (%d/%d)", stage, index + 1, total)


class _RichReporter:
    def __enter__(self):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("avatarize: {task.description:12}"), BarColumn(), TimeElapsedColumn(),
                            transient=True)
        self.bar.__enter__()
        self.task = self.bar.add_task("starting", total=len(STAGES))
        self.index = 0
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, stage: str) -> None:
        self.bar.update(self.task, completed=self.index, description=stage)
        self.index += 1
