"""Background jobs survive a restart: interrupted ingestion resumes, or fails cleanly after too many tries."""

import socket

import httpx
import pytest
from reports import file, package, report_bytes
from scanning import create_instance, upload_report, wait_for_scan
from servers import start_server
from sqlalchemy import select, update

from machinescan.server.auth import MIGRATION_ACCESS, add_user
from machinescan.server.db.engine import Database
from machinescan.server.db.models import Job, Scan

REPORT = report_bytes([package("bash", "5.2-1")], [file(f"/srv/f{i}", change="added") for i in range(50)])


def dead_pid() -> int:
    """A pid that no process has: above the kernel's pid_max."""
    return int(open("/proc/sys/kernel/pid_max").read()) + 1


@pytest.fixture
def stopped_scan(tmp_path, private_database_url):
    """A scan whose report is stored and whose ingestion job is queued, with no server running."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database = Database(private_database_url)
    process = start_server(data_dir, private_database_url, extra_env={"MACHINESCAN_JOB_THREADS": "0"})
    try:
        with database.session() as session:
            add_user(session, "carol", "pw", entitlements=(MIGRATION_ACCESS,))
        with httpx.Client(base_url=f"http://127.0.0.1:{process.port}/api", auth=("carol", "pw")) as client:
            siid = create_instance(client, "carol", "web")
            uri = upload_report(client, "carol", siid, REPORT)
    finally:
        process.terminate()
        process.wait(timeout=10)
    yield data_dir, database, uri
    database.engine.dispose()


def crash_while_running(database: Database, scan_id: int, attempts: int) -> None:
    """Leave the job as a killed server would: running, owned by a process that no longer exists."""
    with database.session() as session:
        session.execute(update(Job).where(Job.scan_id == scan_id).values(
            state="running", attempts=attempts, worker=f"{socket.gethostname()}:{dead_pid()}:gone"))


def test_an_interrupted_ingestion_resumes_after_restart(stopped_scan, private_database_url):
    data_dir, database, uri = stopped_scan
    scan_id = int(uri.rsplit("/", 1)[1])
    crash_while_running(database, scan_id, attempts=1)
    process = start_server(data_dir, private_database_url)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{process.port}/api", auth=("carol", "pw")) as client:
            scan = wait_for_scan(client, uri)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert (scan["validated"], scan["error"], scan["totalFilesAdded"]) == (True, False, 50)
    with database.session() as session:
        assert session.scalar(select(Job.state).where(Job.scan_id == scan_id)) == "done"


def test_an_ingestion_interrupted_too_often_fails_the_scan(stopped_scan, private_database_url):
    data_dir, database, uri = stopped_scan
    scan_id = int(uri.rsplit("/", 1)[1])
    crash_while_running(database, scan_id, attempts=3)
    process = start_server(data_dir, private_database_url)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{process.port}/api", auth=("carol", "pw")) as client:
            scan = wait_for_scan(client, uri)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert scan["error"] is True and "interrupted 3 times" in scan["errorMsg"]
    with database.session() as session:
        assert session.scalar(select(Scan.validated).where(Scan.id == scan_id)) is False




def test_an_overlay_received_before_the_report_is_ingested_is_checked_afterwards(tmp_path, private_database_url):
    """The overlay arrives while ingestion waits (no job thread); when ingestion runs, the check follows."""
    import hashlib
    import zlib

    from scanning import JSON

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database = Database(private_database_url)
    content = b"#!/bin/sh\necho hello\n"
    report = report_bytes([], [file("/srv/run.sh", change="added", size=len(content),
                                    sha256=hashlib.sha256(content).hexdigest())], overlay=True)
    from overlays import overlay_archive
    archive = overlay_archive({"srv/run.sh": content})
    process = start_server(data_dir, private_database_url, extra_env={"MACHINESCAN_JOB_THREADS": "0"})
    try:
        with database.session() as session:
            add_user(session, "erin", "pw", entitlements=(MIGRATION_ACCESS,))
        with httpx.Client(base_url=f"http://127.0.0.1:{process.port}/api", auth=("erin", "pw"),
                          headers=JSON) as client:
            uri = upload_report(client, "erin", create_instance(client, "erin", "web"), report)
            sent = client.post(f"{uri}/overlay", params={"crc": zlib.crc32(archive)}, content=archive)
            assert sent.status_code == 201, sent.text
            waiting = client.get(uri).json()
            assert (waiting["binariesReceived"], waiting["validated"]) == (True, False)
    finally:
        process.terminate()
        process.wait(timeout=10)
    process = start_server(data_dir, private_database_url)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{process.port}/api", auth=("erin", "pw"),
                          headers=JSON) as client:
            scan = wait_for_scan(client, uri, done=lambda s: s["status"]["complete"] or s["error"])
    finally:
        process.terminate()
        process.wait(timeout=10)
        database.engine.dispose()
    assert (scan["validated"], scan["binariesExtracted"], scan["status"]["complete"]) == (True, True, True)


def test_an_overlay_completed_while_the_report_is_ingested_is_still_checked(stopped_scan):
    """The two halves finish at once: the overlay's transaction read the scan before the ingestion
    committed. Whichever commits last must still see the other's flag and queue the overlay check."""
    from machinescan.server.lifecycle import VERIFY_OVERLAY, overlay_received, report_ingested

    _, database, uri = stopped_scan
    scan_id = int(uri.rsplit("/", 1)[1])
    with database.session() as overlay_side:
        early = overlay_side.get(Scan, scan_id)
        assert not early.validated  # read before the ingestion below commits
        with database.session() as ingestion_side:
            report_ingested(ingestion_side, scan_id, overlay_expected=True)
        scan = overlay_received(overlay_side, scan_id, overlay_key="scans/x/overlay-1", overlay_size=10,
                                overlay_sha256="0" * 64, overlay_name="overlay.tar.gz")
        assert scan.validated and scan.binaries_received
    with database.session() as session:
        kinds = session.scalars(select(Job.kind).where(Job.scan_id == scan_id)).all()
        assert VERIFY_OVERLAY in kinds
        assert session.get(Scan, scan_id).status_message == "overlay received; checking it against the report"
