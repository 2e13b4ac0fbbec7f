"""How many live sessions can speak at once on this machine with no audio underrun.

The real server runs under uvicorn on 127.0.0.1 in this process; a child process plays N clients (real
aiortc peers over the host's network interface), so client decoding does not share the server's GIL.
All N speak a sentence at the same moment. Measured server-side, while they speak: frames a track
produced late (> 40 ms after their slot, enough to drain a small jitter buffer on the monotonic clock), frames padded because speech was late
mid-utterance (underruns), /speak -> first sample sent (median), and the event loop's lag (the
overshoot of a 10 ms timer). Run: .venv/bin/python bench/live_sessions.py [--sizes 1,5,10,15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs all the way home again."
HERE = Path(__file__).resolve()


# -- the clients (child process) ------------------------------------------------------------------

async def run_clients(n: int, base_url: str) -> None:
    import httpx

    from photoavatar.live.ice import restrict_to_loopback

    restrict_to_loopback(True)  # the clients' media stays on 127.0.0.1, as the server's

    from photoavatar.testing.peer import ClientPeer

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        clients = []
        for _ in range(n):
            session = (await http.post("/session-live", json={"avatar_id": "bench"})).json()
            auth = {"Authorization": f"Bearer {session['token']}"}
            peer, offer = await ClientPeer.offer()
            answer = await http.post(session["url"], content=offer, headers={**auth, "Content-Type": "application/sdp"})
            await peer.accept(answer.text)
            await peer.wait_for(lambda peer=peer: peer.pc.connectionState == "connected" and len(peer.frames) > 3, 60)
            clients.append((session, peer, auth))
        print("ready", json.dumps([s["session_id"] for s, _, _ in clients]), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
        await asyncio.gather(*(http.post("/speak", json={"session_id": s["session_id"], "text": TEXT}, headers=a)
                               for s, _, a in clients))
        for _, peer, _ in clients:
            await peer.wait_for(lambda peer=peer: peer.of_type("utterance_end"), 180)
        print("done", json.dumps(sorted({p.of_type("utterance_end")[0]["reason"] for _, p, _ in clients})), flush=True)
        for session, peer, auth in clients:
            await peer.close()
            await http.delete(f"/sessions/{session['session_id']}", headers=auth)


# -- the server and the measurements (this process) -----------------------------------------------

async def loop_lag_probe(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.monotonic()
        await asyncio.sleep(0.01)
        samples.append(time.monotonic() - start - 0.01)


async def measure(app, n: int, base_url: str) -> dict:
    child = await asyncio.create_subprocess_exec(sys.executable, str(HERE), "--clients", str(n), "--url", base_url,
                                                 stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    ready = (await child.stdout.readline()).decode()
    if not ready.startswith("ready"):
        raise RuntimeError(f"the client process failed to connect: {ready!r}")
    registry = app.state.photoavatar.sessions
    sessions = [registry.get(sid) for sid in json.loads(ready.split(" ", 1)[1])]
    for session in sessions:  # count only what happens while they speak
        session.transport.track.late_frames, session.transport.track.max_lateness_s = 0, 0.0
    lags: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(loop_lag_probe(lags, stop))
    child.stdin.write(b"go\n")
    await child.stdin.drain()
    done = (await child.stdout.readline()).decode()
    stop.set()
    await probe
    result = {
        "sessions": n, "ends": json.loads(done.split(" ", 1)[1]) if done.startswith("done") else [done],
        "late_frames": sum(s.transport.track.late_frames for s in sessions),
        "max_lateness_ms": max(s.transport.track.max_lateness_s for s in sessions) * 1000,
        "underruns": sum(s.transport.playout.underrun_frames for s in sessions),
        "first_audio_ms": statistics.median(d for s in sessions for d in s.first_audio_delays_s) * 1000,
        "loop_lag_p50_ms": statistics.median(lags) * 1000, "loop_lag_max_ms": max(lags) * 1000,
    }
    await child.wait()
    return result


async def run_bench(sizes: list[int]) -> None:
    import uvicorn

    from photoavatar.server.app import create_app
    from photoavatar.server.config import ServerSettings

    with tempfile.TemporaryDirectory() as folder, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        (Path(folder) / "bench").mkdir()
        (Path(folder) / "bench" / "avatar.json").write_text(json.dumps({"format_version": 1}))
        app = create_app(ServerSettings(avatars_dir=Path(folder), max_sessions=max(sizes) + 1,
                                        sessions_per_minute=10_000, ice_loopback=True))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        rows = [await measure(app, n, f"http://127.0.0.1:{port}") for n in sizes]
        server.should_exit = True
        await serving
    print(f"{'sessions':>8} {'late>40ms':>9} {'max late ms':>11} {'underruns':>9} {'1st audio ms':>12} "
          f"{'loop lag p50/max ms':>19}  ok")
    for r in rows:
        ok = r["late_frames"] == 0 and r["underruns"] == 0 and r["ends"] == ["done"]
        print(f"{r['sessions']:>8} {r['late_frames']:>9} {r['max_lateness_ms']:>11.1f} {r['underruns']:>9} "
              f"{r['first_audio_ms']:>12.0f} {r['loop_lag_p50_ms']:>9.1f}/{r['loop_lag_max_ms']:<9.1f} {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,10,15", help="comma-separated session counts")
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)  # internal: run as the client process
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients:
        asyncio.run(run_clients(args.clients, args.url))
    else:
        asyncio.run(run_bench([int(n) for n in args.sizes.split(",")]))
