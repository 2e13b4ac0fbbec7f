"""The real ElevenLabs client against a faithful local fake of its wire protocol (photoavatar/testing/fake_elevenlabs.py)."""

import socket
import struct
import threading
import time
import unicodedata
import wave
from pathlib import Path

import numpy as np
import pytest

from photoavatar.speech.character_timing import CharacterAligner, RawChunk, assemble_chunks
from photoavatar.speech.elevenlabs import ElevenLabsConfig, ElevenLabsEngine, clone_voice, list_voices
from photoavatar.speech.engine import SpeechEngine, SpeechError
from photoavatar.speech.ipa import SILENCE
from photoavatar.speech.phonemize import phonemize_word
from photoavatar.testing.fake_elevenlabs import FakeElevenLabs

TEXT = "Hello there, church judge! 42 cats."
TRANSPORTS = ["http", "websocket"]


@pytest.fixture
def fake():
    with FakeElevenLabs() as server:
        yield server


@pytest.fixture(autouse=True)
def elevenlabs_env(monkeypatch, tmp_path, fake):
    """Settings from the environment only, pointing at the fake."""
    monkeypatch.setenv("PHOTOAVATAR_SETTINGS", str(tmp_path / "no-settings.toml"))
    for name in ("ELEVENLABS_MODEL_ID", "ELEVENLABS_LANGUAGE", "ELEVENLABS_OUTPUT_FORMAT", "ELEVENLABS_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ELEVENLABS_API_KEY", fake.api_key)
    monkeypatch.setenv("ELEVENLABS_BASE_URL", fake.base_url)
    monkeypatch.setenv("ELEVENLABS_VOICE_ID", "voice-en")


def speak(text=TEXT, transport="http", voice_id=None):
    return list(ElevenLabsEngine(transport=transport).synthesize(text, voice_id))


def speak_until_error(transport):
    chunks = []
    with pytest.raises(SpeechError) as raised:
        for chunk in ElevenLabsEngine(transport=transport).synthesize(TEXT):
            chunks.append(chunk)
    return chunks, str(raised.value)


def all_phonemes(chunks):
    return [timing for chunk in chunks for timing in chunk.phonemes]


def test_it_is_a_speech_engine():
    engine = ElevenLabsEngine()
    assert isinstance(engine, SpeechEngine)
    assert engine.name == "elevenlabs"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_chunks_are_contiguous_pcm_at_the_requested_rate(transport, monkeypatch):
    monkeypatch.setenv("ELEVENLABS_OUTPUT_FORMAT", "pcm_24000")
    chunks = speak(transport=transport)
    assert len(chunks) >= 5  # the fake sends 7 characters a piece: the client must not merge them
    position = 0
    for chunk in chunks:
        assert chunk.sample_rate_hz == 24000 and chunk.samples.dtype == np.int16
        assert chunk.start_sample == position
        position = chunk.end_sample
    assert 2.0 < position / 24000 < 3.5  # the fake's character durations add up to about 2.7 s


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_phoneme_timings_tile_the_audio_and_match_what_is_heard(transport):
    chunks = speak(transport=transport)
    audio = np.concatenate([chunk.samples for chunk in chunks])
    timings = all_phonemes(chunks)
    assert timings[0].start_sample == 0
    assert all(a.end_sample == b.start_sample for a, b in zip(timings, timings[1:], strict=False))
    assert abs(timings[-1].end_sample - len(audio)) < 30  # up to the end of the last character
    guard = 30  # the websocket rounds times to whole milliseconds
    for timing in timings:
        inside = audio[timing.start_sample + guard: timing.end_sample - guard]
        if timing.phoneme == SILENCE:  # the fake is digitally silent on spaces and punctuation
            assert not inside.any(), f"sound inside a silence at {timing}"
        elif len(inside):
            assert np.count_nonzero(inside) / len(inside) > 0.99, f"silence inside phoneme {timing}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_words_become_their_espeak_phonemes_in_order(transport):
    spoken = [t.phoneme for t in all_phonemes(speak("Church judge, cats.", transport)) if t.phoneme != SILENCE]
    expected = [p.ipa for word in ("church", "judge", "cats") for p in phonemize_word(word)]
    assert spoken == expected
    stressed = [t for t in all_phonemes(speak("Church judge, cats.", transport)) if t.stress == 1]
    assert [t.phoneme for t in stressed] == ["ɜː", "ʌ", "æ"]


def test_both_transports_agree_on_timing():
    by_http = all_phonemes(speak())
    by_websocket = all_phonemes(speak(transport="websocket"))
    words_http = [(t.phoneme, t.start_sample) for t in by_http if t.phoneme != SILENCE]
    words_ws = [(t.phoneme, t.start_sample) for t in by_websocket if t.phoneme != SILENCE]
    assert [p for p, _ in words_http] == [p for p, _ in words_ws]
    assert max(abs(a - b) for (_, a), (_, b) in zip(words_http, words_ws, strict=True)) <= 30  # ms rounding


