"""The embedded Piper engine: real synthesis with the bundled voice, timings checked against the audio."""

from __future__ import annotations

import math
import shutil
import threading

import numpy as np
import pytest

from photoavatar.speech import stages
from photoavatar.speech.engine import SpeechEngine, SpeechError
from photoavatar.speech.piper_engine import (
    BUNDLED_VOICE_ID,
    FIRST_STRETCH_S,
    INAUDIBLE_LEVEL,
    MAX_STRETCH_S,
    PiperEngine,
    _Instance,
    _without_start,
    bundled_voice,
    group_phonemes,
    stretch_edges,
)
from photoavatar.speech.types import PhonemeTiming
from photoavatar.speech.voices import list_voices, make_engine

SENTENCES = [
    "Hello there, my friend.",
    "I choose the judge's high bounty!",
    "Would you like a cup of tea?",
    "Five thousand people arrived on the third of May.",
]


def test_engine_implements_the_protocol(piper_engine):
    assert isinstance(piper_engine, SpeechEngine)
    assert piper_engine.name == "piper"
    assert [v.voice_id for v in piper_engine.voices()][0] == BUNDLED_VOICE_ID


@pytest.mark.parametrize("text", SENTENCES)
def test_phoneme_durations_add_up_to_the_audio_exactly(piper_engine, text):
    for chunk in piper_engine.synthesize(text):
        assert chunk.samples.dtype == np.int16 and chunk.sample_rate_hz == 22050
        assert chunk.phonemes[0].start_sample == chunk.start_sample
        assert chunk.phonemes[-1].end_sample == chunk.end_sample
        assert sum(p.duration_samples for p in chunk.phonemes) == len(chunk.samples)
        for before, after in zip(chunk.phonemes, chunk.phonemes[1:], strict=False):
            assert after.start_sample == before.end_sample  # no gaps, no overlaps
        assert all(p.duration_samples > 0 for p in chunk.phonemes)


def test_chunks_continue_one_another_across_sentences(piper_engine):
    chunks = list(piper_engine.synthesize(" ".join(SENTENCES[1:])))
    # each sentence comes as stretches of its one model run (speech/piper_graph.py), in order
    texts = [c.text for c in chunks]
    assert [t for i, t in enumerate(texts) if i == 0 or t != texts[i - 1]] == SENTENCES[1:]
    assert chunks[0].start_sample == 0
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start_sample == before.end_sample
    for sentence in SENTENCES[1:]:  # real speech, not silence
        assert max(np.abs(c.samples.astype(np.int32)).max() for c in chunks if c.text == sentence) > 3000


def test_the_first_stretch_is_short_and_later_ones_grow_with_the_audio_made(piper_engine):
    chunks = list(piper_engine.synthesize("The weather today is sunny with a light breeze from the west and a few "
                                          "clouds over the hills in the late afternoon, said the old farmer."))
    frame_s = 256 / chunks[0].sample_rate_hz
    inside = [c for c in chunks if c.phonemes[-1].end_sample < c.phrase[-1].end_sample]  # not a phrase's last
    assert len(inside) >= 3
    for chunk in inside:
        made_s = chunk.start_sample / chunk.sample_rate_hz
        wanted_s = max(FIRST_STRETCH_S, min(MAX_STRETCH_S, made_s))
        last_sound_s = chunk.phonemes[-1].duration_samples / chunk.sample_rate_hz
        # it ends at the first sound boundary past what it should hold (the first: less its inaudible start)
        assert chunk.start_sample == 0 or wanted_s - frame_s <= chunk.duration_s
        assert chunk.duration_s < wanted_s + last_sound_s + frame_s
    assert chunks[0].duration_s < FIRST_STRETCH_S + chunks[0].phonemes[-1].duration_samples / 22050 + frame_s
    assert max(c.duration_s for c in chunks) > 2 * chunks[0].duration_s


