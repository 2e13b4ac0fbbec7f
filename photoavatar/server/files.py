"""Serve a bundle file from a handle opened before the response starts, so a concurrent delete cannot cut it.

Starlette's FileResponse opens its path only after it has sent the headers: a bundle deleted in between
gave a 500 (or a response cut mid-stream). Here the route opens the file first (404 if it is gone); the
open handle keeps the bytes readable even after the folder is renamed away and removed (server/avatars.py
deletes that way), and ranges, ETag and Last-Modified still come from FileResponse.
"""

from __future__ import annotations

import contextlib
import os
from typing import BinaryIO

import anyio
from fastapi.responses import FileResponse


class HeldFileResponse(FileResponse):
    def __init__(self, handle: BinaryIO, **kwargs):
        super().__init__(handle.name, stat_result=os.fstat(handle.fileno()), **kwargs)
        self._handle = handle

    async def __call__(self, scope, receive, send) -> None:
        extensions = {k: v for k, v in scope.get("extensions", {}).items() if k != "http.response.pathsend"}
        try:  # (pathsend would hand the server the path, which may be gone by then)
            await super().__call__({**scope, "extensions": extensions}, receive, send)
        finally:
            self._handle.close()

    @contextlib.asynccontextmanager
    async def _open_file(self):
        # FileResponse reads through this; each range reader seeks first, so one handle serves them all
        yield anyio.wrap_file(self._handle)
