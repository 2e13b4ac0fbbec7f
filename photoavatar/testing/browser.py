"""The headless Chromium of the browser tests and benchmarks (Debian's), and connecting the bundled page."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--autoplay-policy=no-user-gesture-required", "--disable-dev-shm-usage",
                 # WebRTC media stays on 127.0.0.1 (the server's loopback ICE mode): no LAN address, no mDNS
                 "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns"]


MISSING_CHROMIUM = ("chromium is not installed, so the web client cannot run in a browser: run `make browser-deps` "
                    "(part of `make test` and `make bench`; it installs Debian's chromium) or `apt-get install -y chromium`")


class ChromiumMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__(MISSING_CHROMIUM)


def launch(playwright):
    """Debian's Chromium through Playwright, headless, with CHROMIUM_ARGS; ChromiumMissing says how to install it."""
    if CHROMIUM is None:
        raise ChromiumMissing()
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def connect(page, base: str, avatar_id: str = "grace") -> None:
    """Open the page at BASE, pick AVATAR_ID, press Connect and wait until the page says it is ready."""
    page.goto(base)
    page.wait_for_function("document.querySelectorAll('#avatar-select option').length > 0", timeout=20000)
    page.select_option("#avatar-select", avatar_id)
    page.click("#connect")
    page.wait_for_function("['ready', 'error'].includes(window.photoavatar.state)", timeout=30000)
    assert page.evaluate("window.photoavatar.state") == "ready", page.evaluate("window.photoavatar.detail")