def test_chunk_relative_http_times_are_detected_and_offset(fake):
    absolute = all_phonemes(speak())
    fake.relative_http_times = True
    assert all_phonemes(speak()) == absolute


def test_german_uses_the_multilingual_model_and_german_phonemes(fake, monkeypatch):
    monkeypatch.setenv("ELEVENLABS_LANGUAGE", "de-DE")
    spoken = [unicodedata.normalize("NFC", t.phoneme) for t in all_phonemes(speak("Die Zeit, das Mädchen.", voice_id="voice-de"))]
    assert "ç" in spoken and "ɛː" in spoken  # German sounds an English reading would not have
    assert fake.requests[-1].body["model_id"] == "eleven_multilingual_v2"


def test_http_request_follows_the_documented_wire_format(fake):
    speak("Hi there.")
    request = fake.requests[-1]
    assert request.method == "POST"
    assert request.path == "/v1/text-to-speech/voice-en/stream/with-timestamps"
    assert request.query == {"output_format": "pcm_22050"}
    assert request.headers["xi-api-key"] == "test-key"
    assert request.body == {"text": "Hi there.", "model_id": "eleven_flash_v2_5"}


def test_websocket_follows_the_documented_message_sequence(fake):
    speak("Hi there.", transport="websocket")
    request = fake.requests[-1]
    assert request.path == "/v1/text-to-speech/voice-en/stream-input"
    assert request.query == {"model_id": "eleven_flash_v2_5", "output_format": "pcm_22050"}
    assert request.headers["xi-api-key"] == "test-key"
    first, text, last = request.body
    assert first["text"] == " " and "stability" in first["voice_settings"]
    assert text == {"text": "Hi there. ", "flush": True}
    assert last == {"text": ""}


def test_audio_is_yielded_as_it_arrives(fake):
    fake.hold = threading.Event()  # the fake sends one piece, then waits for this
    chunks = ElevenLabsEngine().synthesize(TEXT)
    first = next(chunks)
    assert fake.pieces_sent == 1 and len(first.samples) > 0
    fake.hold.set()
    assert len(list(chunks)) >= 4


def test_closing_the_stream_early_is_quiet_and_the_engine_stays_usable(fake):
    chunks = ElevenLabsEngine().synthesize(TEXT)
    next(chunks)
    chunks.close()
    assert len(speak("Again.")) >= 1


def test_one_engine_keeps_its_connection_across_utterances(fake):
    engine = ElevenLabsEngine()
    list(engine.synthesize("One."))
    list(engine.synthesize("Two."))
    engine.close()
    assert fake.requests[0].client_port == fake.requests[1].client_port


def test_an_odd_byte_is_carried_into_the_next_chunk():
    config = ElevenLabsConfig(api_key="k", language="en-us")
    pcm = struct.pack("<4h", 1000, -2000, 3000, -4000)
    pieces = iter([RawChunk(pcm[:3]), RawChunk(pcm[3:])])
    samples = np.concatenate([chunk.samples for chunk in assemble_chunks(pieces, "x", config.language, config.sample_rate_hz)])
    assert samples.tolist() == [1000, -2000, 3000, -4000]


def test_a_word_split_across_pieces_is_timed_once_it_is_complete():
    aligner = CharacterAligner("cats sat", "en-us", 1000)
    aligner.add(RawChunk(b"", ("c", "a"), (0.0, 0.1), (0.1, 0.2)))
    assert aligner.take_ready() == ()  # "ca..." may go on
    aligner.add(RawChunk(b"", ("t", "s", " ", "s"), (0.2, 0.3, 0.4, 0.5), (0.3, 0.4, 0.5, 0.6)))
    cats = aligner.take_ready()
    assert [t.phoneme for t in cats] == ["k", "æ", "t", "s"]
    assert cats[0].start_sample == 0 and cats[-1].end_sample == 400
    aligner.add(RawChunk(b"", ("a", "t"), (0.6, 0.7), (0.7, 0.8)))  # every character has arrived
    sat = aligner.take_ready()
    assert [t.phoneme for t in sat] == [SILENCE, "s", "æ", "t"]
    assert (sat[0].start_sample, sat[1].start_sample, sat[-1].end_sample) == (400, 500, 800)


# ---------------------------------------------------------------- failures


