import os
from dataclasses import dataclass
from functools import cached_property
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


@dataclass(frozen=True)
class Built:
    """A test portrait's bundle, with what some avatar tests compare it to (computed on first use)."""

    bundle: object  # photoavatar.avatar.bundle.AvatarBundle
    photo: Path

    @cached_property
    def crop(self):
        """The same crop the pipeline made (face detection is deterministic)."""
        from photoavatar.avatar.crop import crop_head_and_shoulders
        from photoavatar.avatar.faces import choose_face
        from photoavatar.avatar.landmarks import detect_faces
        from photoavatar.avatar.photo import load_photo

        loaded = load_photo(self.photo)
        face = choose_face(detect_faces(loaded.image_rgb), None, photo_scale=loaded.scale)
        return crop_head_and_shoulders(loaded.image_rgb, face, 512)

    @cached_property
    def idle(self):
        """The decoded idle.mp4 frames."""
        from photoavatar.avatar.video import read_mp4

        return read_mp4(self.bundle.idle_video)


@pytest.fixture(scope="session")
def built_bundles(tmp_path_factory, faces_dir):
    """name -> Built: the one cache of test bundles, each portrait built once for the whole test run."""
    from photoavatar.avatar.build import avatarize

    cache: dict[str, Built] = {}
    root = tmp_path_factory.mktemp("bundles")

    def get(name: str = "grace_hopper.jpg") -> Built:
        if name not in cache:
            photo = faces_dir / name
            cache[name] = Built(avatarize(photo, root / Path(name).stem, progress=lambda *_: None), photo)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def built_bundle(built_bundles):
    """name -> AvatarBundle of a test portrait (from the same cache as built_bundles)."""
    return lambda name="grace_hopper.jpg": built_bundles(name).bundle


@pytest.fixture(scope="session")
def hopper(built_bundles) -> Built:
    return built_bundles("grace_hopper.jpg")


@pytest.fixture(scope="session")
def synthetic_bundle(tmp_path_factory, faces_dir):
    """The small synthetic bundle of photoavatar.testing.bundles (grace_hopper.jpg), loaded: seconds, not avatarize."""
    from photoavatar.avatar.bundle import load_bundle
    from photoavatar.testing.bundles import write_test_bundle

    out = tmp_path_factory.mktemp("synthetic") / "grace"
    write_test_bundle(out, faces_dir / "grace_hopper.jpg")
    return load_bundle(out)


@pytest.fixture(scope="session")
def vector_sentence():
    """(viseme events, prosody frames) of a spoken sentence from tests/vectors/mixer_sentence_60fps.json."""
    import json

    from photoavatar.speech.types import ProsodyFrame, VisemeEvent

    data = json.loads((REPO / "tests" / "vectors" / "mixer_sentence_60fps.json").read_text())
    return (tuple(VisemeEvent.from_json(e) for e in data["events"]),
            tuple(ProsodyFrame.from_json(p) for p in data["prosody"]))
