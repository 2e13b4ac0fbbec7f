"""First audio and underruns when many live sessions speak at once, with where the first audio's time goes.

The real server runs under uvicorn on 127.0.0.1 in this process; a child process plays N clients (real
aiortc peers on loopback), so client decoding does not share the server's GIL. All N send /speak at the same
moment, with a text that starts without a plosive ("Hello, ...", "Thanks for ...", "Sure, ...", rotated) or
with one ("Papa bought ..."). Measured:
- first audio at the receiver: /speak sent -> arrival of the RTP packet of the first frame louder than -40 dBFS
  (server + loopback; no browser), median / p90 / max over the sessions. The clients keep each packet as it
  arrives and decode them after each round, not while the server works: a deployment's listeners decode on
  their own devices, and decoding here (aiortc's receive buffer, its decoder thread) took about half of the
  clients' CPU from the two cores the server is measured on;
- first audio at the server: /speak received -> first sample sent, and its stages (LiveSession.first_audio_stages:
  waiting for a synthesis worker, text preparation, phonemisation, model run, timeline, prosody, resampling,
  the hop to the event loop, the wait for the next 20 ms frame slot);
- the silence those underruns put into each utterance, as its clients learn it (the sum of its utterance_gap
  messages): how far the mouth would lead the voice by the utterance's end if a client ignored them (ours moves
  its events by them, docs/protocol.md); per utterance with a gap, median and max;
- frames padded because speech was late mid-utterance (underruns), frames sent > 40 ms after their slot, the
  sender's pacing (lateness of each frame: p50 / p99), and the event loop's lag (overshoot of a 10 ms timer);
- the CPU the server (this process) and the clients used while they spoke, in seconds per utterance, the
  server's in cores too, and the share of the machine the host stole meanwhile: under steal the times grow,
  the CPU an utterance costs stays comparable. Of the server's, the synthesis workers' own (the scheduler's
  totals, also per second of audio made): the rest is the event loop's (pacing, Opus, RTP, signalling).
Two server configurations run in the same process, one after the other: `new` (each model run streamed a stretch at a time, the
deadline scheduler on PHOTOAVATAR_TTS_MODELS x PHOTOAVATAR_TTS_THREADS, the lead-in as negative event times)
and `old` (whole first clause, one model on 2 threads shared by 2 workers, a silent lead-in), which is what
the server did before. Targets (issue 8): 1 session <= 100 ms at the receiver; 10 sessions median <= 250 ms,
p90 <= 400 ms, no underrun; event loop lag < 20 ms at 10 sessions.
Each size runs --rounds times (all its sessions at once each time, a pause between; one session at least
ONE_SESSION_ROUNDS times), and the figures pool the rounds: "heard" counts the samples, underruns are summed.
Run: .venv/bin/python bench/live_sessions.py [--sizes 1,10,20] [--configs new,old] [--models 2 --threads 2] [--rounds 3]
(a configuration "new:MxT" runs M voice instances of T threads, e.g. --configs new:2x1,new:2x2,new:1x2,old;
"new:MxT:F" also asks F seconds of the first stretch, e.g. new:2x2:0.3; "new:MxT:F:S" lets S streams per instance
be in their making at once, e.g. new:2x1::100 for no limit (PHOTOAVATAR_TTS_STREAMS_PER_MODEL, default 5))
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from photoavatar.testing.bench import CpuClock, load_average_line, steal_line
from photoavatar.testing.live_probe import LOUD_DBFS

HERE = Path(__file__).resolve()
PLAIN = ["Hello there, how are you doing today? I hope the weather is kind to you this afternoon.",
         "Thanks for asking about the weather, it has been sunny all week long and quite warm too.",
         "Sure, I can help you with that right away, just tell me what you need and when."]
PLOSIVE = ["Papa bought a big blue boat, and then he painted it bright pink for the summer party."]
TEXTS = {"plain": PLAIN, "plosive": PLOSIVE}
ONE_SESSION_ROUNDS = 15  # its first audio includes the wait for a 20 ms frame slot, uniform over 0-20 ms
ROUND_PAUSE_S = 0.5  # quiet between rounds, as between a chat's turns
# The clients' "done" line holds every utterance's arrival times: past asyncio's 64 KiB default at 10 x 4 rounds.
CLIENT_LINE_LIMIT_BYTES = 64 * 2**20
STAGE_ORDER = ["wait_for_worker", "text", "phonemize", "synthesis", "timeline", "prosody", "resample",
               "hop_to_loop", "frame_slot"]


def text_kinds(value: str) -> list[str]:
    kinds = value.split(",")
    unknown = [kind for kind in kinds if kind not in TEXTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown text kind {', '.join(unknown)}: use {', '.join(TEXTS)}, "
                                         f"comma-separated")
    return kinds


# -- the clients (child process) ------------------------------------------------------------------

async def run_clients(n: int, base_url: str, kind: str, rounds: int) -> None:
    import httpx

    from photoavatar.live.ice import restrict_to_loopback
    from photoavatar.testing.peer import ClientPeer

    restrict_to_loopback(True)  # the clients' media stays on 127.0.0.1, as the server's
    from photoavatar.server.limits import Limits

    # A reused connection the server is closing that moment (its keep-alive ran out between rounds) fails the
    # request: drop idle ones sooner than the server does, as a browser's fetch retries on a fresh one.
    keep_alive = httpx.Limits(keepalive_expiry=Limits().keep_alive_s / 2)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=keep_alive) as http:
        clients = []
        for _ in range(n):
            session = (await http.post("/session-live", json={"avatar_id": "bench"})).json()
            auth = {"Authorization": f"Bearer {session['token']}"}
            peer, offer = await ClientPeer.offer()
            answer = await http.post(session["url"], content=offer, headers={**auth, "Content-Type": "application/sdp"})
            await peer.accept(answer.text)
            packets = _ArrivingPackets(peer)
            await peer.wait_for(lambda peer=peer, packets=packets: peer.pc.connectionState == "connected"
                                and len(packets.arrivals) > 3, 60)
            clients.append((session, packets, auth))
        print("ready", json.dumps([s["session_id"] for s, _, _ in clients]), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
        texts, firsts, cpu_s = TEXTS[kind], [], 0.0
        for round_ in range(rounds):
            at_speak = CpuClock.now()
            sent_at = await asyncio.gather(*(_speak(http, s, a, texts[(i + round_) % len(texts)])
                                             for i, (s, _, a) in enumerate(clients)))
            for _, packets, _ in clients:
                await packets.peer.wait_for(lambda peer=packets.peer, ended=round_ + 1:
                                            len(peer.of_type("utterance_end")) >= ended, 180)
            cpu_s += CpuClock.now().cpu_s_since(at_speak)
            firsts += [packets.first_loud_after(t) for (_, packets, _), t in zip(clients, sent_at, strict=True)]
            await asyncio.sleep(ROUND_PAUSE_S)
        reasons = sorted({p.peer.of_type("utterance_end")[0]["reason"] for _, p, _ in clients})
        gaps_s = [_gap_sums_s(p.peer) for _, p, _ in clients]
        print("done", json.dumps({"reasons": reasons, "first_audio_s": firsts, "cpu_s": cpu_s,
                                  "gap_sums_s": [g for sums in gaps_s for g in sums]}), flush=True)
        for session, packets, auth in clients:
            await packets.peer.close()
            await http.delete(f"/sessions/{session['session_id']}", headers=auth)


def _gap_sums_s(peer) -> list[float]:
    """Seconds of silence the server's utterance_gap messages put into each utterance that had any."""
    sums: dict[str, float] = {}
    for gap in peer.of_type("utterance_gap"):
        sums[gap["utterance_id"]] = sums.get(gap["utterance_id"], 0.0) + gap["gap_s"]
    return list(sums.values())


