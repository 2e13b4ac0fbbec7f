"""A Piper (VITS) voice's graph cut into a sentence stage and a chain of per-frame parts, so a sentence's audio can
be made a stretch at a time.

A Piper run does two kinds of work. Per sentence: the text encoder and the duration predictor read the phoneme
ids and give every phoneme its length and the sentence its latent frames (`z_p`, 256 samples each). Per frame:
the flow turns those into the decoder's input and the decoder (HiFi-GAN) turns that into audio; that is about
90 % of the cost and grows with the length of the speech. Both per-frame parts are stacks of convolutions, so
any stretch of frames comes out the same as in the whole run when it is computed with enough frames either side
(their receptive half-width, read from the layers: `context_frames`). So the sentence's own prosody is kept
exactly while the listener waits only for the per-sentence part and one short stretch.

The decoder is cut once more, before its second upsampling layer. Most of its reach (12 of its 13 frames each
side) is in the layers before that cut, at 1 and 8 steps a frame, and most of its cost after it, at 64 to 256
steps a frame. The engine computes the head once for the rest of a sentence and keeps it, so each later
stretch pays for 3 frames of context either side instead of 13: the stretches of a sentence cost what the whole
run costs, within some 4 %, where they cost 1.4-1.5 times as much (docs/latency.md, "Stretches that cost what
the whole run costs").

The flow is cut too, between its coupling layers (each reaches 9 frames either side, the flow 33): a stretch
then computes each layer's output only past what the stretch before computed exactly, with that layer's own
context, instead of the whole flow's 33 frames again at both ends.

`split_voice` finds the cut points by the graph's structure (the decoder's first convolution, its upsampling
layers, the latent noise added last, the Split that starts each coupling layer), not by node names, and returns
None for a graph it does not recognise: the engine then synthesises whole runs as before. The parts' 1-D
convolutions are rewritten as 2-D ones of height 1: onnxruntime runs image convolutions in its blocked (NCHWc)
kernels, which make the decoder some 20 % and the sentence stage and the flow some 10 % faster on x86, with the
same output to within float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

CONTEXT_SAFETY_FRAMES = 1  # rounding of the half-width: one frame more than the layers reach


@dataclass(frozen=True)
class FramePart:
    """One per-frame part of the voice: a stretch of its input, with CONTEXT_FRAMES either side, gives that stretch
    of its output exactly as the whole run does."""

    name: str  # for messages: "flow 1" to "flow 4" (or "flow"), "decoder head", "decoder"
    model: bytes  # serialised ONNX
    input: str  # the stretched tensor, the previous part's output (the first part's: the latent)
    extra_inputs: tuple[str, ...]  # of the sentence stage's outputs: per frame (a mask) or per sentence (a speaker)
    input_steps_per_frame: int  # time steps of INPUT in one latent frame (1 before the first upsampling layer)
    context_frames: int


@dataclass(frozen=True)
class VoiceGraphs:
    """The sentence stage and the per-frame parts that follow it, in order (the last one's output is the audio)."""

    sentence: bytes  # phoneme ids -> latent, frame inputs, phoneme durations (the voice's outputs after audio)
    latent: str  # the first part's input
    frame_inputs: tuple[str, ...]  # the sentence stage's outputs besides the latent that the parts read
    parts: tuple[FramePart, ...]  # the flow, then the decoder (in two where it can be cut)


class SplitError(ValueError):
    """The graph is not a Piper VITS graph as this module knows it."""


def split_voice(model) -> VoiceGraphs | None:
    """The parts of an alignment-patched Piper voice (onnx.ModelProto), or None if it cannot be cut."""
    try:
        return _split(model)
    except (SplitError, KeyError, IndexError, StopIteration):
        return None


def _split(model) -> VoiceGraphs:
    graph = model.graph
    producers = {name: node for node in graph.node for name in node.output}
    decoder_input = _decoder_input(graph, producers)
    latent = _latent(graph, producers, decoder_input)
    flow_cuts = _flow_cuts(graph, producers, latent, decoder_input)
    decoder_cuts = _decoder_cut(graph)
    # A flow or decoder whose later layers read more of its earlier ones than the cut tensor is kept whole
    for flow, decoder in ((flow_cuts, decoder_cuts), ([], decoder_cuts)):
        try:
            parts = _frame_parts(model, producers, [(latent, 1), *flow, (decoder_input, 1), *decoder], len(flow))
            break
        except SplitError:
            continue
    else:
        parts = _frame_parts(model, producers, [(latent, 1), (decoder_input, 1)], 0)
    frame_inputs = parts[0].extra_inputs
    outputs = [latent, *frame_inputs, *(output.name for output in graph.output[1:])]
    sentence_nodes, sentence_inputs = _between(graph, producers, {i.name for i in graph.input}, *outputs)
    if set(sentence_inputs) - {i.name for i in graph.input}:
        raise SplitError(f"the sentence stage needs {sentence_inputs}")
    return VoiceGraphs(
        sentence=_model(model, sentence_nodes, [i.name for i in graph.input], outputs, convolutions_2d=True),
        latent=latent, frame_inputs=tuple(frame_inputs), parts=parts)


def _frame_parts(model, producers, starts: list[tuple[str, int]], flow_cuts: int) -> tuple[FramePart, ...]:
    """One part from each of STARTS (tensor, its steps per frame) to the next, the last to the audio; the first
    FLOW_CUTS + 1 are the flow, the rest the decoder."""
    graph = model.graph
    initializers = _initializers(graph)
    ends = [*(tensor for tensor, _ in starts[1:]), graph.output[0].name]
    flow = ["flow"] if not flow_cuts else [f"flow {index + 1}" for index in range(flow_cuts + 1)]
    names = [*flow, *(["decoder head", "decoder"] if len(starts) - len(flow) > 1 else ["decoder"])]
    parts = []
    for (start, steps), end, name in zip(starts, ends, names, strict=True):
        nodes, extra = _between(graph, producers, {start}, end)
        parts.append(FramePart(name, _model(model, nodes, [start, *extra], [end], convolutions_2d=True), start,
                               tuple(extra), steps, context_frames(nodes, start, initializers, steps)))
    unknown = [p.name for p in parts[1:] if set(p.extra_inputs) - set(parts[0].extra_inputs)]
    if unknown:
        raise SplitError(f"the {', '.join(unknown)} read tensors that the flow does not take")
    return tuple(parts)


def _flow_cuts(graph, producers, latent: str, decoder_input: str) -> list[tuple[str, int]]:
    """The inputs of the flow's coupling layers after the first, one step a frame: each layer splits its input in
    two halves (the graph's Split), so the flow can be run a layer at a time."""
    flow_nodes, _ = _between(graph, producers, {latent}, decoder_input)
    return [(node.input[0], 1) for node in flow_nodes if node.op_type == "Split"][1:]


def _upsampling_layers(graph) -> list:
    """HiFi-GAN's upsampling layers, in order: the graph's transposed convolutions (the decoder has no other)."""
    return [node for node in graph.node if node.op_type == "ConvTranspose"]


def _decoder_cut(graph) -> list[tuple[str, int]]:
    """The input of the decoder's second upsampling layer and its steps per frame; none with a single upsampling."""
    upsampling = _upsampling_layers(graph)
    if len(upsampling) < 2:
        return []
    return [(upsampling[1].input[0], _conv_shape(upsampling[0], _initializers(graph))[2])]


def _decoder_input(graph, producers) -> str:
    """The input of the convolution that feeds the first upsampling layer (HiFi-GAN's conv_pre)."""
    node = producers[_upsampling_layers(graph)[0].input[0]]
    while node.op_type != "Conv":
        if node.op_type not in ("LeakyRelu", "Relu", "Add"):
            raise SplitError(f"unexpected {node.op_type} before the first upsampling layer")
        node = producers[node.input[0]]
    return node.input[0]


def _latent(graph, producers, decoder_input: str) -> str:
    """z_p: the output of the Add that mixes the last noise source into the frame means (before the flow)."""
    ancestors = _ancestors(producers, decoder_input)
    noise = [node for node in graph.node if node.op_type.startswith("RandomNormal") and id(node) in ancestors]
    if not noise:
        raise SplitError("no latent noise before the decoder")
    consumers = _consumers(graph)
    frontier, seen = list(noise[-1].output), set()
    while frontier:
        tensor = frontier.pop(0)
        for node in consumers.get(tensor, ()):
            if id(node) in seen or id(node) not in ancestors:
                continue
            seen.add(id(node))
            if node.op_type == "Add":
                return node.output[0]
            frontier.extend(node.output)
    raise SplitError("the latent noise is never added to the frame means")


def _between(graph, producers, starts: set[str], *outputs: str) -> tuple[list, list[str]]:
    """The nodes OUTPUTS depend on, back to STARTS; and the other tensors they read (not weights, not STARTS).

    A tensor computed from STARTS, or from constants alone, is this part's own; one computed from the graph's
    inputs without STARTS (a mask, a speaker embedding) is an input of this part."""
    initializers = _initializers(graph)
    own = _computed_from(graph, starts)
    upstream = _computed_from(graph, {i.name for i in graph.input})
    wanted, kept, extra = list(outputs), {}, []
    while wanted:
        tensor = wanted.pop()
        if tensor in starts or tensor in initializers or not tensor:
            continue
        if tensor in upstream and tensor not in own:
            if tensor not in extra:
                extra.append(tensor)
            continue
        node = producers[tensor]
        if id(node) not in kept:
            kept[id(node)] = node
            wanted.extend(node.input)
    return [node for node in graph.node if id(node) in kept], sorted(extra)


def _computed_from(graph, sources: set[str]) -> set[str]:
    """Every tensor computed, directly or not, from SOURCES (and SOURCES)."""
    reached = set(sources)
    for node in graph.node:  # ONNX nodes are in topological order
        if any(name in reached for name in node.input):
            reached.update(node.output)
    return reached


def _ancestors(producers, tensor: str) -> set[int]:
    seen, stack = set(), [tensor]
    while stack:
        node = producers.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(node.input)
    return seen


def _consumers(graph) -> dict[str, list]:
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def _initializers(graph) -> dict:
    return {init.name: init for init in graph.initializer}


def _model(model, nodes: list, inputs: list[str], outputs: list[str], convolutions_2d: bool = False) -> bytes:
    from onnx import TensorProto, helper

    graph = model.graph
    used = {name for node in nodes for name in node.input}
    initializers = [init for init in graph.initializer if init.name in used]
    if convolutions_2d:
        nodes, initializers = _as_2d_convolutions(nodes, initializers)
    known = {info.name: info for info in [*graph.input, *graph.output, *graph.value_info]}
    inputs_info = [known.get(name) or helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in inputs]
    outputs_info = [known.get(name) or helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs]
    part = helper.make_graph(nodes, graph.name, inputs_info, outputs_info, initializers)
    return helper.make_model(part, opset_imports=model.opset_import, ir_version=model.ir_version).SerializeToString()


H_AXIS = "conv_2d_height_axis"  # the Constant naming axis 2, the height of 1 the 1-D convolutions gain


def _as_2d_convolutions(nodes: list, initializers: list) -> tuple[list, list]:
    """NODES with every 1-D convolution (3-D weights) run as a 2-D one of height 1: its input unsqueezed at axis 2,
    its output squeezed back, so the rest of the graph is untouched. Copies: the voice's own graph is not changed."""
    import numpy as np
    from onnx import helper, numpy_helper

    weights = {init.name: init for init in initializers}
    axis = numpy_helper.from_array(np.array([2], dtype=np.int64), H_AXIS + "_value")
    rewritten, new_weights = [helper.make_node("Constant", [], [H_AXIS], value=axis)], {}
    for node in nodes:
        weight = weights.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type not in ("Conv", "ConvTranspose") or weight is None or len(weight.dims) != 3:
            rewritten.append(node)
            continue
        new_weights[weight.name] = numpy_helper.from_array(numpy_helper.to_array(weight)[:, :, None, :], weight.name)
        flat_in, flat_out = node.input[0], node.output[0]
        tall_in, tall_out = f"{flat_in}_2d_for_{flat_out}", f"{flat_out}_2d"
        attributes = {a.name: _as_2d_attribute(a.name, helper.get_attribute_value(a)) for a in node.attribute}
        rewritten += [helper.make_node("Unsqueeze", [flat_in, H_AXIS], [tall_in]),
                      helper.make_node(node.op_type, [tall_in, *node.input[1:]], [tall_out], name=node.name,
                                       **attributes),
                      helper.make_node("Squeeze", [tall_out, H_AXIS], [flat_out])]
    return rewritten, [new_weights.get(init.name, init) for init in initializers]


def _as_2d_attribute(name: str, value):
    """A 1-D convolution's attribute for the same convolution over a height of 1."""
    if name == "pads":  # [begin, end] -> [top, begin, bottom, end]
        return [0, value[0], 0, value[1]]
    if name in ("kernel_shape", "strides", "dilations"):
        return [1, *value]
    if name == "output_padding":
        return [0, *value]
    return value


def context_frames(nodes: Iterable, frame_input: str, initializers: dict, steps_per_frame: int = 1) -> int:
    """Frames either side of a stretch that its output depends on: the receptive half-width of the longest path
    of convolutions from FRAME_INPUT (STEPS_PER_FRAME time steps a frame), in frames (a layer after an upsampling
    counts in its finer steps)."""
    reach = {frame_input: (0.0, steps_per_frame)}  # tensor -> (half-width in frames, steps per frame)
    for node in nodes:  # ONNX nodes are in topological order
        seen = [reach[name] for name in node.input if name in reach]
        if not seen:
            continue
        width, steps = max(w for w, _ in seen), max(s for _, s in seen)
        if node.op_type in ("Conv", "ConvTranspose"):
            kernel, dilation, stride = _conv_shape(node, initializers)
            if node.op_type == "Conv":
                width += (kernel - 1) * dilation / 2 / steps
            else:
                width += math.ceil(kernel / stride) / steps
                steps *= stride
        for name in node.output:
            reach[name] = (width, steps)
    return math.ceil(max(w for w, _ in reach.values())) + CONTEXT_SAFETY_FRAMES


def _conv_shape(node, initializers: dict) -> tuple[int, int, int]:
    from onnx import helper, numpy_helper

    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    kernel = attributes.get("kernel_shape") or list(numpy_helper.to_array(initializers[node.input[1]]).shape[2:])
    dilation = (attributes.get("dilations") or [1])[-1]
    stride = (attributes.get("strides") or [1])[-1]
    if node.op_type == "Conv" and stride != 1:
        raise SplitError(f"a strided convolution ({node.name}) changes the frame rate")
    return int(kernel[-1]), int(dilation), int(stride)
