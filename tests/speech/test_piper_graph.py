"""The bundled voice's graph cut in parts (speech/piper_graph.py): the parts are the voice, and a phrase rendered
a stretch at a time is the phrase rendered whole."""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

from photoavatar.speech.piper_engine import STRETCH_TOLERANCE, LoadedVoice, aligned_model, bundled_voice
from photoavatar.speech.piper_graph import _model, context_frames, split_voice

TEXT = "Maybe we could meet by the beach, and bring a big blue map for the walk."


@pytest.fixture(scope="module")
def voice(piper_engine) -> LoadedVoice:
    return piper_engine.loaded_voice()


@pytest.fixture(scope="module")
def sentence_stage(voice):
    return voice.begin(voice.phonemize(TEXT)[0])


@pytest.fixture
def phrase(sentence_stage):
    """The sentence stage with nothing kept from another test's stretches (a render keeps part of its flow)."""
    return dataclasses.replace(sentence_stage, known={})


def _quiet_inputs(voice, ids):
    """The voice's inputs with both noise scales at 0, so two runs of the same ids give the same audio."""
    return {"input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32)}


def test_the_parts_are_the_voice(voice):
    """Same ids, no noise: the original model's audio and durations equal the parts' run one after another."""
    _symbols, ids = voice._to_ids(voice.phonemize(TEXT)[0])
    original = onnxruntime.InferenceSession(aligned_model(bundled_voice()), providers=["CPUExecutionProvider"])
    audio, durations = original.run(None, _quiet_inputs(voice, ids))
    latent, mask, part_durations = voice.instances[0].sentence.run(None, _quiet_inputs(voice, ids))
    assert np.array_equal(durations, part_durations)
    assert voice.graphs.frame_inputs == voice.graphs.parts[0].extra_inputs == (voice.graphs.frame_inputs[0],)
    tensor = latent
    for part, session in zip(voice.graphs.parts, voice.instances[0].parts, strict=True):
        extra = {name: mask for name in part.extra_inputs}
        tensor = session.run(None, {part.input: tensor, **extra})[0]
        assert tensor.shape[-1] == latent.shape[-1] * _steps_after(voice, part)
    assert np.abs(tensor.reshape(-1) - audio.reshape(-1)).max() < 1e-4


def _steps_after(voice, part) -> int:
    """Time steps a frame of PART's output has: the next part's input steps, or the hop after the last."""
    parts = voice.graphs.parts
    index = parts.index(part)
    return parts[index + 1].input_steps_per_frame if index + 1 < len(parts) else voice.hop_samples


@pytest.mark.parametrize("rest_from", [1, 2])
@pytest.mark.parametrize("cuts", [(1,), (26,), (26, 52, 104), (10, 11, 12, 60), (-1,)])
def test_stretches_join_into_the_whole_phrase(voice, phrase, cuts, rest_from):
    edges = [0, *[(c if c > 0 else phrase.frames + c) for c in cuts], phrase.frames]
    whole = voice.render(phrase, 0, phrase.frames).astype(np.int32)
    stretches = np.concatenate(list(voice.render_stretches(phrase, edges, rest_from)))
    assert len(stretches) == len(whole) == phrase.frames * voice.hop_samples
    assert np.abs(stretches - whole).max() <= STRETCH_TOLERANCE


def test_too_little_context_would_be_heard(voice, phrase, sentence_stage, monkeypatch):
    """The context the layers reach is what makes the joins exact: with a third of it they are not."""
    whole = voice.render(sentence_stage, 0, phrase.frames).astype(np.int32)
    short = dataclasses.replace(voice.graphs, parts=tuple(dataclasses.replace(part, context_frames=part.context_frames // 3)
                                                          for part in voice.graphs.parts))
    monkeypatch.setattr(voice, "graphs", short)
    edges = list(range(0, phrase.frames, 20)) + [phrase.frames]
    stretches = np.concatenate(list(voice.render_stretches(phrase, edges)))
    assert np.abs(stretches - whole).max() > 50 * STRETCH_TOLERANCE


def test_the_context_is_read_from_the_layers(voice):
    *flow, head, tail = voice.graphs.parts
    assert [part.name for part in voice.graphs.parts] == ["flow 1", "flow 2", "flow 3", "flow 4", "decoder head",
                                                          "decoder"]
    # the flow: 4 coupling layers, one part each, of 4 convolutions, kernel 5 (2 frames each side)
    assert [part.context_frames for part in flow] == [4 * 2 + 1] * 4
    assert all(part.input_steps_per_frame == 1 for part in flow)
    # HiFi-GAN: most of its reach is before the second upsampling (conv_pre, 8x, the first residual blocks);
    # after it, 3 steps of 8x upsampling and residual blocks at 64-256 steps a frame reach 2-3 frames
    assert (head.input_steps_per_frame, tail.input_steps_per_frame) == (1, 8)
    assert 10 <= head.context_frames <= 15
    assert 2 <= tail.context_frames <= 4


def test_a_first_stretch_runs_each_part_over_only_what_it_needs(voice, phrase):
    """The listener waits for the first stretch: each part runs over the stretch and the context of the parts after
    it, not over the rest of the phrase, even when the stretch starts after the phrase's first frame."""
    with _recording(voice) as runs:
        next(voice.render_stretches(phrase, [3, 20, phrase.frames]))
    assert runs == _minimal_runs(voice, 3, 20)
    assert runs[0][1] < phrase.frames / 2


def _minimal_runs(voice, start_frame: int, end_frame: int) -> list[tuple[int, int]]:
    """(part, time steps) of each part's run for frames START..END alone: the stretch and the reach after it."""
    reach_after, expected = 0, []
    for index in reversed(range(len(voice.graphs.parts))):
        part = voice.graphs.parts[index]
        reach_after += part.context_frames
        expected.append((index, (end_frame + reach_after - max(0, start_frame - reach_after))
                         * part.input_steps_per_frame))
    return expected[::-1]


def test_the_rest_of_a_phrase_can_wait_for_its_third_stretch(voice, phrase):
    """In an utterance's first phrase the second stretch is as urgent as the first (the listener has only the first
    in hand): with rest_from=2 it runs each part over only its new frames and that part's own context (what the
    first stretch computed exactly is not computed again), and the third computes the rest."""
    with _recording(voice) as runs:
        stretches = voice.render_stretches(phrase, [0, 30, 60, 90, phrase.frames], rest_from=2)
        next(stretches)
        runs.clear()
        next(stretches)
        assert runs == [(index, (30 + 2 * part.context_frames) * part.input_steps_per_frame)
                        for index, part in enumerate(voice.graphs.parts)]
        runs.clear()
        next(stretches)
        assert {index for index, _ in runs} == set(range(len(voice.graphs.parts)))
        runs.clear()
        next(stretches)
    assert [index for index, _ in runs] == [len(voice.graphs.parts) - 1]


def test_runs_that_reach_the_phrase_end_are_not_run_again(voice, phrase):
    """A part's output is exact wherever its run reached the phrase's start or end, as in the whole run: a first
    stretch whose runs all reach the end leaves only the last part for the second stretch."""
    *before_last, last = voice.graphs.parts
    first_end = phrase.frames - before_last[-1].context_frames - last.context_frames + 5
    with _recording(voice) as runs:
        stretches = voice.render_stretches(phrase, [0, first_end, phrase.frames], rest_from=2)
        next(stretches)
        assert runs[0] == (0, phrase.frames)
        runs.clear()
        next(stretches)
    assert [index for index, _ in runs] == [len(before_last)]


def test_a_later_stretch_runs_the_last_part_on_little_more_than_its_frames(voice, phrase):
    """After the second stretch keeps the decoder head's output, a stretch costs one run of the last part over its
    frames and the tail's context, and nothing else."""
    tail = voice.graphs.parts[-1]
    with _recording(voice) as runs:
        stretches = voice.render_stretches(phrase, [0, 30, 60, 90])
        next(stretches)
        next(stretches)
        runs.clear()
        next(stretches)
    assert runs == [(len(voice.graphs.parts) - 1, (30 + 2 * tail.context_frames) * tail.input_steps_per_frame)]


@contextlib.contextmanager
def _recording(voice):
    """The (part, time steps) of every part run on any of VOICE's instances while inside."""
    runs: list[tuple[int, int]] = []
    kept = [instance.parts for instance in voice.instances]
    for instance in voice.instances:
        instance.parts = [_Recorded(session, index, runs) for index, session in enumerate(instance.parts)]
    try:
        yield runs
    finally:
        for instance, parts in zip(voice.instances, kept, strict=True):
            instance.parts = parts


class _Recorded:
    """An onnxruntime session that notes which part ran over how many time steps (third-party object)."""

    def __init__(self, session, index, runs):
        self.session, self.index, self.runs = session, index, runs

    def run(self, outputs, feed, *args):
        first = next(iter(feed.values()))
        self.runs.append((self.index, first.shape[-1]))
        return self.session.run(outputs, feed, *args)


def test_context_of_a_made_up_stack(tmp_path):
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 7], [0.1] * 7)
    up = helper.make_tensor("u", TensorProto.FLOAT, [1, 1, 16], [0.1] * 16)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[3, 3]),  # 3 frames
             helper.make_node("ConvTranspose", ["a", "u"], ["b"], strides=[8], pads=[4, 4]),  # 2 frames
             helper.make_node("Conv", ["b", "w"], ["c"], pads=[9, 9], dilations=[3])]  # 9 steps of 1/8 frame
    initializers = {"w": weight, "u": up}
    assert context_frames(nodes, "x", initializers) == int(np.ceil(3 + 2 + 9 / 8)) + 1


