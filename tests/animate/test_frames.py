"""The shared frame renderer (animate/frames.py): stream timeline, mid-frame sampling, continuity, barge-in."""

from __future__ import annotations

import numpy as np
import pytest

from photoavatar.animate.frames import FrameRenderer, frame_time_s, talk_frames
from photoavatar.animate.mixer import mix


def mouth(picture: np.ndarray, bundle) -> np.ndarray:
    x, y = bundle.atlas_layout.placement_px
    w, h = bundle.atlas_layout.sprite_size_px
    return picture[y:y + h, x:x + w].astype(float)


def test_each_frame_shows_the_mixer_at_the_middle_of_its_time_on_screen(synthetic_bundle, vector_sentence):
    events, prosody = vector_sentence
    frames = list(talk_frames(synthetic_bundle, events, prosody, duration_s=1.0))
    assert [f.index for f in frames] == list(range(25))
    expected = mix(events, prosody, [(k + 0.5) / 25 for k in range(25)])
    for frame, want in zip(frames, expected, strict=True):
        assert frame.time_s == pytest.approx(frame_time_s(frame.index, 25.0)) == pytest.approx(want.time_s)
        assert frame.mix.weights == pytest.approx(want.weights, abs=1e-12)


def test_an_utterance_placed_later_on_the_stream_moves_the_mouth_later(synthetic_bundle, vector_sentence):
    events, prosody = vector_sentence
    at_zero, later = FrameRenderer(synthetic_bundle), FrameRenderer(synthetic_bundle)
    at_zero.add_utterance(0.0, events, prosody)
    later.add_utterance(2.0, events, prosody)
    idle = [later.render(k) for k in range(50)]  # two seconds of the stream before it speaks
    assert all(f.mix.weights["Rest"] == 1.0 for f in idle)
    for k in range(25):
        # The idle loop does not restart with an utterance (frame 50 + k draws idle frame (50 + k) mod 50).
        shifted, original = later.render(50 + k), at_zero.render(k)
        assert shifted.mix.weights == pytest.approx(original.mix.weights, abs=1e-9)


def test_a_cut_relaxes_the_mouth_from_where_it_is(synthetic_bundle, vector_sentence):
    events, prosody = vector_sentence
    renderer = FrameRenderer(synthetic_bundle)
    renderer.add_utterance(0.0, events, prosody)
    speaking = [renderer.render(k) for k in range(8)]
    open_frame = max(speaking, key=lambda f: 1 - f.mix.weights["Rest"])
    assert open_frame.mix.weights["Rest"] < 0.5, "the test sentence should open the mouth in its first 0.3 s"
    renderer.cut()
    after = [renderer.render(k) for k in range(8, 20)]
    rest = [f.mix.weights["Rest"] for f in after]
    assert rest[0] < 0.99, "no jump: the first frame after a cut is still on its way to Rest"
    assert rest == sorted(rest) and rest[-1] > 0.999
    rest_picture = FrameRenderer(synthetic_bundle).render(19).picture
    assert np.abs(mouth(after[-1].picture, synthetic_bundle) - mouth(rest_picture, synthetic_bundle)).max() <= 1


def test_a_long_idle_stream_forgets_old_utterances_without_changing_a_frame(synthetic_bundle, vector_sentence):
    events, prosody = vector_sentence
    forgetful, reference = FrameRenderer(synthetic_bundle), FrameRenderer(synthetic_bundle)
    for renderer in (forgetful, reference):
        renderer.add_utterance(0.0, events, prosody)
    for k in range(150):
        frame = forgetful.render(k)
        if k == 100:
            assert len(forgetful._mixer._events) == 0, "seconds after the last event it is forgotten"
        if k in (10, 60, 149):
            assert frame.mix.weights == pytest.approx(_weights_of(reference, k), abs=1e-6)
    forgetful.add_utterance(6.0, events, prosody)
    reference.add_utterance(6.0, events, prosody)
    for k in range(150, 170):
        assert forgetful.render(k).mix.weights == pytest.approx(reference.render(k).mix.weights, abs=1e-6)


def _weights_of(renderer: FrameRenderer, index: int) -> dict:
    return renderer._mixer.advance_to(frame_time_s(index, renderer.fps)).weights


def test_frames_are_the_bundle_size_and_differ_only_in_the_mouth_region(synthetic_bundle, vector_sentence):
    events, prosody = vector_sentence
    renderer = FrameRenderer(synthetic_bundle)
    renderer.add_utterance(0.0, events, prosody)
    frames = [renderer.render(k) for k in range(12)]
    assert renderer.frame_size_px == tuple(synthetic_bundle.manifest.frame_size_px)
    assert frames[0].picture.shape == (synthetic_bundle.manifest.frame_size_px[1], synthetic_bundle.manifest.frame_size_px[0], 3)
    rest = FrameRenderer(synthetic_bundle).render(5).picture.astype(int)
    changed = np.argwhere(np.abs(frames[5].picture.astype(int) - rest).max(axis=2) > 0)
    assert len(changed), "frame 5 speaks: its mouth differs from Rest"
    x, y = synthetic_bundle.atlas_layout.placement_px
    w, h = synthetic_bundle.atlas_layout.sprite_size_px
    assert changed[:, 1].min() >= x - 4 and changed[:, 1].max() < x + w + 4
    assert changed[:, 0].min() >= y - 4 and changed[:, 0].max() < y + h + 4
