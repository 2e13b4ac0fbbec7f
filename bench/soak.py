"""Soak: many live sessions for many minutes, as clumsy users would drive them; does the server hold?

The real server runs in a child process (uvicorn on 127.0.0.1, the real Piper voice, loopback ICE), so its
memory is its own; this process plays N clients (real aiortc peers). Each client speaks a random sentence
every few seconds, with random barge-ins and stops; some vanish without /stop (their peer closes, or they
never connect at all) and are replaced by new ones. Once a minute one client sends a run-on text of 4,800
characters without a full stop, and one photo is uploaded (POST /avatars, polled, then deleted).

Every SAMPLE_S the server's /metrics is read: resident memory, open descriptors, threads, event-loop lag,
underrun and late audio frames, 5xx responses. Printed at the end: RSS at start/end/peak and its slope after
warm-up (MB per hour, least squares), descriptors and threads before and after (once every session has
ended), 5xx, utterance overlaps seen by clients, and how long the last vanished sessions took to be freed.
Loopback only; every loop is bounded by the run time.

Run: .venv/bin/python bench/soak.py [--sessions 10] [--minutes 30] [--sample-s 15] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve()
FACES = HERE.parents[2] / "shared" / "testdata" / "faces"
API_KEY = "soak-key"
WORDS = ("the quick brown fox jumps over the lazy dog while seven bright stars watch from above and a small "
         "boat drifts home across the quiet harbour at dawn").split()
RUN_ON = " ".join(["and the quick brown fox jumps over the lazy dog"] * 100)[:4800]  # issue 11: no full stop
# idle worker threads (anyio's pool) exit after 10 s; descriptors and threads are compared after this
SETTLE_S = 12
WARM_UP_FRACTION = 0.2  # the slope is fitted after the first fifth of the run (voice loaded, caches filled)


# -- the server (child process) ---------------------------------------------------------------------------

def serve(port: int, avatars: Path, sessions: int) -> None:
    import uvicorn

    from photoavatar.server.app import create_app
    from photoavatar.server.config import ServerSettings
    from photoavatar.server.serving import uvicorn_config

    os.environ["PHOTOAVATAR_ICE_LOOPBACK"] = "1"
    room = sessions * 3 + 4  # every client is on 127.0.0.1; vanished sessions linger until they are freed
    settings = ServerSettings.from_settings(avatars)
    limits = dataclasses.replace(settings.limits, sessions_per_address=room, max_unconnected_sessions=room,
                                 unconnected_timeout_s=10)
    settings = dataclasses.replace(settings, api_key=API_KEY, ice_loopback=True, max_sessions=room,
                                   sessions_per_minute=100_000, requests_per_minute=100_000, limits=limits)
    uvicorn.Server(uvicorn_config(create_app(settings), "127.0.0.1", port, settings.limits,
                                  log_level="warning")).run()


# -- the clients (this process) -----------------------------------------------------------------------------

@dataclass
class Tally:
    requests: int = 0
    server_errors: int = 0  # 5xx seen by clients
    refused: dict = field(default_factory=dict)  # 4xx status -> count (429s are expected under load)
    utterances: int = 0
    overlaps: int = 0  # a second utterance_start before the previous utterance_end, in one session
    ends: dict = field(default_factory=dict)  # utterance_end reason -> count
    vanished: int = 0
    never_connected: int = 0
    uploads: int = 0
    upload_failures: int = 0
    run_ons: int = 0
    freed_after_s: list = field(default_factory=list)  # each vanished session: seconds until the server freed it
    watchers: list = field(default_factory=list)  # the tasks measuring that

    def saw(self, status: int) -> None:
        self.requests += 1
        if status >= 500:
            self.server_errors += 1
        elif status >= 400:
            self.refused[status] = self.refused.get(status, 0) + 1


def overlaps_in(messages: list) -> tuple[int, dict]:
    """Overlapping utterances in one client's viseme channel, and its end reasons."""
    playing, overlaps, ends = None, 0, {}
    for _, _, message in messages:
        if message.get("type") == "utterance_start":
            overlaps += playing is not None
            playing = message["utterance_id"]
        elif message.get("type") == "utterance_end":
            ends[message["reason"]] = ends.get(message["reason"], 0) + 1
            if message["utterance_id"] == playing:
                playing = None
    return overlaps, ends