def test_1d_convolutions_run_as_2d_ones_give_the_same_output():
    rng = np.random.default_rng(7)

    def weight(name, *shape):
        return helper.make_tensor(name, TensorProto.FLOAT, shape, rng.normal(0, 0.3, shape).reshape(-1).tolist())

    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["a"], pads=[4, 4], dilations=[2]),
             helper.make_node("LeakyRelu", ["a"], ["r"], alpha=0.1),
             helper.make_node("ConvTranspose", ["r", "u"], ["t"], strides=[4], pads=[2, 2], output_padding=[1]),
             helper.make_node("Add", ["t", "t"], ["y"])]
    graph = helper.make_graph(nodes, "stack", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [weight("w", 16, 3, 5), helper.make_tensor("b", TensorProto.FLOAT, [16], [0.5] * 16),
                               weight("u", 16, 8, 8)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    flat, tall = (_model(model, list(graph.node), ["x"], ["y"], convolutions_2d=two_d) for two_d in (False, True))
    assert all(len(w.dims) == 4 for w in onnx.load_from_string(tall).graph.initializer if w.name in "wu")
    x = rng.normal(size=(1, 3, 37)).astype(np.float32)
    outputs = [onnxruntime.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
               for m in (flat, tall)]
    assert outputs[0].shape == outputs[1].shape == (1, 8, 4 * 37 + 1)
    assert np.allclose(outputs[0], outputs[1], atol=1e-5)


def test_a_graph_that_is_not_a_vits_voice_is_not_cut():
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "not-a-voice",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1])])
    assert split_voice(helper.make_model(graph)) is None


def test_split_finds_the_same_cut_in_a_fresh_copy_of_the_voice():
    model = onnx.load(aligned_model(bundled_voice()))
    graphs = split_voice(model)
    assert graphs is not None and graphs.frame_inputs
    assert [part.extra_inputs for part in graphs.parts] == [graphs.frame_inputs] * 4 + [(), ()]
