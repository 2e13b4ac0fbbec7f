"""H.264 MP4 in and out (PyAV): yuv420p, +faststart, constant frame rate, as every browser plays it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np

from photoavatar.avatar.errors import AvatarError

CRF = "18"  # visually lossless for a still photo that barely moves
PRESET = "veryfast"


def encode_mp4(frames: Iterable[np.ndarray], path: Path, fps: int) -> None:
    """Write RGB frames (H x W x 3 uint8, even dimensions) as H.264 yuv420p with the index (moov) up front."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = _video_stream(container, frame.shape, fps)
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(stream.encode(picture))
        if stream is None:
            raise AvatarError("no frames to encode")
        container.mux(stream.encode())


def _video_stream(container, shape: tuple[int, ...], fps: int):
    height, width = shape[:2]
    if height % 2 or width % 2:
        raise AvatarError(f"H.264 in yuv420p needs even dimensions, got {width}x{height}")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": CRF, "preset": PRESET}
    return stream


def read_mp4(path: Path) -> np.ndarray:
    """All frames of a video as N x H x W x 3 uint8 RGB."""
    try:
        with av.open(str(path)) as container:
            return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    except (av.error.FFmpegError, ValueError) as error:
        raise AvatarError(f"cannot decode {path}: {error}; re-run photoavatar avatarize") from None