class Client:
    def __init__(self, http, tally: Tally, rng: random.Random):
        self.http, self.tally, self.rng = http, tally, rng
        self.session: dict | None = None
        self.peer = None

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.session['token']}"}

    async def post(self, path: str, **kwargs):
        reply = await self.http.post(path, **kwargs)
        self.tally.saw(reply.status_code)
        return reply

    async def start(self) -> bool:
        from photoavatar.testing.peer import ClientPeer

        reply = await self.post("/session-live", json={"avatar_id": "soak"})
        if reply.status_code != 200:
            return False
        self.session = reply.json()
        if self.rng.random() < 0.05:  # opens a session and never connects: the server must free it
            self.tally.never_connected += 1
            self.watch_until_freed()
            self.session = None
            return False
        self.peer, offer = await ClientPeer.offer()
        answer = await self.post(self.session["url"], content=offer,
                                 headers={**self.auth, "Content-Type": "application/sdp"})
        if answer.status_code != 201:
            await self.drop()
            return False
        await self.peer.accept(answer.text)
        with contextlib.suppress(AssertionError):
            await self.peer.wait_for(lambda: self.peer.pc.connectionState == "connected", 30)
        return self.peer.pc.connectionState == "connected"

    async def speak(self, text: str, barge_in: bool) -> None:
        body = {"session_id": self.session["session_id"], "text": text, "barge_in": barge_in}
        if (await self.post("/speak", json=body, headers=self.auth)).status_code == 202:
            self.tally.utterances += 1

    async def stop(self) -> None:
        await self.post("/stop", json={"session_id": self.session["session_id"]}, headers=self.auth)

    async def end(self, politely: bool) -> None:
        if politely and self.session is not None:
            reply = await self.http.delete(f"/sessions/{self.session['session_id']}", headers=self.auth)
            self.tally.saw(reply.status_code)
        await self.drop()

    def watch_until_freed(self) -> None:
        """Measure, with the session's own token, how long the server takes to free this abandoned session."""
        session, auth, started = self.session, self.auth, time.monotonic()

        async def watch() -> None:
            while time.monotonic() - started < 60:
                await asyncio.sleep(0.25)
                reply = await self.http.post("/stop", json={"session_id": session["session_id"]}, headers=auth)
                if reply.status_code == 404:
                    self.tally.freed_after_s.append(round(time.monotonic() - started, 2))
                    return
            self.tally.freed_after_s.append(None)

        self.tally.watchers.append(asyncio.create_task(watch()))

    async def drop(self) -> None:
        if self.peer is not None:
            overlaps, ends = overlaps_in(self.peer.messages)
            self.tally.overlaps += overlaps
            for reason, count in ends.items():
                self.tally.ends[reason] = self.tally.ends.get(reason, 0) + count
            await self.peer.close()
        self.peer, self.session = None, None


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))).capitalize() + "."


async def drive(client: Client, until_s: float, run_on: asyncio.Queue) -> None:
    rng = client.rng
    while time.monotonic() < until_s:
        if client.session is None and not await client.start():
            await asyncio.sleep(1)
            continue
        await asyncio.sleep(rng.uniform(2, 6))
        if time.monotonic() >= until_s:
            break
        action = rng.random()
        if not run_on.empty():
            run_on.get_nowait()
            client.tally.run_ons += 1
            await client.speak(RUN_ON, barge_in=True)
        elif action < 0.03:  # vanishes without /stop or DELETE: the peer just goes away
            client.tally.vanished += 1
            client.watch_until_freed()
            await client.drop()
        elif action < 0.13:
            await client.stop()
        else:
            await client.speak(sentence(rng), barge_in=rng.random() < 0.3)
    await client.end(politely=True)


async def once_a_minute(http, tally: Tally, until_s: float, run_on: asyncio.Queue, photo: Path | None) -> None:
    """At 0:30, 1:30, ...: one run-on text (taken by the next client to act) and one upload."""
    next_s = time.monotonic() + 30
    while next_s + 10 < until_s:
        await asyncio.sleep(max(0.0, next_s - time.monotonic()))
        run_on.put_nowait(True)
        if photo is not None:
            await upload(http, tally, photo, until_s)
        next_s += 60