def test_stretches_after_the_first_count_only_the_audio_kept():
    # 40 sounds of 3 frames; the first two edges fixed, then the first stretch's inaudible start of 2000
    # samples left out (CUT grows by it): the next stretch is as long as the 30 frames less those samples
    hop, rate, quiet = 256, 22050, 2000
    timings = tuple(PhonemeTiming("a", n * 3 * hop, 3 * hop) for n in range(40))
    kept = stretch_edges(timings, 0, 0, hop, rate, begun=(0, 30))
    shortened = stretch_edges(_without_start(timings, quiet), 0, quiet, hop, rate, begun=(0, 30))
    assert kept[:3] == [0, 30, 60]  # 30 frames made: 30 more, to the sound ending at frame 60
    made_frames = math.ceil((30 * hop - quiet) / hop)  # 23
    assert shortened[:3] == [0, 30, 3 * math.ceil((30 + made_frames) / 3)]  # the first sound end past 53: 54
    assert shortened[-1] == kept[-1] == 120


def test_a_first_chunk_holds_what_the_scheduler_asks_it_to_cover(piper_engine):
    text = "The weather today is sunny with a light breeze from the west over the hills."
    with stages.covering(lambda: 0.9):
        first = next(iter(piper_engine.synthesize(text)))
    last_sound_s = first.phonemes[-1].duration_samples / first.sample_rate_hz
    # less by its inaudible start (under 0.1 s here); more up to the end of the sound it ends in
    assert 0.8 <= first.duration_s < 0.9 + last_sound_s + 0.012


def test_the_first_stretch_can_be_asked_longer(piper_engine):
    text = "The weather today is sunny with a light breeze from the west over the hills."
    longer = PiperEngine(threads=1, models=1, first_stretch_s=0.6)
    first, default_first = next(iter(longer.synthesize(text))), next(iter(piper_engine.synthesize(text)))
    last_sound_s = first.phonemes[-1].duration_samples / first.sample_rate_hz
    assert 0.5 <= first.duration_s < 0.6 + last_sound_s + 0.012
    assert default_first.duration_s < 0.45


@pytest.mark.parametrize("seconds", [0.0, 0.05, 2.0])
def test_a_first_stretch_outside_the_stretch_sizes_is_refused(seconds):
    with pytest.raises(SpeechError, match="first_stretch_s must be 0.15 to 1.5"):
        PiperEngine(first_stretch_s=seconds)


def test_unstreamed_engine_renders_each_run_whole(piper_engine):
    whole = PiperEngine(streamed=False, models=1)
    chunks = list(whole.synthesize("Maybe we could meet by the beach on Sunday afternoon."))
    assert len(chunks) == 1 and chunks[0].phrase == chunks[0].phonemes


def phonemes_of(engine, text):
    return [p for chunk in engine.synthesize(text) for p in chunk.phonemes]


def test_affricates_diphthongs_and_length_marks_are_one_sound(piper_engine):
    names = [p.phoneme for p in phonemes_of(piper_engine, "I choose the judge's high bounty.")]
    assert {"tʃ", "dʒ", "aɪ", "aʊ", "uː"} <= set(names)
    assert not {"ˈ", "ˌ", "ː", "ʃ", "ʒ", "ʊ"} & set(names)  # no mark or split half left on its own


def test_stress_marks_go_to_the_following_sound(piper_engine):
    timed = [p for p in phonemes_of(piper_engine, "We understand.") if p.phoneme.strip(" .")]
    stressed = {p.phoneme: p.stress for p in timed if p.stress}
    assert stressed == {"ʌ": 2, "æ": 1}  # ˌʌndɚstˈænd


def test_grouping_conventions_on_known_durations():
    # Piper's ids for "ˈaɪtʃ." (^ _ ˈ _ a _ ɪ _ t _ ʃ _ . _ $), with a distinct duration each.
    symbols = ["^", "_", "ˈ", "_", "a", "_", "ɪ", "_", "t", "_", "ʃ", "_", ".", "_", "$"]
    samples = np.array([10, 1, 20, 2, 30, 3, 40, 4, 50, 5, 60, 6, 70, 7, 80])
    timings = group_phonemes(symbols, samples, offset_sample=1000)
    assert [(t.phoneme, t.start_sample, t.duration_samples, t.stress) for t in timings] == [
        (" ", 1000, 10, 0),
        ("aɪ", 1010, 1 + 20 + 2 + 30 + 3 + 40, 1),  # pad + stress + pad + a + pad + ɪ
        ("tʃ", 1106, 4 + 50 + 5 + 60, 0),
        (".", 1225, 6 + 70 + 7 + 80, 0),  # punctuation and the end marker stay as silence
    ]
    assert timings[-1].end_sample == 1000 + int(samples.sum())


