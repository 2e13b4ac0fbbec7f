"""Do avatar uploads make live audio underrun? (issue 12 §4: five uploads at once gave 26 underrun frames.)

The real server runs in a child process (bench/soak.py's), LIVE sessions speak without a pause, and the
server's /metrics counters of underrun and late audio frames are read over two phases of PHASE_S each:
speaking alone, then speaking while UPLOADS photos are posted at once (the job limit refuses some: 429).
Avatar jobs run in their own nice-19 processes, so the second phase should add no underruns.

Run: .venv/bin/python bench/upload_load.py [--live 2] [--uploads 5] [--phase-s 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak  # noqa: E402  (the server child, the client and the sampler are shared with the soak)


async def keep_speaking(client: soak.Client, until_s: float) -> None:
    rng = client.rng
    while time.monotonic() < until_s:
        await client.speak(soak.sentence(rng), barge_in=False)
        await asyncio.sleep(1.5)


async def phase(http, clients, seconds: float, uploads: int, photo: Path) -> dict:
    before = await soak.sample(http, time.monotonic())
    until = time.monotonic() + seconds
    statuses: list[int] = []

    async def post(n: int) -> None:
        reply = await http.post("/avatars", params={"avatar_id": f"load{n}-{int(time.time())}"},
                                headers={"X-API-Key": soak.API_KEY},
                                files={"photo": (photo.name, photo.read_bytes(), "image/jpeg")})
        statuses.append(reply.status_code)

    await asyncio.gather(*(keep_speaking(c, until) for c in clients), *(post(n) for n in range(uploads)))
    after = await soak.sample(http, time.monotonic())
    return {"uploads": uploads, "accepted": statuses.count(202), "refused_429": statuses.count(429),
            "underruns": after["underruns"] - before["underruns"],
            "late_frames": after["late_frames"] - before["late_frames"], "loop_lag_ms": after["loop_lag_ms"]}


async def measure(base_url: str, live: int, uploads: int, seconds: float) -> list[dict]:
    import httpx

    from photoavatar.live.ice import restrict_to_loopback

    restrict_to_loopback(True)
    photo = soak.FACES / "grace_hopper.jpg"
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
        clients = [soak.Client(http, soak.Tally(), random.Random(n)) for n in range(live)]
        for client in clients:
            if not await client.start():
                raise RuntimeError("a live session did not connect")
        rows = [await phase(http, clients, seconds, 0, photo), await phase(http, clients, seconds, uploads, photo)]
        for client in clients:
            await client.end(politely=True)
    return rows


async def main(args) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="upload-load-") as folder:
        (Path(folder) / "soak").mkdir()
        (Path(folder) / "soak" / "avatar.json").write_text(json.dumps({"format_version": 1}))
        port = soak.free_port()
        child = await asyncio.create_subprocess_exec(sys.executable, str(soak.HERE), "--serve", str(port),
                                                     "--avatars", folder, "--sessions", str(args.live))
        try:
            base_url = f"http://127.0.0.1:{port}"
            await soak.wait_for_server(base_url, child)
            return await measure(base_url, args.live, args.uploads, args.phase_s)
        finally:
            child.terminate()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(child.wait(), 20)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live", type=int, default=2)
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--phase-s", type=float, default=30)
    arguments = parser.parse_args()
    rows = asyncio.run(main(arguments))
    print(f"{arguments.live} live sessions speaking, {arguments.phase_s:g} s per phase, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'phase':<22}{'accepted':>9}{'429':>5}{'underrun frames':>17}{'late frames':>13}{'loop lag ms':>13}")
    for name, row in zip(("speaking alone", f"+ {arguments.uploads} uploads at once"), rows, strict=True):
        print(f"{name:<22}{row['accepted']:>9}{row['refused_429']:>5}{row['underruns']:>17.0f}"
              f"{row['late_frames']:>13.0f}{row['loop_lag_ms']:>13.0f}")
