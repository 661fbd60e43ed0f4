"""The scan life cycle (api.md): after each step sets its own flag, `advance` decides what comes next.

Report ingestion and overlay upload run concurrently and each needs to know whether the other is done.
Each step sets its flag with the scan row locked (an UPDATE or SELECT … FOR UPDATE, which takes the write
lock on SQLite and the row lock on PostgreSQL) and only then reads the other flags, so of two concurrent
steps the second always sees the first.
"""

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .db.models import Job, Scan
from .jobs import enqueue

VERIFY_OVERLAY = "verify_overlay"


def report_ingested(session: Session, scan_id: int, **values) -> Scan:
    """The report is indexed (`values`: its counters); returns the scan as it now stands."""
    return _set_and_advance(session, scan_id, validated=True, **values)


def overlay_received(session: Session, scan_id: int, **values) -> Scan:
    """The overlay is complete (`values`: where it is stored); returns the scan as it now stands."""
    return _set_and_advance(session, scan_id, binaries_received=True, binaries_extracted=False, **values)


def _set_and_advance(session: Session, scan_id: int, **values) -> Scan:
    # The UPDATE locks the row first; the scan is read only then, so a Scan loaded earlier in the
    # transaction (before the other step committed) cannot hide the other step's flag.
    session.execute(update(Scan).where(Scan.id == scan_id).values(**values))
    scan = session.scalar(select(Scan).where(Scan.id == scan_id).execution_options(populate_existing=True))
    advance(session, scan)
    return scan


def advance(session: Session, scan: Scan) -> None:
    """Queue the overlay check once both the report and the overlay are in; complete when all is done."""
    if scan.error or scan.cancelled:
        return
    if scan.validated and scan.binaries_received and not scan.binaries_extracted:
        if not _verify_queued(session, scan.id):
            enqueue(session, VERIFY_OVERLAY, scan.id)
        scan.percentage, scan.status_message = 80, "overlay received; checking it against the report"
    elif scan.validated and (scan.binaries_extracted or not scan.overlay_expected):
        scan.complete, scan.percentage, scan.status_message = True, 100, "scan complete"
    elif scan.validated:
        scan.percentage, scan.status_message = 50, "report ingested; waiting for the overlay"
    elif scan.binaries_received:
        scan.status_message = "overlay received; waiting for the report to be ingested"
    session.flush()


def _verify_queued(session: Session, scan_id: int) -> bool:
    return session.scalar(select(Job.id).where(Job.scan_id == scan_id, Job.kind == VERIFY_OVERLAY,
                                                Job.state == "queued")) is not None
