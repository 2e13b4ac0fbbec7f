"""The avatars folder behind the public-read, authenticated-write routes.

Ids are short slugs checked against one pattern, and files against the bundle's file table
(avatar/bundle.py BUNDLE_FILES), so no request can name a path outside the folder.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

from photoavatar.avatar.bundle import BUNDLE_FILES, MANIFEST, BundleFile
from photoavatar.server.ids import AVATAR_ID, InvalidId, excerpt

FILES_BY_NAME: dict[str, BundleFile] = {file.name: file for file in BUNDLE_FILES}
RESERVED_IDS = {"jobs"}  # path segments the API itself uses under /avatars/


class AvatarNotFound(LookupError):
    pass


class InvalidAvatarId(InvalidId):
    pass


def check_avatar_id(avatar_id: str) -> str:
    """The id, if it fully matches ids.AVATAR_ID (no trailing newline, no look-alikes) and is not reserved."""
    if not AVATAR_ID.accepts(avatar_id) or avatar_id in RESERVED_IDS:
        raise InvalidAvatarId(f"avatar id {excerpt(avatar_id)} is not valid: {AVATAR_ID.explanation}")
    return avatar_id


def asset_urls(avatar_id: str) -> dict[str, str]:
    """The /session-live `assets`: key -> URL path of each file a client loads (docs/protocol.md)."""
    return {file.asset_key: f"/avatars/{avatar_id}/{file.name}" for file in BUNDLE_FILES if file.asset_key}


class AvatarStore:
    def __init__(self, root: Path):
        self.root = root.resolve()

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if AVATAR_ID.accepts(p.name) and (p / MANIFEST.name).is_file())

    def folder(self, avatar_id: str) -> Path:
        """The bundle folder of an id (which may not exist yet); the id is validated first."""
        folder = (self.root / check_avatar_id(avatar_id)).resolve()
        if folder.parent != self.root:  # belt and braces: the pattern already forbids separators and dots
            raise InvalidAvatarId(f"avatar id {avatar_id!r} leaves the avatars folder")
        return folder

    def existing(self, avatar_id: str) -> Path:
        folder = self.folder(avatar_id)
        if not (folder / MANIFEST.name).is_file():
            raise AvatarNotFound(f"no avatar {avatar_id!r}: GET /avatars lists the ids, POST /avatars creates one")
        return folder

    def file(self, avatar_id: str, name: str) -> tuple[Path, str]:
        file = FILES_BY_NAME.get(name)
        if file is None:
            raise AvatarNotFound(f"bundles have no file {name[:80]!r}; they have {', '.join(sorted(FILES_BY_NAME))}")
        path = self.existing(avatar_id) / name
        if not path.is_file():
            raise AvatarNotFound(f"avatar {avatar_id!r} has no {name}")
        return path, file.media_type

    def open(self, avatar_id: str, name: str) -> tuple[BinaryIO, str]:
        """The bundle file, open for reading (it stays readable if the avatar is deleted meanwhile)."""
        path, media_type = self.file(avatar_id, name)
        try:
            return path.open("rb"), media_type
        except FileNotFoundError:  # deleted between the check and the open
            raise AvatarNotFound(f"no avatar {avatar_id!r}: GET /avatars lists the ids") from None

    def delete(self, avatar_id: str) -> None:
        """Atomic for readers: the folder is renamed away in one step (a reader sees all of it or nothing;
        files already open stay readable), then removed. server/cleanup.py removes what a crash leaves."""
        folder = self.existing(avatar_id)
        doomed = folder.with_name(f".{avatar_id}.deleted-{uuid.uuid4().hex[:12]}")
        try:
            folder.rename(doomed)
        except FileNotFoundError:  # another delete won the race
            raise AvatarNotFound(f"no avatar {avatar_id!r}: it was just deleted") from None
        shutil.rmtree(doomed, ignore_errors=True)
