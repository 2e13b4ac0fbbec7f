"""The live track's Opus encoder (live/opus.py) by libopus application: CPU per 20 ms frame, look-ahead, fidelity.

Piper speech (the bundled voice, the sentences below) is resampled to 48 kHz as the live track sends it and
encoded frame by frame with `OpusFrames` in each application: "voip" (what browsers use for a microphone: SILK +
CELT), "lowdelay" (CELT only, the track's) and "audio". Repeats are interleaved. Printed per application:
- the median CPU time per frame (`time.thread_time`) over the repeats;
- the mean packet size, and the bitrate it makes;
- the look-ahead: how late a click comes out of encoder and decoder (a WebRTC receiver does not trim it);
- the log-band spectral distance from the source over loud frames (40 log-spaced bands from 100 Hz to 11 kHz,
  the voice's range; frames within 40 dB of the loudest): median and p90, in dB;
- the tail after a cut: the speech cut at its loudest frame and followed by digital silence (as /stop and
  barge-in do), the time from the cut until the decoded audio stays below -70 dBFS (the level the browser tests
  call silence), median over the sentences.
Run: .venv/bin/python bench/opus.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import av
import numpy as np

from photoavatar.live.audio import Resampler48k
from photoavatar.live.opus import APPLICATION, FRAME_SAMPLES, OpusFrames
from photoavatar.live.protocol import RTP_CLOCK_HZ
from photoavatar.speech.piper_engine import PiperEngine
from photoavatar.testing.bench import load_average_line

SENTENCES = [
    "Hello there, how are you doing today? Thanks for asking about the weather, it has been sunny all week.",
    "Papa bought a big blue boat, and then he painted it bright pink for the summer party by the bay.",
    "Sure, I can help with that: the train leaves at seven fifteen from the second platform.",
]
APPLICATIONS = ["voip", "lowdelay", "audio"]
SILENCE_DBFS = -70.0


def piper_sentences_48k() -> list[np.ndarray]:
    engine = PiperEngine(threads=1, models=1)
    sentences = []
    for sentence in SENTENCES:
        chunks = list(engine.synthesize(sentence))
        resampler = Resampler48k(chunks[0].sample_rate_hz)
        speech = np.concatenate([resampler.push(chunk.samples) for chunk in chunks] + [resampler.flush()])
        sentences.append(speech[: len(speech) // FRAME_SAMPLES * FRAME_SAMPLES])
    return sentences


def frame_levels_dbfs(samples: np.ndarray) -> np.ndarray:
    frames = samples[: len(samples) // FRAME_SAMPLES * FRAME_SAMPLES].astype(np.float64).reshape(-1, FRAME_SAMPLES)
    return 10 * np.log10(np.maximum((frames / 32768) ** 2, 1e-20).mean(axis=1))


def tail_after_cut_ms(sentence: np.ndarray, application: str) -> float:
    """From a cut at SENTENCE's loudest frame to the decoded audio staying below SILENCE_DBFS."""
    cut_frame = int(np.argmax(frame_levels_dbfs(sentence)))
    cut = np.concatenate([sentence[: cut_frame * FRAME_SAMPLES], np.zeros(50 * FRAME_SAMPLES, dtype=np.int16)])
    decoded = decode(encode(cut, application)[0])[cut_frame * FRAME_SAMPLES:]
    loud = np.flatnonzero(np.abs(decoded) > 32768 * 10 ** (SILENCE_DBFS / 20))
    return (int(loud[-1]) + 1 if len(loud) else 0) / RTP_CLOCK_HZ * 1000


def encode(samples: np.ndarray, application: str) -> tuple[list[bytes], float]:
    """The packets, and the CPU seconds per frame they took."""
    encoder = OpusFrames(application=application)
    started = time.thread_time()
    packets = [bytes(encoder.encode(samples[i:i + FRAME_SAMPLES], i)[0]) for i in range(0, len(samples), FRAME_SAMPLES)]
    return packets, (time.thread_time() - started) / len(packets)


def decode(packets: list[bytes]) -> np.ndarray:
    decoder = av.CodecContext.create("libopus", "r")
    decoder.layout, decoder.format, decoder.sample_rate = "mono", "s16", RTP_CLOCK_HZ
    return np.concatenate([f.to_ndarray().reshape(-1) for p in packets for f in decoder.decode(av.Packet(p))])


def look_ahead_samples(application: str) -> int:
    click = np.zeros(10 * FRAME_SAMPLES, dtype=np.int16)
    click[3 * FRAME_SAMPLES] = 20_000
    return int(np.argmax(np.abs(decode(encode(click, application)[0])))) - 3 * FRAME_SAMPLES


def log_bands_db(samples: np.ndarray) -> np.ndarray:
    size, hop = 1024, 480
    frames = np.lib.stride_tricks.sliding_window_view(samples.astype(np.float64), size)[::hop] * np.hanning(size)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(size, 1 / RTP_CLOCK_HZ)
    edges = np.geomspace(100, 11_000, 41)
    bands = [power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return 10 * np.log10(np.stack(bands, axis=1) + 1e-3)


def spectral_distance_db(source: np.ndarray, decoded: np.ndarray, delay: int) -> tuple[float, float]:
    length = min(len(source), len(decoded) - delay)
    reference, got = log_bands_db(source[:length]), log_bands_db(decoded[delay:delay + length])
    loud = reference.max(axis=1) > reference.max() - 40
    distance = np.sqrt(((reference[loud] - got[loud]) ** 2).mean(axis=1))
    return float(np.median(distance)), float(np.quantile(distance, 0.9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved encodings of the speech per application")
    args = parser.parse_args()
    print(load_average_line())
    sentences = piper_sentences_48k()
    speech = np.concatenate(sentences)
    print(f"{len(speech) / RTP_CLOCK_HZ:.1f} s of Piper speech at 48 kHz; the track uses {APPLICATION!r}\n")
    cost = {application: [] for application in APPLICATIONS}
    packets = {}
    for _ in range(args.repeats):
        for application in APPLICATIONS:
            packets[application], per_frame_s = encode(speech, application)
            cost[application].append(per_frame_s)
    print(f"{'application':<12} {'CPU us/frame':>12} {'bytes/packet':>12} {'kbit/s':>7} {'look-ahead ms':>13} "
          f"{'spectral distance dB (median / p90)':>36} {'tail after a cut ms':>19}")
    for application in APPLICATIONS:
        delay = look_ahead_samples(application)
        median, p90 = spectral_distance_db(speech, decode(packets[application]), delay)
        size = statistics.mean(len(p) for p in packets[application])
        tail_ms = statistics.median(tail_after_cut_ms(sentence, application) for sentence in sentences)
        print(f"{application:<12} {statistics.median(cost[application]) * 1e6:12.0f} {size:12.1f} "
              f"{size * 8 * RTP_CLOCK_HZ / FRAME_SAMPLES / 1000:7.1f} {delay / RTP_CLOCK_HZ * 1000:13.1f} "
              f"{median:25.2f} / {p90:<8.2f} {tail_ms:19.0f}")


if __name__ == "__main__":
    main()
