"""The limits table and the rate limiter's memory (a key per address or session must not stay forever)."""

from __future__ import annotations

import dataclasses

import pytest

from photoavatar.server.limits import Limits, RateLimiter


class Clock:
    def __init__(self):
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_keys_with_no_recent_call_are_forgotten():
    clock = Clock()
    limiter = RateLimiter(3, window_s=60, clock=clock)
    for n in range(10_000):  # 10,000 addresses, one call each
        assert limiter.allow(f"198.51.100.{n}")
    assert len(limiter) == 10_000
    clock.now_s += 61
    assert limiter.allow("203.0.113.1")
    assert len(limiter) == 1


def test_the_window_still_limits():
    clock = Clock()
    limiter = RateLimiter(2, window_s=60, clock=clock)
    assert limiter.allow("a") and limiter.allow("a") and not limiter.allow("a")
    assert limiter.retry_after_s("a") == 61
    clock.now_s += 60.5
    assert limiter.allow("a")


def test_every_limit_is_a_setting(monkeypatch):
    for item in dataclasses.fields(Limits):
        monkeypatch.setenv(f"PHOTOAVATAR_{item.name.upper()}", "7")
    assert set(dataclasses.asdict(Limits.from_settings()).values()) == {7}


@pytest.mark.parametrize("raw", ["ten", "0", "-3", "1.5"])
def test_a_bad_limit_setting_says_which_and_why(monkeypatch, raw):
    monkeypatch.setenv("PHOTOAVATAR_MAX_UPLOAD_PIXELS", raw)
    with pytest.raises(ValueError, match="PHOTOAVATAR_MAX_UPLOAD_PIXELS must be"):
        Limits.from_settings()


def test_the_docs_list_every_limit():
    from pathlib import Path

    table = (Path(__file__).resolve().parents[2] / "docs" / "limits.md").read_text()
    missing = [f"PHOTOAVATAR_{item.name.upper()}" for item in dataclasses.fields(Limits)
               if f"`PHOTOAVATAR_{item.name.upper()}`" not in table]
    assert missing == []