def test_long_first_sentence_is_cut_at_a_clause_for_a_quick_first_chunk(piper_engine):
    text = ("When the morning sun rose over the quiet hills, the farmers walked slowly to their fields, "
            "and the children ran after them. Then it rained.")
    chunks = list(piper_engine.synthesize(text))
    assert chunks[0].text == "When the morning sun rose over the quiet hills,"
    assert len(chunks[0].text.split()) <= 10
    assert chunks[-1].text == "Then it rained."
    assert chunks[-1].end_sample == sum(len(c.samples) for c in chunks)


def test_closing_the_stream_stops_synthesis(piper_engine):
    voice = piper_engine.loaded_voice()
    instances = list(voice.instances)
    counter = RunCounter()
    voice.instances[:] = [_Instance(counter.wrap(instance.sentence), [counter.wrap(part) for part in instance.parts])
                          for instance in instances]
    try:
        stream = piper_engine.synthesize("First sentence here. Second sentence here. Third sentence here.")
        assert counter.runs == 0  # nothing is synthesised before the first chunk is asked for
        first = next(stream)
        stream.close()
        assert first.text == "First sentence here."
        parts = len(voice.graphs.parts)
        assert counter.runs == 1 + parts  # the sentence stage and one stretch (each part once); nothing after the close
        with pytest.raises(StopIteration):
            next(stream)
        assert counter.runs == 1 + parts
    finally:
        voice.instances[:] = instances


class RunCounter:
    """Counts onnxruntime runs on the real sessions (third-party objects; the engine itself is untouched), and
    the time steps of each run's inputs."""

    def __init__(self):
        self.runs = 0
        self.steps: list[tuple[object, int]] = []  # (wrapped session, the longest input's last axis)

    def wrap(self, session):
        counter = self

        class Counted:
            def run(self, outputs, feed, *args, **kwargs):
                counter.runs += 1
                counter.steps.append((session, max(value.shape[-1] for value in feed.values())))
                return session.run(outputs, feed, *args, **kwargs)

        return Counted()


def test_an_utterance_computes_the_rest_of_its_first_phrase_with_the_third_stretch(piper_engine):
    """Its second stretch comes due while the listener has only the first (about 0.2 s) in hand: it runs the
    flow over only what it needs, and the third stretch runs it to the phrase's end, once."""
    voice = piper_engine.loaded_voice()
    instances = list(voice.instances)
    counter = RunCounter()
    voice.instances[:] = [_Instance(instance.sentence, [counter.wrap(part) for part in instance.parts])
                          for instance in instances]
    try:
        chunks = list(piper_engine.synthesize("The weather today is sunny with a light breeze from the west."))
    finally:
        voice.instances[:] = instances
    flows = {instance.parts[0] for instance in instances}
    flow_frames = [steps for session, steps in counter.steps if session in flows]
    phrase_frames = chunks[-1].end_sample // voice.hop_samples
    assert len(chunks) >= 4 and len(flow_frames) == 3  # the first three stretches; the rest, the last part only
    assert flow_frames[1] < phrase_frames / 2 <= flow_frames[2]


def test_one_engine_serves_several_threads(piper_engine):
    expected = [len(c.samples) for c in piper_engine.synthesize(SENTENCES[2])]
    results: list = [None] * 3
    errors: list = []

    def speak(slot):
        try:
            results[slot] = list(piper_engine.synthesize(SENTENCES[2]))
        except Exception as error:  # reported below, with the thread's error
            errors.append(error)

    threads = [threading.Thread(target=speak, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    for chunks in results:
        # Durations are sampled (noise_w), so lengths vary a little; the bookkeeping must hold exactly.
        assert abs(sum(len(c.samples) for c in chunks) - sum(expected)) < 0.3 * sum(expected)
        assert all(sum(p.duration_samples for p in c.phonemes) == len(c.samples) for c in chunks)


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("x" * 5001, "5000"),
    ("Привет, как у тебя дела сегодня?", "English"),
    ("今日はいい天気ですね", "English"),
    ("😀 🎉", "nothing to speak"),
])
def test_bad_text_is_refused_before_any_audio(piper_engine, text, message):
    with pytest.raises(SpeechError, match=message):
        piper_engine.synthesize(text)


