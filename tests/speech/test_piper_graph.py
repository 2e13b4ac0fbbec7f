"""The bundled voice's graph cut in three (speech/piper_graph.py): the parts are the voice, and a phrase rendered
a stretch at a time is the phrase rendered whole."""

from __future__ import annotations

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
def phrase(voice):
    return voice.begin(voice.phonemize(TEXT)[0])


def _quiet_inputs(voice, ids):
    """The voice's inputs with both noise scales at 0, so two runs of the same ids give the same audio."""
    return {"input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32)}


def test_the_three_parts_are_the_voice(voice):
    """Same ids, no noise: the original model's audio and durations equal the parts' run one after another."""
    _symbols, ids = voice._to_ids(voice.phonemize(TEXT)[0])
    original = onnxruntime.InferenceSession(aligned_model(bundled_voice()), providers=["CPUExecutionProvider"])
    audio, durations = original.run(None, _quiet_inputs(voice, ids))
    latent, mask, part_durations = voice.instances[0].sentence.run(None, _quiet_inputs(voice, ids))
    assert np.array_equal(durations, part_durations)
    decoder_in = voice.instances[0].flow.run(None, {voice.graphs.latent: latent, voice.graphs.flow_inputs[0]: mask})[0]
    parts = voice.instances[0].decoder.run(None, {voice.graphs.decoder_input: decoder_in})[0]
    assert np.abs(parts.reshape(-1) - audio.reshape(-1)).max() < 1e-4


@pytest.mark.parametrize("cuts", [(1,), (26,), (26, 52, 104), (10, 11, 12, 60), (-1,)])
def test_stretches_join_into_the_whole_phrase(voice, phrase, cuts):
    edges = [0, *[(c if c > 0 else phrase.frames + c) for c in cuts], phrase.frames]
    whole = voice.render(phrase, 0, phrase.frames).astype(np.int32)
    stretches = np.concatenate([voice.render(phrase, a, b) for a, b in zip(edges, edges[1:], strict=False)])
    assert len(stretches) == len(whole) == phrase.frames * voice.hop_samples
    assert np.abs(stretches - whole).max() <= STRETCH_TOLERANCE


def test_too_little_context_would_be_heard(voice, phrase, monkeypatch):
    """The context the layers reach is what makes the joins exact: with a third of it they are not."""
    whole = voice.render(phrase, 0, phrase.frames).astype(np.int32)
    short = dataclasses.replace(voice.graphs, flow_context_frames=voice.graphs.flow_context_frames // 3,
                                decoder_context_frames=voice.graphs.decoder_context_frames // 3)
    monkeypatch.setattr(voice, "graphs", short)
    edges = list(range(0, phrase.frames, 20)) + [phrase.frames]
    stretches = np.concatenate([voice.render(phrase, a, b) for a, b in zip(edges, edges[1:], strict=False)])
    assert np.abs(stretches - whole).max() > 50 * STRETCH_TOLERANCE


def test_the_context_is_read_from_the_layers(voice):
    # the flow: 4 coupling layers of 4 convolutions, kernel 5 (2 frames each side); the decoder: HiFi-GAN
    assert voice.graphs.flow_context_frames == 4 * 4 * 2 + 1
    assert 10 <= voice.graphs.decoder_context_frames <= 20


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
    assert graphs is not None and graphs.flow_inputs and not graphs.decoder_inputs
