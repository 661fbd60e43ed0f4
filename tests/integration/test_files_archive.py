"""`GET …/files` asking for an archive: a tar.gz of the chosen files, cut out of the checked overlay."""

import hashlib
import io
import os
import tarfile
import zlib

from overlays import JSON, new_scan, overlay_archive
from reports import file, report_bytes
from scanning import upload_report, wait_for_scan

CONF = b"listen 80\n" * 300
TOOL = os.urandom(3 * 1024 * 1024 + 17)  # several read blocks, not a multiple of 512
NOTES = b"new notes\n"
ARCHIVE = {"Accept": "application/gzip"}


def report_of(members: dict[str, tuple[str, bytes]]) -> bytes:
    """A report whose files are `path -> (change, content)`, plus one unchanged file not in the overlay."""
    files = [file("/" + path, change=change, size=len(content), sha256=hashlib.sha256(content).hexdigest())
             for path, (change, content) in members.items()]
    return report_bytes(overlay=True, files=files + [file("/etc/hostname", size=2)])


def scan_with_overlay(client, scan_url: str, members: dict[str, tuple[str, bytes]]) -> str:
    archive = overlay_archive({path: content for path, (_, content) in members.items()})
    overlay = client.post(scan_url + "/overlay", params={"crc": zlib.crc32(archive)}, content=archive,
                          headers=JSON)
    assert overlay.status_code == 201, overlay.text
    done = wait_for_scan(client, scan_url, done=lambda s: s["status"]["complete"] or s["error"])
    assert done["status"]["complete"], done
    return scan_url


def first_scan(server, account, members):
    scan = new_scan(server, account, report_of(members))
    return scan.client, scan_with_overlay(scan.client, scan.url.removesuffix("/overlay"), members)


def next_scan(client, previous_url: str, members) -> str:
    login, siid = previous_url.split("/")[2], int(previous_url.split("/")[4])
    return scan_with_overlay(client, upload_report(client, login, siid, report_of(members)), members)


def members_of(response) -> dict[str, bytes]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        return {member.name: archive.extractfile(member).read() for member in archive if member.isfile()}


FIRST = {"etc/app.conf": ("modified", CONF), "usr/local/bin/tool": ("added", TOOL)}


def test_archive_holds_the_changed_files_byte_exact(server, alice):
    client, url = first_scan(server, alice, FIRST)
    response = client.get(url + "/files", headers=ARCHIVE)
    assert members_of(response) == {"etc/app.conf": CONF, "usr/local/bin/tool": TOOL}
    assert "attachment" in response.headers["content-disposition"]
    client.close()


def test_archive_takes_the_listing_filters(server, alice):
    client, url = first_scan(server, alice, FIRST)
    assert members_of(client.get(url + "/files", params={"dir": "/etc"}, headers=ARCHIVE)) == {
        "etc/app.conf": CONF}
    assert members_of(client.get(url + "/files", params={"changeType": "added"}, headers=ARCHIVE)) == {
        "usr/local/bin/tool": TOOL}
    client.close()


def test_archive_compared_with_an_earlier_scan_holds_only_what_changed_since(server, alice):
    client, first = first_scan(server, alice, FIRST)
    changed_tool = TOOL[:-1] + b"!"
    second = next_scan(client, first, {"etc/app.conf": ("modified", CONF),
                                       "usr/local/bin/tool": ("added", changed_tool),
                                       "srv/notes": ("added", NOTES)})
    response = client.get(second + "/files", params={"compareWith": first.lstrip("/")}, headers=ARCHIVE)
    assert members_of(response) == {"usr/local/bin/tool": changed_tool, "srv/notes": NOTES}
    client.close()


def test_listing_is_still_what_other_accept_types_get(server, alice):
    client, url = first_scan(server, alice, FIRST)
    listing = client.get(url + "/files", headers=JSON).json()
    assert sorted(item["name"] for item in listing["scannedFiles"]) == ["app.conf", "tool"]
    client.close()


def test_scan_without_overlay_has_no_archive(server, alice):
    scan = new_scan(server, alice, report_bytes(files=[file("/srv/a", change="added")]))
    url = scan.url.removesuffix("/overlay")
    wait_for_scan(scan.client, url, done=lambda s: s["status"]["complete"] or s["error"])
    response = scan.client.get(url + "/files", headers=ARCHIVE)
    assert response.status_code == 404 and "no checked overlay" in response.text
    scan.client.close()


def test_another_user_gets_no_archive(server, alice, bob):
    client, url = first_scan(server, alice, FIRST)
    with server.client(bob) as intruder:
        response = intruder.get(url.replace("/users/alice/", f"/users/{bob.login}/"), headers=ARCHIVE)
        assert response.status_code == 404
        assert intruder.get(url + "/files", headers=ARCHIVE).status_code == 404
    client.close()
