"""Leftovers of a killed server are removed at start, and only ours, and only stale ones (issue 12 §7)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from test_app import server

from photoavatar.server.cleanup import STALE_AFTER_S, remove_stale_leftovers


def make(path, old: bool, folder: bool = True):
    if folder:
        path.mkdir()
        (path / "atlas.png").write_bytes(b"partial")
    else:
        path.write_bytes(b"x")
    if old:
        stamp = time.time() - STALE_AFTER_S - 60
        os.utime(path, (stamp, stamp))
    return path


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def test_the_server_removes_stale_leftovers_at_start_and_logs_them(tmp_path, caplog, monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # tempfile.gettempdir() is cached: also pass it explicitly below
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    avatars = tmp_path / "avatars"
    avatars.mkdir()
    stale = [make(avatars / ".grace.partial-k2j4h1", old=True), make(avatars / ".grace.old-a8d7f6", old=True),
             make(temp / "photoavatar-upload-mbv0ose6", old=True),
             make(temp / f"photoavatar-upload-{dead_pid()}-x1y2z3", old=False)]
    kept = [make(avatars / ".grace.partial-fresh01", old=False),  # an avatarize running beside the server
            make(temp / "photoavatar-upload-fresh123", old=False),
            make(temp / f"photoavatar-upload-{os.getpid()}-mine42", old=True),  # this process: in use
            make(avatars / ".git", old=True), make(avatars / "notes.partial-x", old=True, folder=False),
            make(temp / "someone-else-upload-1", old=True)]
    with caplog.at_level(logging.INFO, logger="photoavatar.server.cleanup"):
        async with server(tmp_path) as http:
            assert (await http.get("/health")).status_code == 200
    assert [p for p in stale if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    assert "removed 4 leftover(s) of an earlier run" in caplog.text and ".grace.partial-k2j4h1" in caplog.text


def test_nothing_to_remove_logs_nothing(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="photoavatar.server.cleanup"):
        assert remove_stale_leftovers(tmp_path / "no-avatars-yet", tmp_path) == []
    assert caplog.text == ""