async def upload(http, tally: Tally, photo: Path, until_s: float) -> None:
    key = {"X-API-Key": API_KEY}
    avatar_id = f"up{tally.uploads}"
    reply = await http.post("/avatars", params={"avatar_id": avatar_id}, headers=key,
                            files={"photo": (photo.name, photo.read_bytes(), "image/jpeg")})
    tally.saw(reply.status_code)
    tally.uploads += 1
    if reply.status_code != 202:
        tally.upload_failures += 1
        return
    job_id = reply.json()["job_id"]
    while time.monotonic() < until_s + 120:
        job = (await http.get(f"/avatars/jobs/{job_id}", headers=key)).json()
        if job["state"] in ("done", "failed"):
            tally.upload_failures += job["state"] == "failed"
            break
        await asyncio.sleep(1)
    if (await http.delete(f"/avatars/{avatar_id}", headers=key)).status_code not in (204, 404):
        tally.upload_failures += 1


# -- sampling ----------------------------------------------------------------------------------------------

METRICS = {"rss_mb": "photoavatar_process_resident_bytes", "fds": "photoavatar_process_open_fds",
           "threads": "photoavatar_process_threads", "loop_lag_ms": "photoavatar_event_loop_lag_seconds",
           "underruns": "photoavatar_underrun_frames_total", "late_frames": "photoavatar_late_frames_total",
           "server_5xx": 'photoavatar_http_responses_total{class="5xx"}',
           "connected": 'photoavatar_sessions{state="connected"}',
           "unconnected": 'photoavatar_sessions{state="unconnected"}'}


async def sample(http, started_s: float) -> dict:
    from photoavatar.server.health import parse

    values = parse((await http.get("/metrics")).text)
    row = {name: values.get(key, 0.0) for name, key in METRICS.items()}
    row["rss_mb"] /= 1e6
    row["loop_lag_ms"] *= 1000
    row["t_s"] = round(time.monotonic() - started_s, 1)
    return row


async def sample_forever(http, rows: list, started_s: float, every_s: float, until_s: float) -> None:
    while time.monotonic() < until_s:
        rows.append(await sample(http, started_s))
        await asyncio.sleep(every_s)


def slope_mb_per_h(rows: list[dict]) -> float:
    after = [r for r in rows if r["t_s"] >= rows[-1]["t_s"] * WARM_UP_FRACTION]
    if len(after) < 3:
        return float("nan")
    ts, rss = [r["t_s"] / 3600 for r in after], [r["rss_mb"] for r in after]
    mean_t, mean_r = statistics.fmean(ts), statistics.fmean(rss)
    return sum((t - mean_t) * (r - mean_r) for t, r in zip(ts, rss, strict=True)) / sum((t - mean_t) ** 2 for t in ts)


async def warm_up(client: Client) -> None:
    """One session speaks once and ends, so the baseline counts the server's lazily made pools and caches."""
    if await client.start():
        await client.speak("Warming up.", barge_in=True)
        await client.peer.wait_for(lambda: client.peer.of_type("utterance_end"), 60)
    await client.end(politely=True)
    await asyncio.sleep(SETTLE_S)


