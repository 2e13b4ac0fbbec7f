"""One avatar job in its own process: `python -m photoavatar.server.avatar_worker PHOTO OUT MAX_PIXELS MEMORY_MB`.

Why a process: avatarize is CPU- and memory-heavy Python; in the server's process it would hold the GIL
against the 20 ms audio pacing of every live session, and the memory of a big photo would stay with the
server after the job. Here it runs at the lowest CPU priority (nice 19), under a kernel cap on its data
memory (RLIMIT_DATA; past it, allocations fail and the job fails with a clear message), and all of its
memory goes back to the system when it exits.

It talks to server/jobs.py with one JSON object per line on stdout: {"stage", "index", "total"} while it
works, then {"done": true} or {"error": "..."} (the message never names a server path), and
{"peak_rss_bytes": n} last.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import sys
from pathlib import Path

UPLOADED_PHOTO = "the uploaded photo"
_MEMORY_SIGNS = ("out of memory", "cannot allocate memory", "failed to map segment")  # PIL, libc, the loader
_ANY_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])/(?:[\w.@+-]+/)*[\w.@+-]+")


def public_message(message: str, photo: Path, out: Path) -> str:
    """The job's error as the client sees it: server paths replaced by what they are to the user."""
    for path, name in ((photo, UPLOADED_PHOTO), (out, "the avatar folder"), (out.parent, "the avatars folder"),
                       (photo.parent, "the upload folder")):
        if len(path.parts) > 1:  # never "/" or "."
            message = message.replace(str(path), name)
    return _ANY_ABSOLUTE_PATH.sub("<server path>", message)


def check_pixels(photo: Path, max_pixels: int) -> None:
    """Refuse, from the header alone, a photo with more pixels than uploads may have."""
    from PIL import Image

    from photoavatar.avatar.errors import AvatarError

    try:
        with Image.open(photo) as image:
            width, height = image.size
    except Exception:  # unreadable: load_photo says what is wrong with it
        return
    if width * height > max_pixels:
        raise AvatarError(f"{photo} is {width}x{height} pixels ({width * height / 1e6:.0f} MP); uploads may have "
                          f"at most {max_pixels / 1e6:.0f} MP: downscale the photo and upload it again")


def _say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def _limit_memory(memory_mb: int) -> None:
    limit = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _out_of_memory(error: BaseException) -> bool:
    """Past RLIMIT_DATA, Python raises MemoryError, C libraries ENOMEM, and a late import cannot map its code."""
    text = str(error).lower()
    return (isinstance(error, MemoryError) or (isinstance(error, OSError) and error.errno == errno.ENOMEM)
            or any(sign in text for sign in _MEMORY_SIGNS))


def run(photo: Path, out: Path, max_pixels: int, memory_mb: int) -> int:
    os.nice(19)  # live audio first
    photo, out = photo.absolute(), out.absolute()
    try:
        from photoavatar.avatar.build import avatarize  # the libraries load before the cap: it is the photo's

        check_pixels(photo, max_pixels)
        if memory_mb > 0:
            _limit_memory(memory_mb)
        avatarize(photo, out, progress=lambda stage, index, total: _say(stage=stage, index=index, total=total))
        _say(done=True)
        return 0
    except Exception as error:
        if not _out_of_memory(error):
            print(f"avatar job failed: {error!r}", file=sys.stderr, flush=True)
            _say(error=public_message(str(error) or type(error).__name__, photo, out))
            return 1
        print(f"avatar job ran out of its memory: {error!r}", file=sys.stderr, flush=True)
        _say(error=f"{UPLOADED_PHOTO} needs more than the {memory_mb} MiB an avatar job may use: "
                   "upload a smaller photo (fewer pixels)")
        return 1
    finally:
        _say(peak_rss_bytes=_peak_rss_bytes())


def _peak_rss_bytes() -> int:
    """This process's own high-water mark. Not ru_maxrss: Linux keeps that across fork and exec, so it would
    report the (much larger) server process this worker was forked from."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    photo_arg, out_arg, pixels_arg, memory_arg = sys.argv[1:5]
    sys.exit(run(Path(photo_arg), Path(out_arg), int(pixels_arg), int(memory_arg)))