def test_a_missing_key_says_how_to_set_it(monkeypatch, tmp_path):
    monkeypatch.delenv("ELEVENLABS_API_KEY")
    for call in (lambda: ElevenLabsEngine().synthesize("Hi"), list_voices,
                 lambda: clone_voice("Me", [write_wav(tmp_path / "me.wav")])):
        with pytest.raises(SpeechError, match="ELEVENLABS_API_KEY"):
            call()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_bad_key_says_to_check_it(transport, monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", "wrong")
    with pytest.raises(SpeechError, match="refused the API key.*check ELEVENLABS_API_KEY"):
        speak(transport=transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_unknown_voice_points_to_the_voice_list(transport):
    with pytest.raises(SpeechError, match="no voice 'nobody'.*voice list"):
        speak(transport=transport, voice_id="nobody")


def test_empty_text_and_a_bad_transport_or_format_are_refused(monkeypatch):
    with pytest.raises(SpeechError, match="no text"):
        ElevenLabsEngine().synthesize("  ")
    with pytest.raises(SpeechError, match="transport 'carrier-pigeon'"):
        ElevenLabsEngine(transport="carrier-pigeon")
    monkeypatch.setenv("ELEVENLABS_OUTPUT_FORMAT", "mp3_44100_128")
    with pytest.raises(SpeechError, match="not raw PCM.*pcm_22050"):
        speak()


def test_rate_limits_are_retried(fake):
    fake.rate_limit_next = 2
    assert len(speak()) >= 5
    assert len(fake.requests) == 3


def test_retry_after_is_honoured(fake):
    fake.rate_limit_next, fake.retry_after = 1, "1"
    started = time.monotonic()
    speak("Hi.")
    assert time.monotonic() - started >= 1.0


def test_persistent_rate_limits_give_up_with_a_clear_error(fake):
    fake.rate_limit_next = 100
    with pytest.raises(SpeechError, match="rate-limiting"):
        speak()
    assert len(fake.requests) == ElevenLabsConfig(api_key="k").max_retries + 1


def test_a_retry_after_beyond_the_wait_budget_fails_at_once(fake):
    fake.rate_limit_next, fake.retry_after = 1, "3600"
    with pytest.raises(SpeechError, match="rate-limiting"):
        speak()
    assert len(fake.requests) == 1


def test_server_errors_are_reported(fake):
    fake.server_error_next = 1
    with pytest.raises(SpeechError, match="server error.*503.*try again later"):
        speak()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_cut_stream_yields_what_arrived_then_fails(fake, transport):
    fake.cut_after_pieces = 2
    chunks, message = speak_until_error(transport)
    assert sum(len(chunk.samples) for chunk in chunks) > 0
    assert "cut" in message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_malformed_message_is_a_clear_error(fake, transport):
    fake.malformed_after_pieces = 1
    chunks, message = speak_until_error(transport)
    assert len(chunks) >= 1
    assert "malformed" in message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_unreachable_service_fails_fast(transport, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("ELEVENLABS_BASE_URL", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(SpeechError, match="ElevenLabs"):
        speak(transport=transport)


# ---------------------------------------------------------------- voices


def write_wav(path: Path, seconds: float = 0.5) -> Path:
    samples = (np.sin(np.arange(int(16000 * seconds)) * 0.1) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())
    return path


def test_list_voices(fake):
    voices = {voice.voice_id: voice for voice in list_voices()}
    assert set(voices) == {"voice-en", "voice-de"}
    assert voices["voice-en"].name == "Fake Rachel" and voices["voice-en"].language == "en-US"
    assert voices["voice-de"].language == "de"
    assert {voice.engine for voice in voices.values()} == {"elevenlabs"}
    assert ElevenLabsEngine().voices() == list(voices.values())


def test_clone_voice_uploads_the_samples_and_the_new_voice_speaks(fake, tmp_path):
    samples = [write_wav(tmp_path / "one.wav"), write_wav(tmp_path / "two.wav", 0.3)]
    voice_id = clone_voice("My Voice", samples, description="me, reading")
    request = fake.requests[-1]
    assert request.path == "/v1/voices/add" and request.headers["xi-api-key"] == "test-key"
    assert request.body == {"name": "My Voice", "description": "me, reading", "files": ["one.wav", "two.wav"]}
    assert [(name, data, mime) for name, data, mime in fake.added_samples] == [
        (path.name, path.read_bytes(), "audio/wav") for path in samples]
    assert voice_id in {voice.voice_id for voice in list_voices()}
    assert len(speak("Hello.", voice_id=voice_id)) >= 1


def test_clone_voice_checks_its_samples_before_uploading(fake, tmp_path):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is text, not a recording")
    with pytest.raises(SpeechError, match="does not exist"):
        clone_voice("Me", [tmp_path / "missing.wav"])
    with pytest.raises(SpeechError, match="not an audio file"):
        clone_voice("Me", [not_audio])
    with pytest.raises(SpeechError, match="at least one audio sample"):
        clone_voice("Me", [])
    with pytest.raises(SpeechError, match="needs a name"):
        clone_voice(" ", [write_wav(tmp_path / "ok.wav")])
    assert fake.requests == []


def test_the_voice_list_retries_rate_limits_with_the_same_helper_as_speech(fake):
    fake.rate_limit_next = 2
    assert list_voices()
    fake.rate_limit_next = 100
    with pytest.raises(SpeechError, match="rate-limiting"):
        list_voices()
