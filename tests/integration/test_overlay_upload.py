"""The overlay upload protocol (shared/spec/upload-protocol.md) against a real server on loopback."""

import os
import socket
import threading
import time

import httpx
import pytest
from helpers import valid_xml, xml_value
from overlays import CHUNK, JSON, XML, ScanOverlay, crc, new_scan, sha256
from reports import file, report_bytes
from servers import RunningServer, start_server
from sqlalchemy import func, select

from machinescan.server.db.engine import Database
from machinescan.server.db.models import OverlayChunk, OverlayUpload, Scan


@pytest.fixture
def overlay(server, alice):
    scan = new_scan(server, alice)
    yield scan
    scan.client.close()


def stored_overlay(server: RunningServer, scan_id: int) -> bytes | None:
    with server.database.session() as session:
        key = session.get(Scan, scan_id).overlay_key
    return None if key is None else (server.data_dir / "blobs" / key).read_bytes()


def scan_blobs(server: RunningServer, scan_id: int) -> list:
    with server.database.session() as session:
        prefix = session.get(Scan, scan_id).blob_prefix
    return [path for path in server.blob_files() if path.as_posix().endswith("/" + prefix + path.name)]


def own_server(tmp_path, database_url: str, **env) -> RunningServer:
    """A server of the test's own (for kills, expiry and limits), on the suite's database."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    process = start_server(data_dir, database_url, extra_env={f"MACHINESCAN_{k.upper()}": str(v)
                                                              for k, v in env.items()})
    return RunningServer(f"http://127.0.0.1:{process.port}/api", data_dir, database_url, process,
                         Database(database_url), data_dir / "server.log")


def stop(server: RunningServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        server.process.wait(timeout=10)
    server.database.engine.dispose()


# ---------------------------------------------------------------- chunked upload


def test_chunks_in_order_reassemble_byte_exact(server, overlay):
    data = os.urandom(5 * CHUNK + 123)
    for first in range(0, len(data), CHUNK):
        piece = data[first:first + CHUNK]
        response = overlay.chunk(piece, first, len(data), headers=XML)
        assert response.status_code == 201, response.text
        scan = valid_xml(response, "scan")
        assert response.headers["Upload-Offset"] == str(first + len(piece))
        assert response.headers["Upload-Length"] == str(len(data))
        assert xml_value(scan, "status/bytesLoaded") == str(first + len(piece))
        assert xml_value(scan, "status/bytesTotal") == str(len(data))
    assert xml_value(scan, "binariesReceived") == "true"
    assert sha256(stored_overlay(server, overlay.scan_id)) == sha256(data)
    downloaded = overlay.download()
    assert downloaded.status_code == 200
    assert downloaded.content == data
    assert downloaded.headers["etag"] == f'"{sha256(data)}"'
    assert downloaded.headers["content-length"] == str(len(data))
    assert downloaded.headers["content-disposition"] == 'attachment; filename="overlay.tar.gz"'
    assert downloaded.headers["content-type"] != "application/xml"


def test_total_may_stay_unknown_until_the_last_chunk(server, overlay):
    data = os.urandom(3 * CHUNK)
    assert overlay.chunk(data[:CHUNK], 0, None).status_code == 201
    middle = overlay.chunk(data[CHUNK:2 * CHUNK], CHUNK, None)
    assert middle.status_code == 201 and "Upload-Length" not in middle.headers
    last = overlay.chunk(data[2 * CHUNK:], 2 * CHUNK, len(data), overlayName="web.tar.gz", sha256=sha256(data))
    assert last.status_code == 201, last.text
    assert last.json()["binariesReceived"] is True
    assert overlay.download().headers["content-disposition"] == 'attachment; filename="web.tar.gz"'
    assert overlay.download().content == data


def test_head_reports_the_offset_and_404_before_the_first_byte(overlay):
    assert overlay.client.head(overlay.url).status_code == 404
    data = os.urandom(2 * CHUNK)
    overlay.chunk(data[:CHUNK], 0, len(data))
    head = overlay.client.head(overlay.url)
    assert head.status_code == 200
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (str(CHUNK), str(len(data)))


def test_retried_chunk_is_accepted_once(server, overlay):
    data = os.urandom(3 * CHUNK)
    assert overlay.chunk(data[:CHUNK], 0, len(data)).status_code == 201
    assert overlay.chunk(data[CHUNK:2 * CHUNK], CHUNK, len(data)).status_code == 201
    retry = overlay.chunk(data[:CHUNK], 0, len(data))
    assert retry.status_code == 201
    assert retry.headers["Upload-Offset"] == str(2 * CHUNK)
    assert overlay.offset() == 2 * CHUNK
    assert overlay.chunk(data[2 * CHUNK:], 2 * CHUNK, len(data)).status_code == 201
    # the last chunk again, after completion (its answer was lost): still 201, nothing changes
    assert overlay.chunk(data[2 * CHUNK:], 2 * CHUNK, len(data)).status_code == 201
    assert stored_overlay(server, overlay.scan_id) == data


def test_gap_is_refused_with_the_offset(overlay):
    data = os.urandom(3 * CHUNK)
    overlay.chunk(data[:CHUNK], 0, len(data))
    response = overlay.chunk(data[2 * CHUNK:], 2 * CHUNK, len(data))
    assert response.status_code == 409
    assert response.headers["Upload-Offset"] == str(CHUNK)
    assert response.headers["Upload-Length"] == str(len(data))
    assert response.json()["statusCode"] == 409
    assert overlay.offset() == CHUNK


def test_overlap_with_other_bytes_is_refused(overlay):
    data = os.urandom(2 * CHUNK)
    overlay.chunk(data[:CHUNK], 0, len(data))
    other = bytes(byte ^ 1 for byte in data[:CHUNK])
    exact = overlay.chunk(other, 0, len(data))
    assert exact.status_code == 409 and exact.headers["Upload-Offset"] == str(CHUNK)
    straddling = overlay.chunk(data[CHUNK // 2:CHUNK + CHUNK // 2], CHUNK // 2, len(data))
    assert straddling.status_code == 409 and straddling.headers["Upload-Offset"] == str(CHUNK)
    assert overlay.offset() == CHUNK


def _short(o, d):
    return o.client.post(o.url, params={"crc": crc(d)}, content=d[:-10], headers={
        **JSON, "Content-Range": f"bytes {CHUNK}-{2 * CHUNK - 1}/{3 * CHUNK}"})


def _long(o, d):
    return o.client.post(o.url, params={"crc": crc(d)}, content=d + b"0123456789", headers={
        **JSON, "Content-Range": f"bytes {CHUNK}-{2 * CHUNK - 1}/{3 * CHUNK}"})


def _long_without_content_length(o, d):
    def body():
        yield d
        yield b"0123456789"
    return o.client.post(o.url, params={"crc": crc(d)}, content=body(), headers={
        **JSON, "Content-Range": f"bytes {CHUNK}-{2 * CHUNK - 1}/{3 * CHUNK}"})


BAD_CHUNKS = {
    "wrong crc": lambda o, d: o.chunk(d, CHUNK, 3 * CHUNK, checksum=(crc(d) + 1) % 2 ** 32),
    "missing crc": lambda o, d: o.client.post(o.url, content=d, headers={
        **JSON, "Content-Range": f"bytes {CHUNK}-{2 * CHUNK - 1}/{3 * CHUNK}"}),
    "short body": _short,
    "long body": _long,
    "long body, chunked encoding": _long_without_content_length,
    "malformed Content-Range": lambda o, d: o.chunk(d, CHUNK, 3 * CHUNK, headers={"Content-Range": "bytes=1-2"}),
    "range past the total": lambda o, d: o.chunk(d, CHUNK, CHUNK + 10),
    "another total": lambda o, d: o.chunk(d, CHUNK, 4 * CHUNK),
}


@pytest.mark.parametrize("case", BAD_CHUNKS)
def test_bad_chunk_is_refused_and_changes_nothing(server, overlay, case):
    data = os.urandom(3 * CHUNK)
    overlay.chunk(data[:CHUNK], 0, len(data))
    response = BAD_CHUNKS[case](overlay, data[CHUNK:2 * CHUNK])
    assert response.status_code == 400, response.text
    assert response.headers["Upload-Offset"] == str(CHUNK)
    assert response.json()["localizedErrorMsg"]["message"]
    assert overlay.offset() == CHUNK
    overlay.chunk(data[CHUNK:2 * CHUNK], CHUNK, len(data))
    assert overlay.chunk(data[2 * CHUNK:], 2 * CHUNK, len(data)).status_code == 201
    assert stored_overlay(server, overlay.scan_id) == data


def test_errors_are_uforge_errors_in_xml_too(overlay):
    data = os.urandom(CHUNK)
    response = overlay.client.post(overlay.url, params={"crc": 1}, content=data, headers={
        **XML, "Content-Range": f"bytes 0-{CHUNK - 1}/{CHUNK}"})
    assert response.status_code == 400
    assert response.headers["Upload-Offset"] == "0"
    valid_xml(response, "uforgeError")


def test_client_killed_mid_chunk_keeps_the_offset_and_resumes(server, alice, overlay):
    data = os.urandom(3 * CHUNK)
    overlay.chunk(data[:CHUNK], 0, len(data))
    piece = data[CHUNK:2 * CHUNK]
    host, port = server.url.removeprefix("http://").split("/")[0].split(":")
    credentials = httpx.BasicAuth(alice.login, alice.password)._auth_header
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall((f"POST /api{overlay.url}?crc={crc(piece)} HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: {credentials}\r\nContent-Type: application/octet-stream\r\n"
                     f"Content-Range: bytes {CHUNK}-{2 * CHUNK - 1}/{len(data)}\r\n"
                     f"Content-Length: {len(piece)}\r\n\r\n").encode() + piece[:len(piece) // 2])
        time.sleep(0.3)
    time.sleep(0.5)
    offset = overlay.offset()
    assert offset == CHUNK
    for first in range(offset, len(data), CHUNK):
        assert overlay.chunk(data[first:first + CHUNK], first, len(data)).status_code == 201
    assert stored_overlay(server, overlay.scan_id) == data


def test_concurrent_copies_of_one_chunk_are_stored_once(server, alice, overlay):
    data = os.urandom(4 * CHUNK)
    overlay.chunk(data[:CHUNK], 0, len(data))
    piece = data[CHUNK:2 * CHUNK]
    answers = []

    def send():
        with server.client(alice) as client:
            answers.append(ScanOverlay(client, overlay.url, overlay.scan_id).chunk(piece, CHUNK, len(data)))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [201] * 6
    assert overlay.offset() == 2 * CHUNK
    with server.database.session() as session:
        stored = session.scalar(select(func.count()).select_from(OverlayChunk).join(OverlayUpload).where(
            OverlayUpload.scan_id == overlay.scan_id, OverlayChunk.first_byte == CHUNK))
    assert stored == 1
    overlay.chunk(data[2 * CHUNK:3 * CHUNK], 2 * CHUNK, len(data))
    overlay.chunk(data[3 * CHUNK:], 3 * CHUNK, len(data))
    assert stored_overlay(server, overlay.scan_id) == data


def test_sha256_mismatch_errors_the_scan_and_keeps_nothing(server, overlay):
    data = os.urandom(2 * CHUNK)
    overlay.chunk(data[:CHUNK], 0, len(data))
    response = overlay.chunk(data[CHUNK:], CHUNK, len(data), sha256=sha256(b"something else"))
    assert response.status_code == 400
    assert response.headers["Upload-Offset"] == "0"
    assert "sha256" in response.json()["localizedErrorMsg"]["message"]
    scan = overlay.client.get(overlay.url.removesuffix("/overlay"), headers=JSON).json()
    assert scan["error"] is True and "sha256" in scan["errorMsg"]
    assert scan["binariesReceived"] is False
    assert overlay.download().status_code == 404
    assert overlay.client.head(overlay.url).status_code == 404
    assert stored_overlay(server, overlay.scan_id) is None
    assert [path.name for path in scan_blobs(server, overlay.scan_id)] == ["report.jsonl.gz"]


def test_delete_discards_a_partial_and_a_complete_overlay(server, overlay):
    data = os.urandom(2 * CHUNK)
    overlay.chunk(data[:CHUNK], 0, len(data))
    assert overlay.client.delete(overlay.url).status_code == 204
    assert overlay.client.head(overlay.url).status_code == 404
    overlay.upload(data)
    assert overlay.client.delete(overlay.url).status_code == 204
    assert overlay.download().status_code == 404
    assert stored_overlay(server, overlay.scan_id) is None
    assert overlay.client.delete(overlay.url).status_code == 404
    overlay.upload(data)  # and a new upload starts from byte 0
    assert stored_overlay(server, overlay.scan_id) == data


def test_complete_overlay_refuses_more_chunks(overlay):
    data = os.urandom(CHUNK)
    overlay.upload(data)
    response = overlay.chunk(data, CHUNK, 2 * CHUNK)
    assert response.status_code == 409
    assert response.headers["Upload-Offset"] == str(CHUNK)


def test_overlay_is_deleted_with_the_scan(server, overlay):
    overlay.upload(os.urandom(CHUNK))
    partial = new_scan(server, server.add_user())
    partial.chunk(os.urandom(CHUNK), 0, 2 * CHUNK)
    with server.database.session() as session:
        prefixes = [session.get(Scan, scan_id).blob_prefix for scan_id in (overlay.scan_id, partial.scan_id)]
    assert overlay.client.delete(overlay.url.removesuffix("/overlay")).status_code == 204
    assert partial.client.delete(partial.url.removesuffix("/overlay")).status_code == 204
    assert not [path for path in server.blob_files() if any(prefix in path.as_posix() for prefix in prefixes)]


# ---------------------------------------------------------------- whole upload


def test_whole_upload_replaces_the_overlay_only_when_its_crc_matches(server, overlay):
    first, second = os.urandom(3 * CHUNK + 1), os.urandom(2 * CHUNK)
    response = overlay.client.post(overlay.url, params={"crc": crc(first), "overlayName": "a.tar.gz"},
                                   content=first, headers=XML)
    assert response.status_code == 201, response.text
    assert xml_value(valid_xml(response, "scan"), "binariesReceived") == "true"
    assert response.headers["Upload-Offset"] == response.headers["Upload-Length"] == str(len(first))
    bad = overlay.client.post(overlay.url, params={"crc": crc(second) ^ 1, "overlayName": "b.tar.gz"},
                              content=second, headers=JSON)
    assert bad.status_code == 400
    assert overlay.download().content == first
    assert overlay.download().headers["content-disposition"] == 'attachment; filename="a.tar.gz"'
    good = overlay.client.post(overlay.url, params={"crc": crc(second), "overlayName": "b.tar.gz"},
                               content=second, headers=JSON)
    assert good.status_code == 201
    assert overlay.download().content == second
    assert stored_overlay(server, overlay.scan_id) == second
    assert not [path for path in server.blob_files() if path.read_bytes() == first]  # the replaced one is gone


# ---------------------------------------------------------------- download


def test_download_honours_range_and_if_none_match(overlay):
    data = os.urandom(3 * CHUNK + 7)
    overlay.upload(data)
    for header, start, end in (("bytes=10-99", 10, 100), ("bytes=100-", 100, len(data)),
                               ("bytes=-50", len(data) - 50, len(data)),
                               (f"bytes=5-{len(data) + 100}", 5, len(data))):
        part = overlay.download(Range=header)
        assert part.status_code == 206, header
        assert part.content == data[start:end], header
        assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{len(data)}"
        assert part.headers["content-length"] == str(end - start)
    assert overlay.download(Range=f"bytes={len(data)}-").status_code == 416
    etag = overlay.download().headers["etag"]
    assert overlay.download(**{"If-None-Match": etag}).status_code == 304
    assert overlay.download(**{"If-None-Match": '"other"'}).status_code == 200
    xml_client = overlay.client.get(overlay.url, headers={**XML, "If-None-Match": etag})
    assert xml_client.status_code == 200 and xml_client.content == data
    stale = overlay.download(Range="bytes=0-9", **{"If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == data


def test_download_is_404_while_incomplete(overlay):
    assert overlay.download().status_code == 404
    overlay.chunk(os.urandom(CHUNK), 0, 2 * CHUNK)
    assert overlay.download().status_code == 404


def test_another_users_overlay_does_not_exist(server, alice, bob, overlay):
    data = os.urandom(CHUNK)
    overlay.upload(data)
    with server.client(bob) as intruder:
        assert intruder.get(overlay.url, headers=JSON).status_code == 404
        assert intruder.head(overlay.url).status_code == 404
        assert intruder.delete(overlay.url).status_code == 404
        mine = new_scan(server, bob)
        own_url_with_alices_scan = mine.url.rsplit("/scans/", 1)[0] + f"/scans/{overlay.scan_id}/overlay"
        assert intruder.get(own_url_with_alices_scan, headers=JSON).status_code == 404
        response = intruder.post(overlay.url, params={"crc": crc(data)}, content=data,
                                 headers={**JSON, "Content-Range": f"bytes 0-{CHUNK - 1}/{CHUNK}"})
        assert response.status_code == 404
        mine.client.close()
    assert overlay.download().content == data


# ---------------------------------------------------------------- servers of their own


def test_server_killed_between_chunks_loses_nothing(tmp_path, database_url):
    own = own_server(tmp_path, database_url)
    try:
        account = own.add_user()
        scan = new_scan(own, account)
        data = os.urandom(4 * CHUNK)
        for first in (0, CHUNK):
            assert scan.chunk(data[first:first + CHUNK], first, len(data)).status_code == 201
        own.process.kill()
        own.process.wait(timeout=10)
        restarted = start_server(own.data_dir, database_url, port=own.process.port)
        own.process = restarted
        scan.client.close()
        scan.client = own.client(account)
        offset = scan.offset()
        assert offset == 2 * CHUNK
        for first in range(offset, len(data), CHUNK):
            assert scan.chunk(data[first:first + CHUNK], first, len(data), sha256=sha256(data)).status_code == 201
        assert scan.download().content == data
        scan.client.close()
    finally:
        stop(own)


def test_idle_upload_expires_and_answers_410(tmp_path, database_url):
    own = own_server(tmp_path, database_url, upload_expiry_seconds=1)
    try:
        scan = new_scan(own, own.add_user())
        data = os.urandom(2 * CHUNK)
        assert scan.chunk(data[:CHUNK], 0, len(data)).status_code == 201
        time.sleep(2.5)
        late = scan.chunk(data[CHUNK:], CHUNK, len(data))
        assert late.status_code == 410
        assert late.headers["Upload-Offset"] == "0"
        assert not [path for path in own.blob_files() if ".partial" in path.name]
        # Starting over from byte 0 works. One chunk: with a 1 s expiry, a second chunk on a busy machine
        # could arrive after the restarted upload expired again.
        assert scan.upload(data, chunk_size=len(data)).status_code == 201
        assert scan.download().content == data
        scan.client.close()
    finally:
        stop(own)


def test_chunk_over_the_limit_is_413(tmp_path, database_url):
    own = own_server(tmp_path, database_url, max_chunk_size=1000, max_overlay_size=5000)
    try:
        scan = new_scan(own, own.add_user())
        too_big = scan.chunk(os.urandom(1001), 0, 3000)
        assert too_big.status_code == 413
        assert too_big.json()["statusCode"] == 413
        assert scan.chunk(os.urandom(1000), 0, 6000).status_code == 413
        assert scan.chunk(os.urandom(1000), 0, 3000).status_code == 201
        whole = scan.client.post(scan.url, params={"crc": 0}, content=os.urandom(5001), headers=JSON)
        assert whole.status_code == 413
        scan.client.close()
    finally:
        stop(own)


def test_a_cancelled_scan_takes_no_overlay(server, alice):
    # A valid report that announces an overlay: the scan waits for it, so there is something to cancel.
    scan = new_scan(server, alice, report_bytes([], [file("/srv/a", change="added", in_overlay=True)],
                                                 overlay=True))
    data = os.urandom(2 * CHUNK)
    assert scan.chunk(data[:CHUNK], 0, len(data)).status_code == 201
    scan_uri = scan.url.removesuffix("/overlay")
    assert scan.client.delete(f"{scan_uri}/status", headers=JSON).json()["cancelled"] is True
    refused = scan.chunk(data[CHUNK:], CHUNK, len(data))
    assert refused.status_code == 409 and "cancelled" in refused.text
    assert refused.headers["Upload-Offset"] == str(CHUNK)
    whole = scan.client.post(scan.url, params={"crc": crc(data), "overlayName": "o.tar.gz"}, content=data,
                             headers={**JSON, "Content-Type": "application/octet-stream"})
    assert whole.status_code == 409
    assert scan.download().status_code == 404  # nothing was kept as the scan's overlay
    scan.client.close()
