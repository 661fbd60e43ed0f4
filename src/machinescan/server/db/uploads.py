"""Queries of the overlay upload: the row lock that serialises requests on one upload, chunks, idle uploads."""

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .models import OverlayChunk, OverlayUpload, Scan, utcnow


def lock_upload(session: Session, scan_id: int) -> OverlayUpload | None:
    """The upload of a scan, locked until the transaction ends; call it first in the transaction.

    PostgreSQL locks the row (`SELECT … FOR UPDATE`). SQLite has no row locks and starts transactions
    deferred, so two processes could both read and then both append; writing first (even to no row)
    takes SQLite's database write lock at once, which serialises them like `BEGIN IMMEDIATE`.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(OverlayUpload).where(OverlayUpload.scan_id == scan_id)
                        .values(lock_version=OverlayUpload.lock_version + 1)
                        .execution_options(synchronize_session=False))
    return session.scalar(select(OverlayUpload).where(OverlayUpload.scan_id == scan_id)
                          .with_for_update().execution_options(populate_existing=True))


def lock_or_create_upload(session: Session, scan_id: int) -> OverlayUpload | None:
    """The locked upload of a scan, created empty when there is none; None when the scan is gone."""
    upload = lock_upload(session, scan_id)
    if upload is not None:
        return upload
    # Lock the scan so that two first chunks cannot both create the row (PostgreSQL).
    if session.scalar(select(Scan.id).where(Scan.id == scan_id).with_for_update()) is None:
        return None
    upload = lock_upload(session, scan_id)
    if upload is None:
        upload = OverlayUpload(scan_id=scan_id, state="partial", received_bytes=0, lock_version=0,
                               created=utcnow(), last_activity=utcnow())
        session.add(upload)
        session.flush()
    return upload


def find_upload(session: Session, scan_id: int) -> OverlayUpload | None:
    return session.scalar(select(OverlayUpload).where(OverlayUpload.scan_id == scan_id))


def recorded_crc(session: Session, upload_id: int, first: int, last: int) -> int | None:
    """The CRC-32 of an acknowledged chunk with exactly this range, None when no chunk had it."""
    return session.scalar(select(OverlayChunk.crc32).where(
        OverlayChunk.upload_id == upload_id, OverlayChunk.first_byte == first, OverlayChunk.last_byte == last
    ).limit(1))


def record_chunk(session: Session, upload_id: int, first: int, last: int, crc32: int) -> None:
    session.add(OverlayChunk(upload_id=upload_id, first_byte=first, last_byte=last, crc32=crc32))


def forget_chunks(session: Session, upload_id: int) -> None:
    session.execute(delete(OverlayChunk).where(OverlayChunk.upload_id == upload_id))


def delete_upload(session: Session, upload: OverlayUpload) -> None:
    forget_chunks(session, upload.id)
    session.execute(delete(OverlayUpload).where(OverlayUpload.id == upload.id))


def idle_partial_uploads(session: Session, idle_since: datetime) -> list[int]:
    """The scans whose partial upload saw no acknowledged chunk since `idle_since`."""
    return list(session.scalars(select(OverlayUpload.scan_id).where(
        OverlayUpload.state == "partial", OverlayUpload.last_activity < idle_since)))
