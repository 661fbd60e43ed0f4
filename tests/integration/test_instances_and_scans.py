"""Scanned instances and scans: create, list with every query parameter, get, cancel, rename, delete."""

import zlib

import pytest
from reports import report_bytes
from sqlalchemy import func, select

from machinescan.server.db.models import Scan, ScannedInstance

JSON = {"Accept": "application/json"}


def create(client, login: str, name: str) -> int:
    response = client.post(f"/users/{login}/scannedinstances", json={"name": name}, headers=JSON)
    assert response.status_code == 201, response.text
    return response.json()["dbId"]


def upload(client, login: str, siid: int, body: bytes, crc: int | None = None, multipart: bool = False):
    params = {"crc": zlib.crc32(body) if crc is None else crc, "reportFileName": "report.jsonl.gz"}
    if multipart:
        return client.post(f"/users/{login}/scannedinstances/{siid}/scans", params=params, headers=JSON,
                           files={"file": ("report.jsonl.gz", body, "application/octet-stream")})
    return client.post(f"/users/{login}/scannedinstances/{siid}/scans", params=params, content=body,
                       headers={**JSON, "Content-Type": "application/xml"})


def names(response) -> list[str]:
    return [item["name"] for item in response.json()["scannedInstances"]]


def test_instance_list_filters_orders_and_pages(server, alice):
    with server.client(alice) as client:
        ids = {name: create(client, alice.login, name) for name in ("charlie", "alpha", "bravo")}
        base = f"/users/{alice.login}/scannedinstances"
        assert names(client.get(base, headers=JSON)) == ["charlie", "alpha", "bravo"]
        assert names(client.get(base, params={"orderby": "name"}, headers=JSON)) == ["alpha", "bravo", "charlie"]
        assert names(client.get(base, params={"orderby": "name", "asc": "False"}, headers=JSON)) == [
            "charlie", "bravo", "alpha"]
        paged = client.get(base, params={"orderby": "name", "index": 1, "max": 1}, headers=JSON).json()
        assert (paged["total"], [i["name"] for i in paged["scannedInstances"]]) == (3, ["bravo"])
        assert names(client.get(base, params={"name": "alpha"}, headers=JSON)) == ["alpha"]
        by_id = client.get(base, params={"id": f"{ids['alpha']},{ids['charlie']}"}, headers=JSON)
        assert sorted(names(by_id)) == ["alpha", "charlie"]
        assert client.get(f"{base}/{ids['bravo']}", headers=JSON).json()["name"] == "bravo"


def test_report_upload_creates_a_queued_scan_and_stores_the_bytes(server, alice):
    body = bytes(range(256)) * 4000
    with server.client(alice) as client:
        siid = create(client, alice.login, "web")
        raw = upload(client, alice.login, siid, body)
        multipart = upload(client, alice.login, siid, body, multipart=True)
    for response in (raw, multipart):
        assert response.status_code == 201, response.text
        scan = response.json()
        assert scan["scanned"] is True and scan["validated"] is False
        assert 0 <= scan["status"]["percentage"] <= 10
        with server.database.session() as session:
            row = session.get(Scan, scan["dbId"])
            stored = server.data_dir / "blobs" / row.report_blob
        assert stored.read_bytes() == body


@pytest.mark.parametrize("multipart", [False, True])
def test_report_with_a_wrong_crc_is_refused_and_nothing_is_kept(server, alice, multipart):
    with server.client(alice) as client:
        siid = create(client, alice.login, "web")
        blobs_before = server.blob_files()
        response = upload(client, alice.login, siid, b"report bytes", crc=12345, multipart=multipart)
        assert response.status_code == 400
        assert "CRC-32" in response.json()["localizedErrorMsg"]["message"]
        assert client.get(f"/users/{alice.login}/scannedinstances/{siid}/scans", headers=JSON).json()["total"] == 0
    assert server.blob_files() == blobs_before


def test_report_without_crc_is_refused(server, alice):
    with server.client(alice) as client:
        siid = create(client, alice.login, "web")
        response = client.post(f"/users/{alice.login}/scannedinstances/{siid}/scans", content=b"x", headers=JSON)
    assert response.status_code == 400
    assert "crc" in response.json()["localizedErrorMsg"]["message"]