async def _speak(http, session: dict, auth: dict, text: str) -> float:
    sent_at = asyncio.get_running_loop().time()
    await http.post("/speak", json={"session_id": session["session_id"], "text": text}, headers=auth)
    return sent_at


class _ArrivingPackets:
    """A client's audio packets, kept as they arrive (before aiortc's receive buffer, which never sees them) and
    decoded in order only when asked, after a round."""

    def __init__(self, peer) -> None:
        from aiortc.codecs.opus import OpusDecoder

        self.peer = peer
        self.arrivals: list[tuple[float, int, bytes]] = []  # (arrival monotonic s, RTP timestamp, Opus payload)
        self._decoder = OpusDecoder()
        self._levels_dbfs: list[float] = []  # of each packet decoded so far, in arrival order
        receiver = peer.pc.getTransceivers()[0].receiver

        async def keep(packet, arrival_time_ms):
            self.arrivals.append((asyncio.get_running_loop().time(), packet.timestamp, packet.payload))

        receiver._handle_rtp_packet = keep

    def first_loud_after(self, sent_at_s: float) -> float | None:
        """/speak at SENT_AT_S -> arrival of the first packet after it louder than LOUD_DBFS (None: none yet)."""
        self._decode_arrived()
        for (arrived_s, _, _), level in zip(self.arrivals, self._levels_dbfs, strict=False):
            if arrived_s >= sent_at_s and level > LOUD_DBFS:
                return arrived_s - sent_at_s
        return None

    def _decode_arrived(self) -> None:
        import numpy as np
        from aiortc.jitterbuffer import JitterFrame

        from photoavatar.live.opus import rms_dbov

        for _, timestamp, payload in self.arrivals[len(self._levels_dbfs):]:
            frames = self._decoder.decode(JitterFrame(data=payload, timestamp=timestamp))
            samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]) if frames else np.zeros(0)
            self._levels_dbfs.append(rms_dbov(samples))


