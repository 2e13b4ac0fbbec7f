"""H.264 MP4 in and out (PyAV): yuv420p, +faststart, constant frame rate, as every browser plays it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

from photoavatar.avatar.errors import AvatarError

CRF = "18"  # visually lossless for a still photo that barely moves
PRESET = "veryfast"
# A looping video must end where it starts. P-frames carry their coding noise forward, so after a few seconds
# of sub-pixel motion their noise no longer matches the first (intra) frame and the loop point pops (measured:
# 2.3 grey levels against 0.4 between neighbours). Coding both ends of the loop near-losslessly, easing to
# the normal quality over 1.7 s, brings the end back onto the start (measured: 0.46 levels on obama.jpg,
# no more than the loop's largest frame-to-frame step; files grow to 1-2 MB).
LOOP_FIRST_FRAME_Q = 3
LOOP_RAMP_Q = (20, 17, 14, 11, 8, 6, 4)  # blocks of LOOP_RAMP_BLOCK frames, mirrored after the first frame
LOOP_RAMP_BLOCK = 6
LOOP_FINAL_FRAMES, LOOP_FINAL_Q = 3, 3


def encode_mp4(frames: Sequence[np.ndarray], path: Path, fps: int, *, loop: bool = False) -> None:
    """Write RGB frames (H x W x 3 uint8, even dimensions) as H.264 yuv420p with the index (moov) up front.

    loop=True codes the start and end so that playing the file in a loop shows no seam (see LOOP_*)."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = _video_stream(container, frame.shape, fps, loop_zones(len(frames)) if loop else None)
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(stream.encode(picture))
        if stream is None:
            raise AvatarError("no frames to encode")
        container.mux(stream.encode())


def loop_zones(frame_count: int) -> str:
    """x264 zones: near-lossless at both ends of the loop, easing to the normal quality in the middle."""
    final_start = max(1, frame_count - LOOP_FINAL_FRAMES)
    block = LOOP_RAMP_BLOCK
    falling = [(1 + i * block, i * block + block, q) for i, q in enumerate(reversed(LOOP_RAMP_Q))]
    ramp_start = final_start - block * len(LOOP_RAMP_Q)
    rising = [(ramp_start + i * block, ramp_start + i * block + block - 1, q) for i, q in enumerate(LOOP_RAMP_Q)]
    zones = [(0, 0, LOOP_FIRST_FRAME_Q), *[z for z in falling if z[1] < final_start],
             *[z for z in rising if z[0] >= 1], (final_start, frame_count - 1, LOOP_FINAL_Q)]
    return "/".join(f"{first},{last},q={q}" for first, last, q in _without_overlaps(sorted(zones)))


def _without_overlaps(zones: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Short loops: where the two ramps meet keep the earlier zone (x264 refuses overlapping zones)."""
    kept: list[tuple[int, int, int]] = []
    for first, last, q in zones:
        if kept and first <= kept[-1][1]:
            continue
        kept.append((first, last, q))
    return kept


def _video_stream(container, shape: tuple[int, ...], fps: int, zones: str | None):
    height, width = shape[:2]
    if height % 2 or width % 2:
        raise AvatarError(f"H.264 in yuv420p needs even dimensions, got {width}x{height}")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": CRF, "preset": PRESET, **({"x264-params": f"zones={zones}"} if zones else {})}
    return stream


def read_mp4(path: Path) -> np.ndarray:
    """All frames of a video as N x H x W x 3 uint8 RGB."""
    try:
        with av.open(str(path)) as container:
            return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    except (av.error.FFmpegError, ValueError) as error:
        raise AvatarError(f"cannot decode {path}: {error}; re-run photoavatar avatarize") from None
