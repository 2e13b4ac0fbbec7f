"""Instruments shared by the tests and the benchmarks; the product never imports them at run time.

They live in the package (not in tests/) so that `pytest` and the `bench/` scripts import them the same plain
way, with no sys.path edits and no reliance on pytest's rootdir import rules:
- peer.py: a real aiortc client peer playing the browser's part,
- servers.py: the real server on a free loopback port in a thread,
- bundles.py: a small synthetic avatar bundle written with the real bundle writer,
- browser.py: the Chromium the browser tests use and how the page is connected,
- live_probe.py: the in-page probe that times what the page receives, and the measurements on its capture.
- loopback.py: the loopback beep that times the page's onset listener,
- bench.py: the bench/ scripts' common options (--utterances, --sessions) and their load-average line.
- fake_elevenlabs.py: a local fake of the ElevenLabs API (HTTP and websocket) on 127.0.0.1.
"""