# -- the server and the measurements (this process) -----------------------------------------------

async def loop_lag_probe(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.monotonic()
        await asyncio.sleep(0.01)
        samples.append(time.monotonic() - start - 0.01)


async def measure(app, n: int, base_url: str, kind: str, rounds: int) -> dict:
    child = await asyncio.create_subprocess_exec(sys.executable, str(HERE), "--clients", str(n), "--url", base_url,
                                                 "--kind", kind, "--rounds", str(rounds), stdin=asyncio.subprocess.PIPE,
                                                 stdout=asyncio.subprocess.PIPE, limit=CLIENT_LINE_LIMIT_BYTES)
    ready = (await child.stdout.readline()).decode()
    if not ready.startswith("ready"):
        raise RuntimeError(f"the client process failed to connect: {ready!r}")
    registry = app.state.photoavatar.sessions
    sessions = [registry.get(sid) for sid in json.loads(ready.split(" ", 1)[1])]
    for session in sessions:  # count only what happens while they speak
        track = session.transport.track
        track.late_frames, track.max_lateness_s = 0, 0.0
        track.lateness_s.clear()
    lags: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(loop_lag_probe(lags, stop))
    scheduler = app.state.photoavatar.scheduler
    child.stdin.write(b"go\n")
    await child.stdin.drain()
    at_go, made_before = CpuClock.now(), scheduler.totals()
    done_line = (await child.stdout.readline()).decode()
    at_done, made = CpuClock.now(), scheduler.totals().since(made_before)
    stop.set()
    await probe
    await child.wait()
    if not done_line.startswith("done"):
        raise RuntimeError(f"the clients did not finish: {done_line!r}")
    done = json.loads(done_line.split(" ", 1)[1])
    stages = [st for s in sessions for st in s.first_audio_stages]
    lateness = sorted(x for s in sessions for x in s.transport.track.lateness_s)
    return {
        "sessions": n, "text": kind, "ends": done["reasons"],
        "receiver": [x for x in done["first_audio_s"] if x is not None],
        "heard": sum(x is not None for x in done["first_audio_s"]),
        "server": [st["first_audio"] for st in stages],
        "stages": {name: statistics.median(st.get(name, 0.0) for st in stages) for name in STAGE_ORDER},
        "late_frames": sum(s.transport.track.late_frames for s in sessions),
        "pacing_p50_ms": _pct(lateness, 0.5) * 1000, "pacing_p99_ms": _pct(lateness, 0.99) * 1000,
        "underruns": sum(s.transport.playout.underrun_frames for s in sessions), "gap_sums_s": done["gap_sums_s"],
        "lag_p50_ms": _pct(sorted(lags), 0.5) * 1000, "lag_p99_ms": _pct(sorted(lags), 0.99) * 1000,
        "lag_max_ms": max(lags) * 1000,
        "server_cpu_s": at_done.cpu_s_since(at_go) / (n * rounds), "client_cpu_s": done["cpu_s"] / (n * rounds),
        "synthesis_cpu_s": made.cpu_s / (n * rounds), "synthesis_cpu_per_audio_s": made.cpu_per_audio_s,
        "server_cores": at_done.cores_since(at_go), "steal": at_done.steal_since(at_go),
    }


def _rounds(sessions: int, rounds: int) -> int:
    """One session gives one sample a round: it gets ONE_SESSION_ROUNDS at least, for a median worth quoting."""
    return max(rounds, ONE_SESSION_ROUNDS) if sessions == 1 else rounds


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def make_speech(config: str, models: int, threads: int):
    """(speech source, voices, workers, streams per worker or None for the setting) of one server configuration
    ("new", "new:MxT", "new:MxT:F", "new:MxT:F:S" or "old")."""
    from photoavatar.settings import MAX_TTS_STREAMS_PER_MODEL
    from photoavatar.speech.pipeline import LEAD_IN_EVENTS, LEAD_IN_SILENCE, stream_speech
    from photoavatar.speech.piper_engine import FIRST_STRETCH_S, PiperEngine

    first_stretch_s, streams_per_model = FIRST_STRETCH_S, None
    if config.startswith("new:"):
        instances, *rest = config.removeprefix("new:").split(":")
        models, _, threads = instances.partition("x")
        models, threads = int(models), int(threads)
        if rest and rest[0]:
            first_stretch_s = float(rest[0])
        if len(rest) > 1:
            streams_per_model = int(rest[1])
        config = "new"
    if config == "new":
        engine = PiperEngine(threads=threads, models=models, first_stretch_s=first_stretch_s)
        lead_in, workers = LEAD_IN_EVENTS, models
    elif config == "old":  # before the limit on streams in their making
        engine, lead_in, workers = PiperEngine(threads=2, models=1, streamed=False), LEAD_IN_SILENCE, 2
        streams_per_model = MAX_TTS_STREAMS_PER_MODEL
    else:
        raise SystemExit(f"unknown configuration {config!r}: use new or old")

    def speak(text: str, voice_id: str | None):
        return stream_speech(engine, text, voice_id=voice_id, lead_in=lead_in)

    return speak, engine.voices(), workers, streams_per_model


async def run_config(config: str, sizes: list[int], kinds: list[str], models: int, threads: int,
                     rounds: int) -> list[dict]:
    import uvicorn

    from photoavatar.server.app import create_app
    from photoavatar.server.config import ServerSettings
    from photoavatar.server.limits import Limits
    from photoavatar.server.serving import uvicorn_config

    speak, voices, workers, streams_per_model = make_speech(config, models, threads)
    with tempfile.TemporaryDirectory() as folder, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        (Path(folder) / "bench").mkdir()
        (Path(folder) / "bench" / "avatar.json").write_text(json.dumps({"format_version": 1}))
        settings = dataclasses.replace(  # the environment's settings (e.g. PHOTOAVATAR_AUDIO_DTX), and the bench's
            ServerSettings.from_settings(avatars_dir=Path(folder)), max_sessions=max(sizes) + 1,
            sessions_per_minute=10_000, ice_loopback=True, tts_models=workers,
            limits=Limits(sessions_per_address=max(sizes) + 1))  # all from 127.0.0.1
        if streams_per_model is not None:
            settings = dataclasses.replace(settings, tts_streams_per_model=streams_per_model)
        app = create_app(settings, speech=speak, voices=voices)
        server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, settings.limits, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        rows = []
        config = config if config != "new" else f"new:{models}x{threads}"
        try:
            for n in sizes:
                for kind in kinds:
                    times = _rounds(n, rounds)
                    print(f"measuring {config}: {n} session(s), {kind} text, {times} round(s)", file=sys.stderr,
                          flush=True)
                    rows.append({"config": config, **await measure(app, n, f"http://127.0.0.1:{port}", kind, times)})
        finally:  # a failed measurement must not leave the server running: asyncio.run would wait on it
            server.should_exit = True
            await serving
    return rows


def print_rows(rows: list[dict]) -> None:
    print(f"\n{'config':<12} {'n':>3} {'text':<8} {'receiver first audio ms':>26} {'server ms':>11} "
          f"{'underruns':>9} {'late':>4} {'pacing p50/p99':>14} {'loop lag p50/p99/max':>21} "
          f"{'cpu s/utt srv(synth)/cli':>24} {'synth/audio':>11} {'cores':>5} {'steal':>5}")
    for r in rows:
        rx = r["receiver"]
        receiver = (f"{statistics.median(rx) * 1000:5.0f} {_pct(rx, 0.9) * 1000:5.0f} {max(rx) * 1000:5.0f}"
                    if rx else "none heard")
        server = f"{statistics.median(r['server']) * 1000:5.0f} {_pct(r['server'], 0.9) * 1000:5.0f}"
        print(f"{r['config']:<12} {r['sessions']:>3} {r['text']:<8} {receiver:>18} ({r['heard']:>2}) {server:>11} "
              f"{r['underruns']:>9} {r['late_frames']:>4} {r['pacing_p50_ms']:6.1f}/{r['pacing_p99_ms']:<6.1f} "
              f"{r['lag_p50_ms']:6.1f}/{r['lag_p99_ms']:5.1f}/{r['lag_max_ms']:<6.1f} "
              f"{r['server_cpu_s']:9.2f} ({r['synthesis_cpu_s']:4.2f})/{r['client_cpu_s']:<6.2f} "
              f"{r['synthesis_cpu_per_audio_s']:11.3f} {r['server_cores']:5.2f} {r['steal']:5.0%}"
              + ("" if r["ends"] == ["done"] else f"  ends {r['ends']}"))
    print("\nsilence the underruns put into an utterance (utterance_gap; the mouth would lead by it if ignored):")
    for r in rows:
        if r["gap_sums_s"]:
            sums = sorted(r["gap_sums_s"])
            print(f"{r['config']:<12} {r['sessions']:>3} {r['text']:<8} {len(sums):>3} utterances with a gap, "
                  f"median {statistics.median(sums) * 1000:.0f} ms, max {sums[-1] * 1000:.0f} ms")
    print("\nmedian ms per stage of the first audio (server side):")
    print(f"{'config':<12} {'n':>3} {'text':<8} " + " ".join(f"{name[:11]:>11}" for name in STAGE_ORDER))
    for r in rows:
        print(f"{r['config']:<12} {r['sessions']:>3} {r['text']:<8} "
              + " ".join(f"{r['stages'][name] * 1000:>11.1f}" for name in STAGE_ORDER))
    print("\ntargets (receiver, new): 1 session <= 100 ms; 10 sessions median <= 250 ms, p90 <= 400 ms, 0 underruns;"
          " loop lag < 20 ms at 10")
    for r in rows:
        if not r["config"].startswith("new") or r["sessions"] not in (1, 10) or not r["receiver"]:
            continue
        median, p90 = statistics.median(r["receiver"]) * 1000, _pct(r["receiver"], 0.9) * 1000
        met = median <= 100 if r["sessions"] == 1 else (median <= 250 and p90 <= 400 and r["underruns"] == 0
                                                         and r["lag_p99_ms"] < 20)
        print(f"  {r['config']:<12} {r['sessions']:>2} sessions, {r['text']:<8}: median {median:.0f} ms, p90 {p90:.0f} ms -> "
              f"{'met' if met else 'NOT met'}")


async def run_bench(args) -> None:
    started = CpuClock.now()
    print(load_average_line())
    rows = []
    for config in args.configs.split(","):
        rows += await run_config(config, [int(n) for n in args.sizes.split(",")], args.texts,
                                 args.models, args.threads, args.rounds)
    print_rows(rows)
    print(load_average_line().replace("at start", "at end"))
    print(steal_line(started))


if __name__ == "__main__":
    from photoavatar.settings import tts_models, tts_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,20", help="comma-separated session counts")
    parser.add_argument("--texts", type=text_kinds, default="plain,plosive",
                        help="comma-separated: plain (no leading plosive), plosive")
    parser.add_argument("--configs", default="new,old", help="new, old, or both (in this order)")
    parser.add_argument("--models", type=int, default=tts_models(), help="voice instances of the new configuration")
    parser.add_argument("--threads", type=int, default=tts_threads(), help="onnxruntime threads per instance (new)")
    parser.add_argument("--rounds", type=int, default=3,
                        help=f"times all sessions speak at once, per size (one session: {ONE_SESSION_ROUNDS} at least)")
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)  # internal: run as the client process
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients:
        try:
            asyncio.run(run_clients(args.clients, args.url, args.kind, args.rounds))
        except Exception as error:  # the parent reads this line; without it, aiortc's threads keep the child alive
            print(f"failed {error!r}", flush=True)
            os._exit(1)
    else:
        asyncio.run(run_bench(args))
