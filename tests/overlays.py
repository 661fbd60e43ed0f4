"""Overlay upload helpers for integration tests: a fresh scan's overlay URL and chunk-by-chunk uploads."""

import gzip
import hashlib
import io
import os
import tarfile
import zlib
from dataclasses import dataclass

import httpx
from servers import RunningServer

JSON = {"Accept": "application/json"}
XML = {"Accept": "application/xml", "Content-Type": "application/xml"}
CHUNK = 64 * 1024


def crc(data: bytes) -> int:
    return zlib.crc32(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class ScanOverlay:
    """The overlay URL of a fresh scan, and a client of its owner."""

    client: httpx.Client
    url: str
    scan_id: int

    def chunk(self, data: bytes, first: int, total: int | None, checksum: int | None = None,
              headers: dict | None = None, **params) -> httpx.Response:
        last = first + len(data) - 1
        query = {"crc": crc(data) if checksum is None else checksum, **params}
        return self.client.post(self.url, params=query, content=data, headers={
            **JSON, "Content-Type": "application/octet-stream",
            "Content-Range": f"bytes {first}-{last}/{'*' if total is None else total}", **(headers or {})})

    def upload(self, data: bytes, chunk_size: int = CHUNK, **params) -> httpx.Response:
        response = None
        for first in range(0, len(data), chunk_size):
            response = self.chunk(data[first:first + chunk_size], first, len(data), **params)
            assert response.status_code == 201, response.text
        return response

    def offset(self) -> int:
        response = self.client.head(self.url)
        return int(response.headers["Upload-Offset"]) if response.status_code == 200 else 0

    def download(self, **headers) -> httpx.Response:
        return self.client.get(self.url, headers={**JSON, **headers})


def new_scan(server: RunningServer, account, report: bytes = b"any report bytes") -> ScanOverlay:
    client = server.client(account)
    created = client.post(f"/users/{account.login}/scannedinstances", json={"name": os.urandom(6).hex()},
                          headers=JSON)
    assert created.status_code == 201, created.text
    siid = created.json()["dbId"]
    scan = client.post(f"/users/{account.login}/scannedinstances/{siid}/scans", params={"crc": crc(report)},
                       content=report, headers=JSON)
    assert scan.status_code == 201, scan.text
    sid = scan.json()["dbId"]
    return ScanOverlay(client, f"/users/{account.login}/scannedinstances/{siid}/scans/{sid}/overlay", sid)


def overlay_archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    tar = buffer.getvalue()
    # like the agent: independent gzip members
    return b"".join(gzip.compress(tar[start:start + 4096]) for start in range(0, len(tar), 4096))
