"""How many live sessions can speak at once on this machine with no audio underrun.

For N = 1, 5, 10, ... it opens N sessions on the real server (in process), connects N real aiortc client
peers over the host's network interface, makes all N speak a sentence at the same moment and measures,
server-side: frames each track produced late (> 20 ms after their slot on the monotonic clock), frames
padded because speech was late mid-utterance (underruns), /speak -> first sample sent, and the event
loop's lag (a 10 ms timer's overshoot). The clients decode in the same process, so the figure is a
conservative one. Run: .venv/bin/python bench/live_sessions.py [--sizes 1,5,10,15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "live"))
from live_peer import ClientPeer  # noqa: E402

from photoavatar.server.app import create_app  # noqa: E402
from photoavatar.server.config import ServerSettings  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs all the way home again."


async def loop_lag_probe(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.monotonic()
        await asyncio.sleep(0.01)
        samples.append(time.monotonic() - start - 0.01)


async def connect(http) -> tuple[dict, ClientPeer, dict]:
    session = (await http.post("/session-live", json={"avatar_id": "bench"})).json()
    auth = {"Authorization": f"Bearer {session['token']}"}
    peer, offer = await ClientPeer.offer()
    answer = await http.post(session["url"], content=offer, headers={**auth, "Content-Type": "application/sdp"})
    await peer.accept(answer.text)
    await peer.wait_for(lambda: peer.pc.connectionState == "connected" and len(peer.frames) > 3, 30)
    return session, peer, auth


async def round_of(http, app, n: int) -> dict:
    connected = [await connect(http) for _ in range(n)]
    registry = app.state.photoavatar.sessions
    servers = [registry.get(s["session_id"]) for s, _, _ in connected]
    for server in servers:  # count only what happens while speaking
        server.transport.track.late_frames, server.transport.track.max_lateness_s = 0, 0.0
    lags: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(loop_lag_probe(lags, stop))
    await asyncio.gather(*(http.post("/speak", json={"session_id": s["session_id"], "text": TEXT}, headers=a)
                           for s, _, a in connected))
    for _, peer, _ in connected:
        await peer.wait_for(lambda peer=peer: peer.of_type("utterance_end"), 120)
    stop.set()
    await probe
    result = {
        "sessions": n,
        "late_frames": sum(s.transport.track.late_frames for s in servers),
        "max_lateness_ms": max(s.transport.track.max_lateness_s for s in servers) * 1000,
        "underruns": sum(s.transport.playout.underrun_frames for s in servers),
        "first_audio_ms": statistics.median(d for s in servers for d in s.first_audio_delays_s) * 1000,
        "loop_lag_p50_ms": statistics.median(lags) * 1000,
        "loop_lag_max_ms": max(lags) * 1000,
        "ends": sorted({p.of_type("utterance_end")[0]["reason"] for _, p, _ in connected}),
    }
    for session, peer, auth in connected:
        await peer.close()
        await http.delete(f"/sessions/{session['session_id']}", headers=auth)
    return result


async def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "bench").mkdir()
        (Path(folder) / "bench" / "avatar.json").write_text(json.dumps({"format_version": 1}))
        settings = ServerSettings(avatars_dir=Path(folder), max_sessions=max(sizes) + 1,
                                  sessions_per_minute=10_000, tts_threads=4)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
                rows = [await round_of(http, app, n) for n in sizes]
    print(f"{'sessions':>8} {'late>20ms':>9} {'max late ms':>11} {'underruns':>9} {'1st audio ms':>12} "
          f"{'loop lag p50/max ms':>19}  ok")
    for r in rows:
        ok = r["late_frames"] == 0 and r["underruns"] == 0 and r["ends"] == ["done"]
        print(f"{r['sessions']:>8} {r['late_frames']:>9} {r['max_lateness_ms']:>11.1f} {r['underruns']:>9} "
              f"{r['first_audio_ms']:>12.0f} {r['loop_lag_p50_ms']:>9.1f}/{r['loop_lag_max_ms']:<9.1f} {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,10,15", help="comma-separated session counts")
    asyncio.run(main([int(n) for n in parser.parse_args().sizes.split(",")]))
