"""Comparing two scans of one instance, by hand-built pair of reports with known differences."""

import pytest
from helpers import valid_xml
from reports import file, package, report_bytes
from scanning import JSON, create_instance, ingest

XML = {"Accept": "application/xml", "Content-Type": "application/xml"}

BEFORE_PACKAGES = [package("bash", "5.2-1"), package("coreutils", "9.1-1"), package("libfoo", "1.0-1"),
                   package("libc6", "2.36-9", arch="i386")]
AFTER_PACKAGES = [package("bash", "5.2-2"), package("coreutils", "9.1-1"), package("newpkg", "0.3-1"),
                  package("libc6", "2.36-9", arch="i386")]
BEFORE_FILES = [
    file("/usr/bin/bash", packages=["bash"], sha256="11" * 32),
    file("/etc/hosts", change="modified", packages=["netbase"], sha256="22" * 32),
    file("/opt/app/run.sh", change="added", sha256="33" * 32),
    file("/opt/app/data/x.txt", change="added", sha256="44" * 32),
    file("/opt/app/mode.conf", change="added", sha256="55" * 32, mode="0644"),
    file("/var/lib/gone", change="deleted", packages=["bash"], size=None),
]
AFTER_FILES = [
    file("/usr/bin/bash", packages=["bash"], sha256="12" * 32, size=11),  # upgraded: new content
    file("/etc/hosts", change="modified", packages=["netbase"], sha256="22" * 32),  # same as before
    file("/opt/app/run.sh", change="added", sha256="34" * 32),  # edited
    file("/opt/app/new.txt", change="added", sha256="66" * 32),  # new
    file("/opt/app/mode.conf", change="added", sha256="55" * 32, mode="0600"),  # chmod
    file("/var/lib/gone", change="deleted", packages=["bash"], size=None),  # absent in both
]
EXPECTED_PACKAGES = {("added", "newpkg", "0.3-1"), ("removed", "libfoo", "1.0-1"), ("changed", "bash", "5.2-2")}
EXPECTED_FILES = {("/usr/bin/bash", "modified"), ("/opt/app/run.sh", "modified"), ("/opt/app/new.txt", "added"),
                  ("/opt/app/mode.conf", "modified"), ("/opt/app/data/x.txt", "deleted")}


@pytest.fixture
def pair(server, alice):
    with server.client(alice) as client:
        siid = create_instance(client, alice.login, "web")
        before, _ = ingest(client, alice.login, siid, report_bytes(BEFORE_PACKAGES, BEFORE_FILES))
        after, _ = ingest(client, alice.login, siid, report_bytes(AFTER_PACKAGES, AFTER_FILES))
    return alice, before, after


def test_scan_compare_lists_exactly_the_differences(server, pair):
    alice, before, after = pair
    body = {"scanAUri": before.lstrip("/"), "scanBUri": after.lstrip("/")}
    with server.client(alice) as client:
        response = client.post(after, json=body, headers=JSON)
        assert response.status_code == 201, response.text
        result = response.json()
        as_xml = client.post(after, headers=XML, content=(
            '<ns0:scanCompare xmlns:ns0="http://www.usharesoft.com/uforge">'
            f"<scanAUri>{body['scanAUri']}</scanAUri><scanBUri>{body['scanBUri']}</scanBUri></ns0:scanCompare>"))
    assert {(p["comparison"], p["name"], p["version"]) for p in result["packages"]} == EXPECTED_PACKAGES
    changed = next(p for p in result["packages"] if p["name"] == "bash")
    assert changed["previousVersion"] == "bash-5.2-1.amd64"
    assert {(f["fullPath"], f["change"]) for f in result["extraFiles"]} == EXPECTED_FILES
    element = valid_xml(as_xml, "scanCompare")
    assert len(element.findall("extraFiles/extraFile")) == len(EXPECTED_FILES)


def test_compare_with_on_lists(server, pair):
    alice, before, after = pair
    before_id = before.rsplit("/", 1)[1]
    with server.client(alice) as client:
        packages = client.get(f"{after}/packages", params={"compareWith": before.lstrip("/")}, headers=JSON).json()
        files = client.get(f"{after}/files", params={"compareWith": before_id, "changeType": "all"},
                           headers=JSON).json()
        paged = client.get(f"{after}/files", params={"compareWith": before_id, "changeType": "all", "index": 3,
                                                    "max": 10}, headers=JSON).json()
    assert {(p["comparison"], p["name"], p["version"]) for p in packages["scannedPackages"]} == EXPECTED_PACKAGES
    assert {(f["fullPath"], f["change"]) for f in files["scannedFiles"]} == EXPECTED_FILES
    assert files["total"] == paged["total"] == 5
    assert [f["fullPath"] for f in paged["scannedFiles"]] == [f["fullPath"] for f in files["scannedFiles"]][3:]


def test_delta_compares_with_the_previous_scan_of_the_instance(server, pair):
    alice, before, after = pair
    with server.client(alice) as client:
        delta = client.get(f"{after}/packages", params={"delta": "true"}, headers=JSON).json()
        first = client.get(f"{before}/packages", params={"delta": "true"}, headers=JSON).json()
    assert {(p["comparison"], p["name"]) for p in delta["scannedPackages"]} == {
        (how, name) for how, name, _ in EXPECTED_PACKAGES}
    assert first["total"] == 4  # the first scan has no previous one: everything is listed


def test_compare_refuses_another_users_scan(server, pair, bob):
    alice, before, after = pair
    with server.client(bob) as client:
        siid = create_instance(client, bob.login, "mine")
        mine, _ = ingest(client, bob.login, siid, report_bytes(BEFORE_PACKAGES, BEFORE_FILES))
        response = client.get(f"{mine}/packages", params={"compareWith": before.lstrip("/")}, headers=JSON)
    assert response.status_code == 404


def test_another_users_scan_id_answers_like_a_missing_one(server, pair, bob):
    """compareWith=<id> of alice's scan tells bob nothing: the same answer as an id that does not exist."""
    alice, before, after = pair
    theirs = int(before.rsplit("/", 1)[1])
    with server.client(bob) as client:
        siid = create_instance(client, bob.login, "mine")
        mine, _ = ingest(client, bob.login, siid, report_bytes(BEFORE_PACKAGES, BEFORE_FILES))
        answers = [client.get(f"{mine}/files", params={"compareWith": str(scan_id)}, headers=JSON)
                   for scan_id in (theirs, 10 ** 9)]
    assert [answer.status_code for answer in answers] == [404, 404]
    messages = [answer.json()["localizedErrorMsg"]["message"] for answer in answers]
    assert messages == [f"no scan {theirs}", f"no scan {10 ** 9}"]
