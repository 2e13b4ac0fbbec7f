"""Background avatarize jobs started by POST /avatars, polled at GET /avatars/jobs/{job_id}."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class AvatarJob:
    job_id: str
    avatar_id: str
    state: str = "queued"  # queued | running | done | failed
    progress: float = 0.0  # 0..1
    error: str | None = None
    stage: str = ""

    def report(self, stage: str, index: int, total: int) -> None:
        self.stage, self.progress = stage, min(1.0, index / total) if total else 0.0

    def to_json(self) -> dict:
        data = {"job_id": self.job_id, "state": self.state, "progress": round(self.progress, 3),
                "avatar_id": self.avatar_id, "stage": self.stage}
        if self.error:
            data["error"] = self.error
        return data


class AvatarJobs:
    """One worker thread per job (avatarize is CPU-bound and rare); jobs are remembered until restart."""

    def __init__(self) -> None:
        self._jobs: dict[str, AvatarJob] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> AvatarJob | None:
        return self._jobs.get(job_id)

    def busy_with(self, avatar_id: str) -> bool:
        return any(j.avatar_id == avatar_id and j.state in ("queued", "running") for j in self._jobs.values())

    def start(self, photo_bytes: bytes, suffix: str, out: Path, avatar_id: str) -> AvatarJob:
        job = AvatarJob(f"j_{uuid.uuid4().hex[:16]}", avatar_id)
        with self._lock:
            self._jobs[job.job_id] = job
        threading.Thread(target=self._run, args=(job, photo_bytes, suffix, out), daemon=True,
                         name=f"avatarize {avatar_id}").start()
        return job

    def _run(self, job: AvatarJob, photo_bytes: bytes, suffix: str, out: Path) -> None:
        job.state = "running"
        work = Path(tempfile.mkdtemp(prefix="photoavatar-upload-"))
        try:
            from photoavatar.avatar.build import avatarize

            photo = work / f"photo{suffix}"
            photo.write_bytes(photo_bytes)
            avatarize(photo, out, progress=lambda stage, index, total: job.report(stage, index, total))
            job.progress, job.state = 1.0, "done"
        except Exception as error:  # the job reports every failure; the server keeps running
            log.warning("avatarize job %s failed: %s", job.job_id, error)
            job.state, job.error = "failed", str(error) or type(error).__name__
        finally:
            shutil.rmtree(work, ignore_errors=True)
