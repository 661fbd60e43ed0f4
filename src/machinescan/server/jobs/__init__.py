"""Background work recorded in the database: enqueue a job, and run it in-process or from a task queue.

A job is a row (`Job`): `enqueue` adds one in the caller's transaction, so it exists exactly when the
change that asked for it was committed. `run_job(services, job_id)` is the one entry point that runs a
job: the in-process `JobRunner` (the embedded default) calls it from its threads, and an established task
queue's worker can call it the same way when the server is scaled out.
"""

import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..db.models import Job, Scan, utcnow

log = logging.getLogger("machinescan.jobs")
HANDLERS: dict[str, Callable[["JobContext"], None]] = {}
MAX_ATTEMPTS = 3
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def handler(kind: str):
    """Register the function that runs jobs of `kind`."""
    def register(function: Callable[["JobContext"], None]):
        HANDLERS[kind] = function
        return function
    return register


def enqueue(session: Session, kind: str, scan_id: int) -> Job:
    job = Job(kind=kind, scan_id=scan_id, state="queued")
    session.add(job)
    session.flush()
    return job


class JobCancelled(Exception):
    """The scan was cancelled or deleted while its job ran."""


class JobContext:
    """What a handler gets: the services, its job and scan ids, and a heartbeat that also checks for cancel."""

    def __init__(self, services, job_id: int, scan_id: int):
        self.services = services
        self.job_id = job_id
        self.scan_id = scan_id

    def heartbeat(self, session: Session) -> None:
        session.execute(update(Job).where(Job.id == self.job_id).values(heartbeat=utcnow()))
        cancelled = session.scalar(select(Scan.cancelled).where(Scan.id == self.scan_id))
        if cancelled is None or cancelled:
            raise JobCancelled(f"scan {self.scan_id} was cancelled or deleted")


def claim_next(services) -> int | None:
    """Take the oldest queued job for this worker; safe with several workers on one database."""
    with services.database.session() as session:
        query = select(Job.id).where(Job.state == "queued").order_by(Job.id).limit(1)
        if session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        job_id = session.scalar(query)
        if job_id is None:
            return None
        claimed = session.execute(
            update(Job).where(Job.id == job_id, Job.state == "queued")
            .values(state="running", worker=WORKER_ID, heartbeat=utcnow(), attempts=Job.attempts + 1))
        return job_id if claimed.rowcount == 1 else None


def run_job(services, job_id: int) -> None:
    with services.database.session() as session:
        job = session.get(Job, job_id)
        kind, scan_id = job.kind, job.scan_id
    context = JobContext(services, job_id, scan_id)
    try:
        HANDLERS[kind](context)
    except JobCancelled:
        _finish(services, job_id, "done", "cancelled")
    except Exception as error:  # a job never takes the runner down; the scan says what failed
        log.error("job %s (%s) of scan %s failed:\n%s", job_id, kind, scan_id, traceback.format_exc())
        _finish(services, job_id, "failed", f"{type(error).__name__}: {error}")
        fail_scan(services, scan_id, f"{kind.replace('_', ' ')} failed: {error}")
    else:
        _finish(services, job_id, "done", None)


def _finish(services, job_id: int, state: str, error: str | None) -> None:
    with services.database.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state=state, error=error, finished=utcnow()))


def fail_scan(services, scan_id: int, message: str) -> None:
    with services.database.session() as session:
        session.execute(update(Scan).where(Scan.id == scan_id).values(
            error=True, error_message=message, status_message=message, complete=False))


def recover(services, stale_after: timedelta = timedelta(minutes=2)) -> None:
    """Jobs left running by a process that is gone go back to the queue, or fail after MAX_ATTEMPTS.

    A worker on this host is gone when its pid is no longer alive (a restart is noticed at once); a
    worker elsewhere is gone when its heartbeat is older than `stale_after`.
    """
    now = datetime.now(timezone.utc)
    with services.database.session() as session:
        for job in session.scalars(select(Job).where(Job.state == "running").with_for_update()):
            if job.worker == WORKER_ID or not _worker_gone(job, now - stale_after):
                continue
            if job.attempts >= MAX_ATTEMPTS:
                job.state, job.error, job.finished = "failed", "interrupted too many times", utcnow()
                session.execute(update(Scan).where(Scan.id == job.scan_id).values(
                    error=True, error_message=f"{job.kind.replace('_', ' ')} was interrupted "
                    f"{job.attempts} times; upload the report again"))
            else:
                job.state, job.worker = "queued", None
                log.warning("job %s (%s) of scan %s was interrupted; queued again", job.id, job.kind, job.scan_id)


def _worker_gone(job: Job, stale_before: datetime) -> bool:
    host, _, rest = (job.worker or "").partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit():
        return not _pid_alive(int(pid))
    return job.heartbeat is None or job.heartbeat < stale_before


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobRunner:
    """Runs queued jobs on a few threads of this process (the embedded default)."""

    def __init__(self, services, threads: int = 1, poll_seconds: float = 0.5):
        self.services = services
        self.threads = threads
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        recover(self.services)
        for number in range(self.threads):
            worker = threading.Thread(target=self._loop, name=f"job-runner-{number}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def wake(self) -> None:
        """Look for work now rather than at the next poll (called after a job was enqueued)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for worker in self._workers:
            worker.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = claim_next(self.services)
                if job_id is not None:
                    run_job(self.services, job_id)
                    continue
            except Exception:
                log.exception("job runner: could not claim or run a job")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