def test_unknown_voice_names_the_available_ones(piper_engine):
    with pytest.raises(SpeechError, match=BUNDLED_VOICE_ID):
        piper_engine.synthesize("Hello.", voice_id="en_GB-nobody-low")
    with pytest.raises(SpeechError, match="not found"):
        piper_engine.synthesize("Hello.", voice_id="/nowhere/voice.onnx")


def test_bad_thread_count_is_refused():
    with pytest.raises(SpeechError, match="threads"):
        PiperEngine(threads=0)


def test_markup_is_never_interpreted_as_phonemes(piper_engine):
    # Piper reads [[ ... ]] as raw phonemes; here "b" must be spoken as the letter ("bee").
    names = [p.phoneme for p in phonemes_of(piper_engine, "[[ b ]] <speak>ok</speak>")]
    assert any(name.startswith("iː") for name in names)


def test_voices_folder_adds_voices_and_the_patched_model_is_cached(tmp_path, monkeypatch):
    bundled = bundled_voice()
    voices_dir = tmp_path / "voices"
    voices_dir.mkdir()
    (voices_dir / "en_US-copy-medium.onnx").symlink_to(bundled.model_path)
    shutil.copy(bundled.config_path, voices_dir / "en_US-copy-medium.onnx.json")
    (voices_dir / "broken.onnx").write_bytes(b"no config beside me")
    monkeypatch.setenv("PIPER_VOICES_DIR", str(voices_dir))

    listed = [v.voice_id for v in list_voices("piper")]
    assert listed == [BUNDLED_VOICE_ID, "en_US-copy-medium"]

    engine = PiperEngine(threads=1, cache_dir=tmp_path / "cache")
    chunks = list(engine.synthesize("It works.", voice_id="en_US-copy-medium"))
    assert sum(len(c.samples) for c in chunks) > 5000
    assert len(list((tmp_path / "cache").glob("*.aligned.onnx"))) == 2  # bundled voice and the copy


def test_make_engine_shares_one_piper_instance():
    assert make_engine("piper") is make_engine("piper")
    with pytest.raises(SpeechError, match="unknown speech engine"):
        make_engine("festival")


@pytest.fixture
def no_settings_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PHOTOAVATAR_SETTINGS", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("PIPER_VOICES_DIR", raising=False)


def test_voice_list_without_an_elevenlabs_key_is_the_local_voices(no_settings_file, monkeypatch):
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    voices = list_voices("all")
    assert [(v.voice_id, v.engine, v.language, v.sample_rate_hz) for v in voices] == [
        (BUNDLED_VOICE_ID, "piper", "en-US", 22050)]
    with pytest.raises(SpeechError, match="unknown engine"):
        list_voices("festival")


def test_unreachable_elevenlabs_is_skipped_in_the_full_list_but_reported_when_asked(no_settings_file, monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", "test-key")
    monkeypatch.setenv("ELEVENLABS_BASE_URL", "http://127.0.0.1:9")  # discard port: nothing listens there
    assert [v.engine for v in list_voices("all")] == ["piper"]
    with pytest.raises(SpeechError, match="cannot reach ElevenLabs"):
        list_voices("elevenlabs")


def test_an_utterance_starts_without_the_models_silent_pad(piper_engine):
    """The pad Piper puts before the first sound, and the inaudible start of that sound (under -50 dBFS), are
    waiting time for a listener: all but 2 ms of it is dropped, never the whole first sound."""
    text = "Hello there, how are you doing today?"
    first = next(iter(piper_engine.synthesize(text)))
    voice = piper_engine.loaded_voice()
    _, symbols, id_samples = voice.speak(voice.phonemize(text)[0])
    model_pad = group_phonemes(symbols, id_samples)[0].duration_samples
    loud = np.flatnonzero(np.abs(first.samples.astype(np.int32)) > INAUDIBLE_LEVEL)
    assert 0 < loud[0] <= 0.002 * first.sample_rate_hz + 1
    assert model_pad > 4 * loud[0]
    assert first.phonemes[0].phoneme in (" ", "h")  # the pad's last 2 ms, or the /h/ it ran into
    assert sum(p.duration_samples for p in first.phonemes) == len(first.samples)
    assert all(a.end_sample == b.start_sample for a, b in zip(first.phonemes, first.phonemes[1:], strict=False))


