"""Background avatarize jobs started by POST /avatars, polled at GET /avatars/jobs/{job_id}.

Bounded: at most `max_jobs` queued or running (more are refused, HTTP 429), `workers` running at once,
each in its own low-priority process under a memory cap (server/avatar_worker.py says why). The upload
lives in a work folder named after this server's pid (server/cleanup.py removes those of dead servers);
the job removes it when it ends.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path

from photoavatar.server.cleanup import upload_folder_prefix

log = logging.getLogger(__name__)

FINISHED_JOBS_KEPT = 200  # done/failed jobs remembered for polling; the oldest are forgotten first


@dataclass
class AvatarJob:
    job_id: str
    avatar_id: str
    state: str = "queued"  # queued | running | done | failed
    progress: float = 0.0  # 0..1
    error: str | None = None
    stage: str = ""
    peak_rss_bytes: int | None = None  # of its process, once it has ended

    def report(self, stage: str, index: int, total: int) -> None:
        self.stage, self.progress = stage, min(1.0, index / total) if total else 0.0

    def to_json(self) -> dict:
        data = {"job_id": self.job_id, "state": self.state, "progress": round(self.progress, 3),
                "avatar_id": self.avatar_id, "stage": self.stage}
        if self.error:
            data["error"] = self.error
        return data

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


class TooManyJobs(Exception):
    """As many avatar jobs are queued or running as the server allows (HTTP 429)."""


def new_work_folder() -> Path:
    """A private folder for one upload; hand it to AvatarJobs.start, which removes it when the job ends."""
    return Path(tempfile.mkdtemp(prefix=upload_folder_prefix()))


class AvatarJobs:
    def __init__(self, max_jobs: int, workers: int, max_pixels: int, memory_mb: int, timeout_s: float) -> None:
        self.max_jobs = max_jobs
        self.timeout_s = timeout_s
        self.max_pixels = max_pixels
        self.memory_mb = memory_mb
        self._jobs: OrderedDict[str, AvatarJob] = OrderedDict()
        self._lock = threading.Lock()
        self._workers = threading.Semaphore(workers)

    def get(self, job_id: str) -> AvatarJob | None:
        return self._jobs.get(job_id)

    def busy_with(self, avatar_id: str) -> bool:
        return any(j.avatar_id == avatar_id and not j.finished for j in list(self._jobs.values()))

    def in_flight(self) -> int:
        return sum(1 for j in list(self._jobs.values()) if not j.finished)

    def counts(self) -> dict[str, int]:
        found = Counter(j.state for j in list(self._jobs.values()))
        return {state: found.get(state, 0) for state in ("queued", "running", "done", "failed")}

    def start(self, photo: Path, out: Path, avatar_id: str) -> AvatarJob:
        """Queue the job for PHOTO (inside a new_work_folder(), which the job then owns)."""
        job = AvatarJob(f"j_{uuid.uuid4().hex[:16]}", avatar_id)
        with self._lock:
            if self.in_flight() >= self.max_jobs:
                raise TooManyJobs(f"{self.max_jobs} avatar jobs are already queued or running: poll them at "
                                  "GET /avatars/jobs/{job_id} and try again when one ends")
            self._jobs[job.job_id] = job
            self._forget_old()
        threading.Thread(target=self._run, args=(job, photo, out), daemon=True,
                         name=f"avatar job {job.job_id}").start()
        return job

    def _forget_old(self) -> None:
        finished = [jid for jid, j in self._jobs.items() if j.finished]
        for job_id in finished[:max(0, len(finished) - FINISHED_JOBS_KEPT)]:
            del self._jobs[job_id]

    def _run(self, job: AvatarJob, photo: Path, out: Path) -> None:
        outcome = _Outcome()
        try:
            with self._workers:
                job.state = "running"
                self._run_process(job, photo, out, outcome)
        except Exception as error:  # the job reports every failure; the server keeps running
            log.exception("avatar job %s could not run", job.job_id)
            outcome.error = f"the avatar job could not run ({type(error).__name__})"
        finally:
            shutil.rmtree(photo.parent, ignore_errors=True)
            # the state changes last, so a client that sees "done" or "failed" sees everything settled
            job.error = outcome.error
            job.progress, job.state = (1.0, "done") if outcome.done and not outcome.error else (job.progress, "failed")

    def _run_process(self, job: AvatarJob, photo: Path, out: Path, outcome: _Outcome) -> None:
        stderr_path = photo.parent / "worker.log"
        with stderr_path.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "photoavatar.server.avatar_worker", str(photo), str(out),
                 str(self.max_pixels), str(self.memory_mb)],
                stdout=subprocess.PIPE, stderr=stderr, text=True, env=_worker_environment())
            watchdog = threading.Timer(self.timeout_s, process.kill)
            watchdog.start()
            try:
                with process.stdout:
                    for line in process.stdout:
                        _take(job, outcome, line)
                code = process.wait()
            finally:
                watchdog.cancel()
        if not outcome.done and not outcome.error and not watchdog.is_alive() and code == -9:
            outcome.error = f"the avatar job took longer than {self.timeout_s:g} s and was stopped: try a smaller photo"
        if not outcome.done and not outcome.error:  # no answer: it crashed or was killed (out of memory: -9)
            outcome.error = f"the avatar job stopped unexpectedly (exit status {code}): try again, or a smaller photo"
        if outcome.error:
            log.warning("avatar job %s failed: %s; worker said: %s", job.job_id, outcome.error,
                        stderr_path.read_text(errors="replace")[-2000:].strip())
        log.info("avatar job %s %s; peak memory %.0f MB", job.job_id, "failed" if outcome.error else "done",
                 (job.peak_rss_bytes or 0) / 1e6)


@dataclass
class _Outcome:
    done: bool = False
    error: str | None = None


def _take(job: AvatarJob, outcome: _Outcome, line: str) -> None:
    """One line from the worker: progress, its answer, or its peak memory."""
    try:
        said = json.loads(line)
    except ValueError:
        return  # a library printing to stdout; not ours
    if not isinstance(said, dict):
        return
    if "stage" in said:
        job.report(str(said["stage"]), int(said.get("index", 0)), int(said.get("total", 0)))
    elif said.get("done"):
        outcome.done = True
    elif "error" in said:
        outcome.error = str(said["error"])
    elif "peak_rss_bytes" in said:
        job.peak_rss_bytes = int(said["peak_rss_bytes"])


def _worker_environment() -> dict[str, str]:
    # One thread per numeric library: the worker must not fan out over the cores live audio needs.
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, "1")
    return env
