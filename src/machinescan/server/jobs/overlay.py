"""The `verify_overlay` job: a received overlay is read once and compared with the report's files.

Queued by the life cycle (`..lifecycle.advance`) once both the report is ingested (which fills the
`ScannedFile` rows) and the overlay is received, whichever comes last.
"""

import base64

from sqlalchemy import select, update

from ..db.models import Scan, ScannedFile
from ..overlay_check import ExpectedMembers, verify_overlay
from ..lifecycle import VERIFY_OVERLAY, advance
from . import JobContext, handler


def archive_name(path: str, path_b64: str | None) -> str:
    """The member name our agent gives a scanned path (no leading '/'), as tarfile decodes it."""
    if path_b64 is not None:
        path = base64.b64decode(path_b64).decode("utf-8", "surrogateescape")
    return path.lstrip("/")


def expected_members(session, scan_id: int) -> ExpectedMembers:
    files = session.execute(select(ScannedFile.path, ScannedFile.path_b64, ScannedFile.size, ScannedFile.sha256)
                            .where(ScannedFile.scan_id == scan_id, ScannedFile.in_overlay,
                                   ScannedFile.kind == "file"))
    return {archive_name(path, path_b64): (size, sha256) for path, path_b64, size, sha256 in files}


@handler(VERIFY_OVERLAY)
def verify_overlay_job(context: JobContext) -> None:
    services = context.services
    with services.database.session() as session:
        scan = session.get(Scan, context.scan_id)
        if scan is None or scan.overlay_key is None:
            return  # deleted meanwhile: nothing to check
        key, compare = scan.overlay_key, bool(scan.validated)
        expected = expected_members(session, scan.id) if compare else None
    check = verify_overlay(services.blobs, key, expected)
    with services.database.session() as session:
        scan = session.get(Scan, context.scan_id, with_for_update=True)
        if scan is None or scan.overlay_key != key:
            return  # replaced or deleted while it was read
        if not check.ok:
            scan.error, scan.error_message = True, check.message() + "; run the scan again to send a new overlay"
            scan.status_message = scan.error_message
            return
        if compare:
            session.execute(update(ScannedFile).where(ScannedFile.scan_id == scan.id, ScannedFile.in_overlay)
                            .values(uploaded=True).execution_options(synchronize_session=False))
            scan.binaries_extracted = True
            advance(session, scan)