async def wait_until_empty(http, timeout_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        row = await sample(http, started)
        if row["connected"] + row["unconnected"] == 0:
            return round(time.monotonic() - started, 1)
        await asyncio.sleep(0.5)
    return None


async def soak(base_url: str, sessions: int, minutes: float, every_s: float, seed: int) -> dict:
    import httpx

    from photoavatar.live.ice import restrict_to_loopback

    restrict_to_loopback(True)
    tally, rows = Tally(), []
    rng = random.Random(seed)
    photo = FACES / "grace_hopper.jpg"
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
        await warm_up(Client(http, Tally(), random.Random(seed)))
        baseline = await sample(http, time.monotonic())
        started = time.monotonic()
        until = started + minutes * 60
        run_on: asyncio.Queue = asyncio.Queue()
        clients = [Client(http, tally, random.Random(rng.random())) for _ in range(sessions)]
        await asyncio.gather(sample_forever(http, rows, started, every_s, until),
                             once_a_minute(http, tally, until, run_on, photo if photo.is_file() else None),
                             *(drive(client, until, run_on) for client in clients))
        await asyncio.gather(*tally.watchers)
        tally.watchers = []
        freed_after_s = await wait_until_empty(http, 60)
        await asyncio.sleep(SETTLE_S)
        final = await sample(http, started)
    rows.append(final)
    return {"sessions": sessions, "minutes": minutes, "seed": seed, "load_average": os.getloadavg(),
            "rss_start_mb": rows[0]["rss_mb"], "rss_end_mb": final["rss_mb"],
            "rss_peak_mb": max(r["rss_mb"] for r in rows), "rss_slope_mb_per_h": slope_mb_per_h(rows[:-1]),
            "fds_baseline": baseline["fds"], "fds_end": final["fds"], "fds_peak": max(r["fds"] for r in rows),
            "threads_baseline": baseline["threads"], "threads_end": final["threads"],
            "threads_peak": max(r["threads"] for r in rows),
            "loop_lag_worst_ms": max(r["loop_lag_ms"] for r in rows), "underruns": final["underruns"],
            "late_frames": final["late_frames"], "server_5xx": final["server_5xx"],
            "all_sessions_freed_after_s": freed_after_s, "tally": asdict(tally), "samples": rows}


def print_table(result: dict) -> None:
    tally = result["tally"]
    lines = [
        f"soak: {result['sessions']} sessions x {result['minutes']:g} min (seed {result['seed']}), "
        f"load average {' '.join(f'{x:.2f}' for x in result['load_average'])}",
        f"{'RSS MB':<28} start {result['rss_start_mb']:.0f}  end {result['rss_end_mb']:.0f}  "
        f"peak {result['rss_peak_mb']:.0f}  slope after warm-up {result['rss_slope_mb_per_h']:+.1f} MB/h",
        f"{'open fds':<28} before {result['fds_baseline']:.0f}  peak {result['fds_peak']:.0f}  "
        f"after all ended {result['fds_end']:.0f}",
        f"{'threads':<28} before {result['threads_baseline']:.0f}  peak {result['threads_peak']:.0f}  "
        f"after all ended {result['threads_end']:.0f}",
        f"{'5xx (server / clients)':<28} {result['server_5xx']:.0f} / {tally['server_errors']}",
        f"{'utterance overlaps':<28} {tally['overlaps']}  (utterances {tally['utterances']}, ends {tally['ends']})",
        f"{'underrun / late frames':<28} {result['underruns']:.0f} / {result['late_frames']:.0f}",
        f"{'event-loop lag worst':<28} {result['loop_lag_worst_ms']:.0f} ms",
        f"{'vanished / never connected':<28} {tally['vanished']} / {tally['never_connected']}; freed after at most "
        f"{max((x for x in tally['freed_after_s'] if x is not None), default=0):.1f} s "
        f"({tally['freed_after_s'].count(None)} not within 60 s); every session freed at the end "
        f"{'after ' + str(result['all_sessions_freed_after_s']) + ' s' if result['all_sessions_freed_after_s'] is not None else 'NOT within 60 s'}",
        f"{'run-ons / uploads (failed)':<28} {tally['run_ons']} / {tally['uploads']} ({tally['upload_failures']})",
        f"{'requests (refused 4xx)':<28} {tally['requests']} ({tally['refused']})",
        f"{'samples':<28} {len(result['samples'])}",
    ]
    print("\n".join(lines))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def wait_for_server(base_url: str, child, timeout_s: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        while time.monotonic() < deadline:
            if child.returncode is not None:
                raise RuntimeError(f"the server exited with {child.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/health")).status_code == 200:
                    return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"the server did not answer /health within {timeout_s} s")


async def main(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="soak-avatars-") as folder:
        (Path(folder) / "soak").mkdir()
        (Path(folder) / "soak" / "avatar.json").write_text(json.dumps({"format_version": 1}))
        port = free_port()
        child = await asyncio.create_subprocess_exec(sys.executable, str(HERE), "--serve", str(port), "--avatars",
                                                     folder, "--sessions", str(args.sessions))
        try:
            base_url = f"http://127.0.0.1:{port}"
            await wait_for_server(base_url, child)
            return await soak(base_url, args.sessions, args.minutes, args.sample_s, args.seed)
        finally:
            child.terminate()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(child.wait(), 20)
            if child.returncode is None:
                child.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--sample-s", type=float, default=15)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the result as JSON (tests read it)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the child: serve on this port
    parser.add_argument("--avatars", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.avatars, args.sessions)
    else:
        result = asyncio.run(main(args))
        if args.json:
            print(json.dumps(result))
        else:
            print_table(result)
