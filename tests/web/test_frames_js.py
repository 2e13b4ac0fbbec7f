"""Server video and `say` show what the web page shows: the Python frame renderer against web/mixer.js and
web/compose.js on one timeline.

The page draws, at each moment, the JavaScript mixer at the audio time being heard. A video frame is on screen
for 1/fps; the renderer shows the mixer at the middle of that time, so frame k must carry the page's mouth
(mixer, then the loudness rule) at (k + 1/2)/fps, to the vectors' tolerance.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from photoavatar.animate.frames import talk_frames
from photoavatar.animate.jaw import jaw_weights
from photoavatar.speech.types import ProsodyFrame, VisemeEvent

ROOT = Path(__file__).resolve().parents[2]
CALLER = Path(__file__).with_name("call_js.mjs")
VECTORS = ROOT / "tests" / "vectors"

pytestmark = pytest.mark.usefixtures("node")


def call_js(module: str, calls: list[tuple[str, list]]) -> list:
    request = {"module": str(ROOT / "photoavatar" / "web" / module), "calls": [{"fn": f, "args": a} for f, a in calls]}
    done = subprocess.run(["node", str(CALLER)], input=json.dumps(request), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert all("error" not in a for a in answers), answers
    return [a["result"] for a in answers]


@pytest.mark.parametrize("vector", ["mixer_sentence_60fps.json", "mixer_jittery_frames_with_overrides.json"])
def test_every_video_frame_carries_the_mouth_the_page_draws_at_its_middle(synthetic_bundle, vector):
    data = json.loads((VECTORS / vector).read_text())
    events = [VisemeEvent.from_json(e) for e in data["events"]]
    prosody = [ProsodyFrame.from_json(p) for p in data["prosody"]]
    duration_s = max(e.end_s for e in events) + 0.3
    frames = list(talk_frames(synthetic_bundle, events, prosody, duration_s))
    mid_times = [(f.index + 0.5) / synthetic_bundle.manifest.fps for f in frames]
    [page_frames] = call_js("mixer.js", [("mix", [data["events"], data["prosody"], mid_times])])
    page_mouths = call_js("compose.js", [("jawWeights", [p["weights"], p["loudness"]]) for p in page_frames])
    assert len(page_mouths) == len(frames) > 20
    for frame, page in zip(frames, page_mouths, strict=True):
        ours = jaw_weights(frame.mix.weights, frame.mix.loudness)
        assert ours.keys() == page.keys()
        for name, weight in ours.items():
            assert weight == pytest.approx(page[name], abs=1e-9), (frame.index, name)


def test_sampling_at_the_start_of_each_frame_would_lag_the_page(synthetic_bundle):
    """The old `say` (mixer at k/fps): its frames trail the page's mouth; the check above would catch it."""
    data = json.loads((VECTORS / "mixer_sentence_60fps.json").read_text())
    events = [VisemeEvent.from_json(e) for e in data["events"]]
    prosody = [ProsodyFrame.from_json(p) for p in data["prosody"]]
    frames = list(talk_frames(synthetic_bundle, events, prosody, 1.0))
    starts = [f.index / synthetic_bundle.manifest.fps for f in frames]
    [at_start] = call_js("mixer.js", [("mix", [data["events"], data["prosody"], starts])])
    differences = [abs(f.mix.weights["Rest"] - s["weights"]["Rest"]) for f, s in zip(frames, at_start, strict=True)]
    assert max(differences) > 0.1
