"""Browser fixtures for the web client's tests: headless Chromium (Debian's) and a loopback static server."""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from photoavatar.testing.browser import CHROMIUM, MISSING_CHROMIUM, launch

WEB = Path(__file__).resolve().parents[2] / "photoavatar" / "web"
NODE = shutil.which("node")


class _FoldersHandler(SimpleHTTPRequestHandler):
    """Serves photoavatar/web at / and extra folders at /<name>/; no caching, quiet."""

    folders: dict[str, Path] = {}

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0].split("#", 1)[0]
        first, _, rest = clean.lstrip("/").partition("/")
        if first in self.folders:
            return str(self.folders[first] / rest)
        return str(WEB / clean.lstrip("/"))

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def static_server(tmp_path) -> Iterator[tuple[str, dict[str, Path]]]:
    """(base URL, folders): put {name: folder} in folders to serve it at /name/."""
    folders: dict[str, Path] = {}
    handler = type("Handler", (_FoldersHandler,), {"folders": folders})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(WEB)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", folders
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary the JavaScript-twin suites run in; they fail (never skip) without it."""
    if NODE is None:
        pytest.fail("node is not installed, so the JavaScript twins cannot be checked: run `make node-deps` "
                    "(part of `make test`; it installs Debian's nodejs) or `apt-get install -y nodejs`")
    return NODE


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium; the browser tests fail (never skip) without it."""
    if CHROMIUM is None:
        pytest.fail(MISSING_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    yield tab
    context.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, faces_dir):
    """The real server (aiortc, Piper) on a loopback port, serving the synthetic bundle as avatar "grace"."""
    from photoavatar.server.app import create_app
    from photoavatar.server.config import ServerSettings
    from photoavatar.testing.bundles import write_test_bundle
    from photoavatar.testing.servers import server_in_thread

    avatars = tmp_path_factory.mktemp("avatars")
    write_test_bundle(avatars / "grace", faces_dir / "grace_hopper.jpg")
    with server_in_thread(create_app(ServerSettings.from_settings(avatars_dir=avatars))) as base_url:
        yield base_url
