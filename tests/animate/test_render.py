import json

import av
import numpy as np
import pytest
from PIL import Image

from photoavatar.animate.frames import frame_time_s, talk_frames
from photoavatar.animate.mixer import mix
from photoavatar.animate.render import render_talk
from photoavatar.avatar.landmarks import detect_faces, mouth_metrics
from photoavatar.avatar.video import read_mp4

TEXT = "Bob bought a big blue paper map."


@pytest.fixture(scope="module")
def talk(built_bundle, tmp_path_factory):
    bundle = built_bundle("grace_hopper.jpg")
    folder = tmp_path_factory.mktemp("say")
    out = render_talk(avatar=bundle.root, text=TEXT, out=folder / "talk.mp4",
                      timeline_path=folder / "talk.json", plot_path=folder / "talk.png")
    return out, json.loads((folder / "talk.json").read_text()), folder


def test_video_has_h264_and_aac_for_the_whole_speech(talk):
    out, timeline, _ = talk
    with av.open(str(out)) as container:
        kinds = {stream.type: stream.codec_context.name for stream in container.streams}
        duration_s = container.duration / av.time_base
    assert kinds == {"video": "h264", "audio": "aac"}
    assert timeline["duration_s"] <= duration_s <= timeline["duration_s"] + 0.6


def test_timeline_json_ends_with_the_audio(talk):
    _, timeline, _ = talk
    assert timeline["text"] == TEXT
    assert timeline["visemes"], "a sentence must produce viseme events"
    last_end_s = max(event["end_s"] for event in timeline["visemes"])
    assert last_end_s == pytest.approx(timeline["duration_samples"] / timeline["sample_rate_hz"], abs=1e-9)


def test_plot_draws_the_mixed_viseme_curves(talk):
    # A blank figure, or one with only the grey waveform and axes, has (almost) no saturated pixels.
    _, _, folder = talk
    with Image.open(folder / "talk.png") as picture:
        rgb = np.asarray(picture.convert("RGB")).astype(int)
    height, width = rgb.shape[:2]
    assert width > height  # a timeline: time runs across
    saturated = (rgb.max(axis=2) - rgb.min(axis=2)) > 80
    weights_panel = saturated[height // 4: 3 * height // 4]
    assert weights_panel.mean() > 0.002, "no viseme curves drawn"


def _frames_where(timeline, fps, predicate):
    from photoavatar.speech.types import ProsodyFrame, VisemeEvent

    events = [VisemeEvent.from_json(e) for e in timeline["visemes"]]
    prosody = [ProsodyFrame.from_json(p) for p in timeline["prosody"]]
    times = [frame_time_s(i, fps) for i in range(int(timeline["duration_s"] * fps))]  # what frame i shows
    return [i for i, frame in enumerate(mix(events, prosody, times)) if predicate(frame.weights)]


def test_rendered_mouth_closes_on_bilabials_and_opens_on_vowels(talk, built_bundle):
    out, timeline, _ = talk
    frames = read_mp4(out)
    fps = built_bundle("grace_hopper.jpg").manifest.fps
    closed = _frames_where(timeline, fps, lambda w: w["MBP"] >= 0.9)
    open_ = _frames_where(timeline, fps, lambda w: w["AI"] + w["O"] + w["E"] >= 0.8)
    assert closed and open_

    def aperture(index):
        faces = detect_faces(frames[index])
        assert faces, f"no face found on rendered frame {index}"
        return mouth_metrics(faces[0]).aperture

    closed_apertures = [aperture(i) for i in closed]
    open_apertures = [aperture(i) for i in open_]
    assert max(closed_apertures) <= 0.05, closed_apertures
    assert np.median(open_apertures) >= 0.12, open_apertures


def test_the_mp4_carries_the_shared_renderers_frames_on_its_timeline(talk, built_bundle):
    """say = animate/frames.py on the utterance's timeline (which tests/web/test_frames_js.py holds to the page),
    up to the H.264 encoder's noise; a frame off by one would differ by a mouth movement."""
    from photoavatar.speech.types import ProsodyFrame, VisemeEvent

    out, timeline, _ = talk
    bundle = built_bundle("grace_hopper.jpg")
    events = [VisemeEvent.from_json(e) for e in timeline["visemes"]]
    prosody = [ProsodyFrame.from_json(p) for p in timeline["prosody"]]
    decoded = read_mp4(out)
    expected = list(talk_frames(bundle, events, prosody, timeline["duration_s"]))
    x, y = bundle.atlas_layout.placement_px
    w, h = bundle.atlas_layout.sprite_size_px

    def difference(decoded_index: int, frame) -> float:
        return float(np.abs(decoded[decoded_index, y:y + h, x:x + w].astype(float) - frame.picture[y:y + h, x:x + w]).mean())

    assert len(decoded) >= len(expected)
    def mouth(frame) -> np.ndarray:
        return frame.picture[y:y + h, x:x + w].astype(float)

    moving = [(a, b, c) for a, b, c in zip(expected, expected[1:], expected[2:], strict=False)
              if min(np.abs(mouth(a) - mouth(b)).mean(), np.abs(mouth(c) - mouth(b)).mean()) > 2.5]  # b stands out
    # How many frames stand out varies with Piper's random durations (4-8 seen); 3 are enough to tell.
    assert len(moving) >= 3, "the sentence moves the mouth from frame to frame"
    # H.264 (yuv420p, crf 20) changes every pixel by a few levels; the timeline is right if each decoded frame is
    # closer to the frame rendered for its own index than to its neighbours'.
    matched = [difference(b.index, b) < min(difference(b.index, a), difference(b.index, c)) for a, b, c in moving]
    assert np.mean(matched) >= 0.9, np.mean(matched)
    assert np.median([difference(f.index, f) for f in expected]) < 5.0
