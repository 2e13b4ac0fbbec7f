import os
from pathlib import Path

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# WebRTC in tests stays on 127.0.0.1: no packet to a LAN address, no multicast DNS (photoavatar/live/ice.py)
os.environ["PHOTOAVATAR_ICE_LOOPBACK"] = "1"

REPO = Path(__file__).resolve().parents[1]
FACES = REPO.parent / "shared" / "testdata" / "faces"


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not FACES.is_dir():
        pytest.fail(f"test portraits missing: expected {FACES} (the shared test data beside the checkout)")
    return FACES


@pytest.fixture(scope="session")
def built_bundle(tmp_path_factory, faces_dir):
    """Build (once per test session) the avatar bundle of a test portrait; returns its AvatarBundle."""
    from photoavatar.avatar.build import avatarize

    cache: dict[str, object] = {}

    def build(name: str = "grace_hopper.jpg"):
        if name not in cache:
            out = tmp_path_factory.mktemp("bundles") / name.split(".")[0]
            cache[name] = avatarize(faces_dir / name, out)
        return cache[name]

    return build
