"""After an overlay completes, the verify_overlay job compares it with the report's files."""

import hashlib
import zlib

from overlays import JSON, new_scan, overlay_archive
from reports import file, report_bytes
from scanning import wait_for_scan
from sqlalchemy import select

from machinescan.server.db.models import ScannedFile

CONF = b"listen 80\n" * 300
TOOL = bytes(range(256)) * 64


def report_with_overlay_files() -> bytes:
    return report_bytes(overlay=True, files=[
        file("/etc/app.conf", change="modified", size=len(CONF), sha256=hashlib.sha256(CONF).hexdigest()),
        file("/usr/local/bin/tool", change="added", size=len(TOOL), sha256=hashlib.sha256(TOOL).hexdigest()),
        file("/etc/hostname", change="unchanged", size=2),
    ])


def test_matching_overlay_is_extracted_and_files_marked_uploaded(server, alice):
    scan = new_scan(server, alice, report_with_overlay_files())
    scan_url = scan.url.removesuffix("/overlay")
    wait_for_scan(scan.client, scan_url, done=lambda s: s["validated"])
    archive = overlay_archive({"etc/app.conf": CONF, "usr/local/bin/tool": TOOL})
    response = scan.client.post(scan.url, params={"crc": zlib.crc32(archive)}, content=archive, headers=JSON)
    assert response.status_code == 201
    done = wait_for_scan(scan.client, scan_url, done=lambda s: s["binariesExtracted"] or s["error"])
    assert done["binariesExtracted"] is True and done["error"] is False, done
    with server.database.session() as session:
        uploaded = dict(session.execute(select(ScannedFile.path, ScannedFile.uploaded)
                                        .where(ScannedFile.scan_id == scan.scan_id)).all())
    assert uploaded == {"/etc/app.conf": True, "/usr/local/bin/tool": True, "/etc/hostname": False}
    scan.client.close()


def test_overlay_that_differs_from_the_report_errors_the_scan(server, alice):
    scan = new_scan(server, alice, report_with_overlay_files())
    scan_url = scan.url.removesuffix("/overlay")
    wait_for_scan(scan.client, scan_url, done=lambda s: s["validated"])
    archive = overlay_archive({"etc/app.conf": b"tampered\n"})
    response = scan.client.post(scan.url, params={"crc": zlib.crc32(archive)}, content=archive, headers=JSON)
    assert response.status_code == 201
    done = wait_for_scan(scan.client, scan_url, done=lambda s: s["error"] or s["binariesExtracted"])
    assert done["error"] is True and done["binariesExtracted"] is False
    assert "'etc/app.conf' has 9 bytes in the archive" in done["errorMsg"]
    assert "'usr/local/bin/tool' is in the report but not in the archive" in done["errorMsg"]
    scan.client.close()


def test_an_archive_that_is_no_tar_errors_the_scan(server, alice):
    scan = new_scan(server, alice, report_with_overlay_files())
    body = b"this is not a tar archive" * 100
    assert scan.client.post(scan.url, params={"crc": zlib.crc32(body)}, content=body,
                            headers=JSON).status_code == 201
    done = wait_for_scan(scan.client, scan.url.removesuffix("/overlay"),
                         done=lambda s: s["error"] and "overlay" in (s["errorMsg"] or ""))
    assert "cannot be read" in done["errorMsg"]
    scan.client.close()
