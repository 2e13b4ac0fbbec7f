"""`photoavatar say --audio FILE [--text TRANSCRIPT]`: a recording rendered offline like `say` renders text."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import av
import pytest

from photoavatar.cli import main
from photoavatar.speech.viseme_accuracy import speak

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speech"))
from audio_files import encode  # noqa: E402

SENTENCE = "Maybe the bus will be on time."


@pytest.fixture(scope="module")
def piper_engine():
    from photoavatar.speech.piper_engine import PiperEngine

    return PiperEngine(threads=1)


@pytest.mark.slow
@pytest.mark.parametrize("with_transcript", [True, False])
def test_say_renders_a_recording(synthetic_bundle, piper_engine, tmp_path, with_transcript):
    spoken = speak(piper_engine, SENTENCE)
    recording = tmp_path / "speech.mp3"
    recording.write_bytes(encode(spoken.samples, spoken.sample_rate_hz, "mp3"))
    out, timeline = tmp_path / "talk.mp4", tmp_path / "talk.json"
    args = ["say", "--avatar", str(synthetic_bundle.root), "--audio", str(recording), "--out", str(out),
            "--timeline", str(timeline)] + (["--text", SENTENCE] if with_transcript else [])
    assert main(args) == 0
    with av.open(str(out)) as container:
        kinds = {stream.type for stream in container.streams}
        duration_s = container.duration / 1e6
    assert kinds == {"video", "audio"}
    audio_s = len(spoken.samples) / spoken.sample_rate_hz
    assert audio_s - 0.1 < duration_s < audio_s + 1.0
    data = json.loads(timeline.read_text())
    assert data["text"] == (SENTENCE if with_transcript else "")
    visemes = [event["viseme"] for event in data["visemes"]]
    assert visemes.count("MBP") >= 3  # maybe, bus, be
    assert abs(data["visemes"][-1]["end_s"] - data["duration_s"]) < 1e-6


def test_say_refuses_what_is_not_audio(synthetic_bundle, tmp_path, capsys):
    fake = tmp_path / "speech.wav"
    fake.write_text("not a recording")
    out = tmp_path / "talk.mp4"
    assert main(["say", "--avatar", str(synthetic_bundle.root), "--audio", str(fake), "--out", str(out)]) == 2
    assert "not audio" in capsys.readouterr().err
    assert not out.exists()


def test_say_needs_text_or_audio(synthetic_bundle, tmp_path, capsys):
    assert main(["say", "--avatar", str(synthetic_bundle.root), "--out", str(tmp_path / "t.mp4")]) == 2
    assert "--audio" in capsys.readouterr().err
