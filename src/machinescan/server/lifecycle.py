"""The scan life cycle (api.md): each step sets its own flag, then decides what comes next.

Report ingestion and overlay upload run concurrently and each needs to know whether the other is done.
Each step first UPDATEs the scan row (which takes its write lock on PostgreSQL and SQLite alike) and only
then reads the other flags, so of two concurrent steps the second always sees the first.
"""

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .db.models import Job, Scan
from .jobs import enqueue

VERIFY_OVERLAY = "verify_overlay"


def report_ingested(session: Session, scan_id: int, **values) -> Scan:
    return _advance(session, scan_id, validated=True, **values)


def overlay_received(session: Session, scan_id: int, **values) -> Scan:
    return _advance(session, scan_id, binaries_received=True, **values)


def overlay_indexed(session: Session, scan_id: int, **values) -> Scan:
    return _advance(session, scan_id, binaries_extracted=True, **values)


def _advance(session: Session, scan_id: int, **values) -> Scan:
    session.execute(update(Scan).where(Scan.id == scan_id).values(**values))
    scan = session.scalar(select(Scan).where(Scan.id == scan_id).execution_options(populate_existing=True))
    if scan.error or scan.cancelled:
        return scan
    if scan.validated and scan.binaries_received and not scan.binaries_extracted and not _verify_queued(
            session, scan_id):
        enqueue(session, VERIFY_OVERLAY, scan_id)
        scan.percentage, scan.status_message = 80, "overlay received; checking it against the report"
    elif scan.validated and (scan.binaries_extracted or not scan.overlay_expected):
        scan.complete, scan.percentage, scan.status_message = True, 100, "scan complete"
    elif scan.validated:
        scan.percentage, scan.status_message = 50, "report ingested; waiting for the overlay"
    session.flush()
    return scan


def _verify_queued(session: Session, scan_id: int) -> bool:
    return session.scalar(select(Job.id).where(Job.scan_id == scan_id, Job.kind == VERIFY_OVERLAY,
                                                Job.state.in_(("queued", "running")))) is not None
