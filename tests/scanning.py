"""Helpers for tests that upload reports and wait for their ingestion."""

import time
import zlib

JSON = {"Accept": "application/json"}


def create_instance(client, login: str, name: str) -> int:
    response = client.post(f"/users/{login}/scannedinstances", json={"name": name}, headers=JSON)
    assert response.status_code == 201, response.text
    return response.json()["dbId"]


def upload_report(client, login: str, siid: int, body: bytes) -> str:
    response = client.post(f"/users/{login}/scannedinstances/{siid}/scans", params={"crc": zlib.crc32(body)},
                           content=body, headers={**JSON, "Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    return f"/users/{login}/scannedinstances/{siid}/scans/{response.json()['dbId']}"


def wait_for_scan(client, scan_uri: str, timeout: float = 60, done=None) -> dict:
    """Poll until the scan is ingested (or failed); `done` may ask for another condition."""
    done = done or (lambda scan: scan["validated"] or scan["error"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scan = client.get(scan_uri, params={"pkgs": "false"}, headers=JSON).json()
        if done(scan):
            return scan
        time.sleep(0.05)
    raise AssertionError(f"scan {scan_uri} not done after {timeout}s: {scan}")


def ingest(client, login: str, siid: int, body: bytes) -> tuple[str, dict]:
    uri = upload_report(client, login, siid, body)
    return uri, wait_for_scan(client, uri)
