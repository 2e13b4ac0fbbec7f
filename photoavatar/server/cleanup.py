"""At start, remove what an earlier server left behind when it was killed mid-job (and say so in the log).

Only our own leftovers, and only stale ones:
- in the avatars folder, hidden bundle staging folders `.NAME.partial-*` and `.NAME.old-*`
  (avatar/bundle.py writes a bundle there, then renames it into place, so a kill -9 leaves one behind),
  and `.NAME.deleted-*` (server/avatars.py renames a bundle away before removing it);
- in the temporary folder, `photoavatar-upload-*` work folders of avatar jobs (server/jobs.py).
Stale means: its owning process (whose pid the name carries) is gone, or, for names without a pid, it has
not changed for STALE_AFTER_S, so a `photoavatar avatarize` running beside the server keeps its files.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

STALE_AFTER_S = 15 * 60  # longer than any avatarize writes or encodes one bundle (~1 min on 2 cores)
UPLOAD_PREFIX = "photoavatar-upload-"
_BUNDLE_LEFTOVER = re.compile(r"\.[a-z0-9][a-z0-9_-]{0,63}\.(partial|old|deleted)-[A-Za-z0-9_-]+", re.ASCII)
_UPLOAD_LEFTOVER = re.compile(re.escape(UPLOAD_PREFIX) + r"(?:(?P<pid>[0-9]+)-)?[A-Za-z0-9_]+", re.ASCII)


def upload_folder_prefix() -> str:
    """The prefix of this process's upload work folders: it carries the pid, so a restart knows them stale."""
    return f"{UPLOAD_PREFIX}{os.getpid()}-"


def remove_stale_leftovers(avatars_dir: Path, temp_dir: Path | None = None,
                           stale_after_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove our stale leftovers; returns what was removed (each is logged)."""
    temp_dir = Path(temp_dir or tempfile.gettempdir())
    now = time.time()
    removed = []
    for folder, pattern in ((Path(avatars_dir), _BUNDLE_LEFTOVER), (temp_dir, _UPLOAD_LEFTOVER)):
        for path in _entries(folder):
            found = pattern.fullmatch(path.name)
            if found and _is_stale(path, found, now, stale_after_s) and _owned_by_us(path):
                _remove(path)
                removed.append(path)
    if removed:
        log.info("removed %d leftover(s) of an earlier run: %s", len(removed), ", ".join(str(p) for p in removed))
    return removed


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:  # no such folder yet, or unreadable: nothing of ours there
        return []


def _is_stale(path: Path, found: re.Match, now: float, stale_after_s: float) -> bool:
    pid = found.groupdict().get("pid")
    if pid is not None and int(pid) != os.getpid():
        return not _process_alive(int(pid)) or _age_s(path, now) > stale_after_s
    return pid is None and _age_s(path, now) > stale_after_s


def _age_s(path: Path, now: float) -> float:
    try:
        return now - path.lstat().st_mtime
    except OSError:
        return 0.0


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _owned_by_us(path: Path) -> bool:
    try:
        return path.lstat().st_uid == os.getuid()
    except OSError:
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