def test_scan_list_orders_pages_searches_and_filters_ongoing(server, alice):
    waiting_for_overlay = report_bytes(overlay=True)
    with server.client(alice) as client:
        siid = create(client, alice.login, "web")
        sids = [upload(client, alice.login, siid, waiting_for_overlay).json()["dbId"] for i in range(3)]
        base = f"/users/{alice.login}/scannedinstances/{siid}/scans"
        listing = client.get(base, params={"descending": "true", "offset": 0, "count": 2}, headers=JSON).json()
        assert listing["total"] == 3
        assert [s["dbId"] for s in listing["scans"]] == [sids[2], sids[1]]
        assert [s["dbId"] for s in client.get(base, params={"query": "#2"}, headers=JSON).json()["scans"]] == [
            sids[1]]
        assert client.delete(f"{base}/{sids[0]}/status", headers=JSON).json()["cancelled"] is True
        ongoing = client.get(base, params={"ongoing": "true"}, headers=JSON).json()
        assert [s["dbId"] for s in ongoing["scans"]] == sids[1:]


def test_scan_get_rename_cancel_and_user_scans(server, alice):
    with server.client(alice) as client:
        siid = create(client, alice.login, "web")
        sid = upload(client, alice.login, siid, report_bytes(overlay=True)).json()["dbId"]
        uri = f"/users/{alice.login}/scannedinstances/{siid}/scans/{sid}"
        scan = client.get(uri, params={"pkgs": "false", "pkgFiles": "False"}, headers=JSON).json()
        assert (scan["dbId"], scan["status"]["cancelled"]) == (sid, False)
        renamed = client.put(uri, json={"name": "before upgrade"}, headers=JSON)
        assert renamed.json()["name"] == "before upgrade"
        status = client.delete(f"{uri}/status", headers=JSON).json()
        assert status["cancelled"] is True
        assert client.get(uri, headers=JSON).json()["status"]["cancelled"] is True
        user_scans = client.get(f"/users/{alice.login}/scans", headers=JSON).json()
        assert [s["dbId"] for s in user_scans["scans"]] == [sid]
        assert client.delete(f"/users/{alice.login}/scans", params={"id": sid}).status_code == 204
        assert client.get(uri, headers=JSON).status_code == 404


def counts(server, user_login: str) -> tuple[int, int]:
    from machinescan.server.db.models import User

    with server.database.session() as session:
        user_id = session.scalar(select(User.id).where(User.login_name == user_login))
        instances = session.scalar(select(func.count()).where(ScannedInstance.user_id == user_id))
        scans = session.scalar(select(func.count()).select_from(Scan).join(ScannedInstance)
                               .where(ScannedInstance.user_id == user_id))
    return instances, scans


def test_deleting_an_instance_deletes_its_scans_rows_and_blobs(server, alice, bob):
    with server.client(bob) as client:  # bob's data must survive alice's deletions
        bob_siid = create(client, bob.login, "keep")
        upload(client, bob.login, bob_siid, b"bob's report")
    bob_blobs = set(server.blob_files())
    with server.client(alice) as client:
        first = create(client, alice.login, "first")
        second = create(client, alice.login, "second")
        for siid in (first, first, second):
            assert upload(client, alice.login, siid, b"report of %d" % siid).status_code == 201
        assert counts(server, alice.login) == (2, 3)
        assert len(set(server.blob_files()) - bob_blobs) == 3
        assert client.delete(f"/users/{alice.login}/scannedinstances/{first}").status_code == 204
        assert counts(server, alice.login) == (1, 1)
        assert len(set(server.blob_files()) - bob_blobs) == 1
        assert client.delete(f"/users/{alice.login}/scannedinstances").status_code == 204
        assert counts(server, alice.login) == (0, 0)
    assert set(server.blob_files()) == bob_blobs
    assert counts(server, bob.login) == (1, 1)


def test_deleting_all_scans_of_an_instance_keeps_the_instance(server, alice):
    with server.client(alice) as client:
        siid = create(client, alice.login, "web")
        upload(client, alice.login, siid, b"one")
        upload(client, alice.login, siid, b"two")
        assert client.delete(f"/users/{alice.login}/scannedinstances/{siid}/scans").status_code == 204
        assert client.get(f"/users/{alice.login}/scannedinstances/{siid}", headers=JSON).json()["totalScans"] == 0
    assert counts(server, alice.login) == (1, 0)
