"""The agent's upload client against a real server: report, then overlay in chunks, resumed and adapted."""

import hashlib
import os

import httpx
import pytest
from scanning import wait_for_scan
from servers import start_server

from machinescan.agent.scan import ScanOptions, run_scan
from machinescan.agent.upload import ApiClient, Credentials, OverlayUpload, UploadError, instance_id, probe, \
    upload_report
from machinescan.server.auth import MIGRATION_ACCESS, add_user
from machinescan.server.db.engine import Database


def scanned_root(tmp_path, size: int = 3 * 1024 * 1024):
    """A small root with added files (incompressible, so the overlay has a few chunks) scanned to --output."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\nNAME="Debian GNU/Linux"\n')
    (root / "srv" / "app").mkdir(parents=True)
    (root / "srv" / "app" / "blob.bin").write_bytes(os.urandom(size))
    (root / "srv" / "app" / "config.ini").write_text("[main]\nanswer = 42\n")
    output = tmp_path / "out"
    run_scan(ScanOptions(root=str(root), output_dir=str(output), overlay=True))
    return output / "report.jsonl.gz", output / "overlay.tar.gz"


def is_done(scan: dict) -> bool:
    return scan["status"]["complete"] or scan["error"]


def send_scan(client: ApiClient, user: str, report, overlay, chunk_size: int, progress=None):
    siid = instance_id(client, user, "box", {"id": "debian", "version": "12", "arch": "amd64"}, overlay=True)
    sid = upload_report(client, user, siid, str(report))
    upload = OverlayUpload(client, user, siid, sid, chunk_size=chunk_size, progress=progress,
                           sleep=lambda seconds: None)
    return f"/users/{user}/scannedinstances/{siid}/scans/{sid}", upload


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_report_and_overlay_upload_to_a_complete_scan(server, alice, tmp_path):
    report, overlay = scanned_root(tmp_path)
    client = ApiClient(server.url, Credentials(alice.login, alice.password))
    assert probe(client, alice.login) == "3.8.13"
    scan_uri, upload = send_scan(client, alice.login, report, overlay, chunk_size=512 * 1024)
    upload.upload(str(overlay), sha256_of(overlay))
    with server.client(alice) as http:
        final = wait_for_scan(http, scan_uri, done=is_done)
        downloaded = http.get(scan_uri + "/overlay").content
    assert final["error"] is False, final.get("errorMsg")
    assert (final["binariesReceived"], final["binariesExtracted"], final["status"]["complete"]) == (True, True, True)
    assert hashlib.sha256(downloaded).digest() == hashlib.sha256(overlay.read_bytes()).digest()


class Interrupted(Exception):
    pass


def test_an_interrupted_upload_resumes_from_the_server_offset(server, alice, tmp_path):
    report, overlay = scanned_root(tmp_path)
    client = ApiClient(server.url, Credentials(alice.login, alice.password))
    chunk = 256 * 1024
    sent = []

    def stop_after_three(offset, total):
        sent.append(offset)
        if offset >= 3 * chunk:
            raise Interrupted()

    scan_uri, upload = send_scan(client, alice.login, report, overlay, chunk, stop_after_three)
    with pytest.raises(Interrupted):
        upload.upload(str(overlay), sha256_of(overlay))
    assert upload.received_bytes() == 3 * chunk
    sent.clear()
    upload.progress = lambda offset, total: sent.append(offset)
    upload.upload(str(overlay), sha256_of(overlay))
    assert sent[0] == 4 * chunk  # went on from the server's offset, not from 0
    with server.client(alice) as http:
        final = wait_for_scan(http, scan_uri, done=is_done)
        assert http.get(scan_uri + "/overlay").content == overlay.read_bytes()
    assert final["status"]["complete"] is True


def test_the_chunk_is_halved_when_the_server_says_413(tmp_path, private_database_url):
    report, overlay = scanned_root(tmp_path, size=2 * 1024 * 1024)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    process = start_server(data_dir, private_database_url, extra_env={"MACHINESCAN_MAX_CHUNK_SIZE": "300000"})
    database = Database(private_database_url)
    try:
        with database.session() as session:
            add_user(session, "dana", "pw", entitlements=(MIGRATION_ACCESS,))
        url = f"http://127.0.0.1:{process.port}/api"
        client = ApiClient(url, Credentials("dana", "pw"))
        scan_uri, upload = send_scan(client, "dana", report, overlay, chunk_size=1024 * 1024)
        upload.upload(str(overlay), sha256_of(overlay))
        assert upload.chunk_size == 256 * 1024  # 1 MiB, 512 KiB, then 256 KiB fits under 300000 bytes
        with httpx.Client(base_url=url, auth=("dana", "pw"), headers={"Accept": "application/json"}) as http:
            final = wait_for_scan(http, scan_uri, done=is_done)
            assert http.get(scan_uri + "/overlay").content == overlay.read_bytes()
        assert final["status"]["complete"] is True
    finally:
        process.terminate()
        process.wait(timeout=10)
        database.engine.dispose()


def test_api_key_signatures_work_for_the_agent(server, alice):
    public, secret = alice.api_key()
    client = ApiClient(server.url, Credentials(alice.login, api_key=public, secret=secret))
    siid = instance_id(client, alice.login, "keyed", {"id": "rocky", "arch": "aarch64", "version": "9"}, False)
    assert instance_id(client, alice.login, "keyed", {}, False) == siid
    with server.client(alice) as http:
        instance = http.get(f"/users/{alice.login}/scannedinstances/{siid}",
                            headers={"Accept": "application/json"}).json()
    assert (instance["distribution"]["detectedName"], instance["distribution"]["detectedArch"]) == (
        "rocky", "aarch64")


def test_wrong_credentials_give_a_clear_error(server, alice):
    client = ApiClient(server.url, Credentials(alice.login, "wrong"))
    with pytest.raises(UploadError, match="401"):
        probe(client, alice.login)
