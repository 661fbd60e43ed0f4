"""The agent's API client: find or create the scanned instance, send the report, upload the overlay in chunks.

The overlay follows upload-protocol.md: each chunk carries its CRC-32 and a Content-Range with the total;
the server's `Upload-Offset` (on every answer, errors included) says where to go on, so a retry is
harmless and an interrupted upload resumes where the server stopped. Chunks are halved on 413; network
errors, 5xx and 409 are retried with back-off after re-reading the offset; 410 starts over from 0.
Standard library only, Python 3.6+.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import ssl
import time
import zlib
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
MIN_CHUNK_SIZE = 64 * 1024
READ_BLOCK = 1024 * 1024
RETRYABLE_STATUSES = (409, 500, 502, 503, 504)


class UploadError(Exception):
    """The server refused or could not be reached; the message says what happened and what to try."""


class Credentials(object):
    """HTTP Basic (user, password) or a UForge API key pair (user, api_key, secret)."""

    def __init__(self, user, password=None, api_key=None, secret=None):
        self.user = user
        self.password = password
        self.api_key = api_key
        self.secret = secret


class Response(object):
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8")) if self.body else {}
        except ValueError:
            raise UploadError("the server answered %d with something that is not JSON: %r"
                              % (self.status, self.body[:100]))

    def error_message(self):
        try:
            return json.loads(self.body.decode("utf-8"))["localizedErrorMsg"]["message"]
        except (ValueError, KeyError, TypeError):
            return self.body[:200].decode("utf-8", "replace") or "no message"


class ApiClient(object):
    """Requests to the API base URL over one kept-alive connection (reopened after an error)."""

    def __init__(self, base_url, credentials, timeout=300):
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UploadError("the server URL must look like http://host:8080/api, not %r" % base_url)
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.base_path = parts.path.rstrip("/") + "/"
        self.credentials = credentials
        self.timeout = timeout
        self._connection = None

    def call(self, method, path, query=None, body=None, headers=None):
        """One request to `path` (relative to the base URL); network errors raise OSError/HTTPException."""
        all_headers = {"Accept": "application/json", "User-Agent": "machinescan-agent"}
        all_headers.update(self._auth_header())
        all_headers.update(headers or {})
        connection = self._open()
        try:
            connection.request(method, self.base_path + self._query_string(path, query), body=body,
                               headers=all_headers)
            reply = connection.getresponse()
            payload = reply.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if (reply.getheader("connection") or "").lower() == "close":
            self.close()
        return Response(reply.status, {name.lower(): value for name, value in reply.getheaders()}, payload)

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _open(self):
        if self._connection is None:
            if self.scheme == "https":
                self._connection = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                               context=ssl.create_default_context())
            else:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._connection

    def _auth_header(self):
        credentials = self.credentials
        if credentials.api_key:
            return {}
        token = "%s:%s" % (credentials.user, credentials.password or "")
        return {"Authorization": "Basic " + base64.b64encode(token.encode("utf-8")).decode("ascii")}

    def _query_string(self, path, query):
        """`path?query`; with an API key, the query ends with the HMAC-SHA1 signature of path and query."""
        pairs = list(query or [])
        if self.credentials.api_key:
            pairs.append(("apiKey", self.credentials.api_key))
        target = path + ("?" + urlencode(pairs) if pairs else "")
        if self.credentials.api_key:
            digest = hmac.new(self.credentials.secret.encode("utf-8"), target.encode("utf-8"), hashlib.sha1).digest()
            target += "&signature=" + quote(base64.b64encode(digest).decode("ascii"), safe="")
        return target


def expect(response, statuses, doing):
    if response.status not in statuses:
        hint = {401: " (check -u/-p or -a/-s)", 403: " (the user needs the migration_access entitlement)"}
        raise UploadError("%s: the server answered %d: %s%s" % (doing, response.status, response.error_message(),
                                                                hint.get(response.status, "")))
    return response


def probe(client, user):
    """Check that the server answers and the credentials work; returns the server version."""
    status = expect(client.call("GET", "status"), (200,), "checking the server").json()
    expect(client.call("GET", "users/%s" % quote(user, safe="")), (200,), "checking the credentials of %s" % user)
    return status.get("version") or "unknown"


def instance_id(client, user, name, distribution, overlay):
    """The id of the scanned instance called `name`, created (with the detected distribution) when new."""
    instances = "users/%s/scannedinstances" % quote(user, safe="")
    listing = expect(client.call("GET", instances, [("name", name)]), (200,),
                     "finding the scanned instance %r" % name).json()
    for instance in listing.get("scannedInstances") or []:
        if instance.get("name") == name:
            return instance["dbId"]
    body = json.dumps({
        "name": name, "overlayIncluded": bool(overlay),
        "distribution": {"version": distribution.get("version") or "",
                         "detectedName": distribution.get("id") or distribution.get("name"),
                         "detectedArch": distribution.get("arch")},
    }).encode("utf-8")
    created = client.call("POST", instances, body=body, headers={"Content-Type": "application/json"})
    return expect(created, (201,), "creating the scanned instance %r" % name).json()["dbId"]


def file_crc32(path):
    crc = 0
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(READ_BLOCK), b""):
            crc = zlib.crc32(block, crc)
    return crc & 0xFFFFFFFF


def upload_report(client, user, siid, report_path):
    """Send the report file as the body of a new scan; returns the scan id."""
    path = "users/%s/scannedinstances/%d/scans" % (quote(user, safe=""), siid)
    query = [("crc", str(file_crc32(report_path))), ("reportFileName", os.path.basename(report_path))]
    with open(report_path, "rb") as body:
        response = client.call("POST", path, query, body=body, headers={
            "Content-Type": "application/octet-stream", "Content-Length": str(os.path.getsize(report_path))})
    return expect(response, (201,), "sending the report %s" % report_path).json()["dbId"]


class OverlayUpload(object):
    """The chunked, resumable upload of one overlay archive to one scan."""

    def __init__(self, client, user, siid, sid, chunk_size=DEFAULT_CHUNK_SIZE, attempts=8, sleep=time.sleep,
                 progress=None):
        self.client = client
        self.path = "users/%s/scannedinstances/%d/scans/%d/overlay" % (quote(user, safe=""), siid, sid)
        self.chunk_size = chunk_size
        self.attempts = attempts
        self.sleep = sleep
        self.progress = progress

    def upload(self, archive_path, sha256):
        """Send the archive from where the server stands; returns when the server has all of it."""
        total = os.path.getsize(archive_path)
        failures = 0
        with open(archive_path, "rb") as archive:
            offset = self.received_bytes()
            while True:
                try:
                    offset, done = self._send_chunk(archive, offset, total, sha256)
                    failures = 0
                except (OSError, http.client.HTTPException, _Retry) as problem:
                    failures += 1
                    if failures >= self.attempts:
                        raise UploadError("uploading the overlay failed %d times in a row, last: %s; run the "
                                          "same command again to resume" % (failures, problem))
                    self.sleep(min(60, 2 ** failures))
                    offset = self.received_bytes()
                    continue
                if self.progress is not None:
                    self.progress(offset, total)
                if done:
                    return

    def received_bytes(self):
        """How many bytes the server holds (HEAD; 0 before the first chunk or after expiry)."""
        response = self.client.call("HEAD", self.path)
        if response.status in (404, 410):  # nothing yet (an unknown scan shows on the next POST, with a message)
            return 0
        expect(response, (200,), "asking how much of the overlay the server has")
        return int(response.headers.get("upload-offset", "0"))

    def _send_chunk(self, archive, offset, total, sha256):
        """POST one chunk; returns (the server's offset, whether the upload is complete)."""
        archive.seek(offset)
        chunk = archive.read(min(self.chunk_size, total - offset))
        last = offset + len(chunk) - 1
        query = [("crc", str(zlib.crc32(chunk) & 0xFFFFFFFF))]
        if last + 1 == total:
            query.append(("sha256", sha256))
            query.append(("overlayName", os.path.basename(archive.name)))
        response = self.client.call("POST", self.path, query, body=chunk, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": "bytes %d-%d/%d" % (offset, max(last, offset), total)})
        server_offset = int(response.headers.get("upload-offset", last + 1))
        if response.status == 201:
            return server_offset, server_offset >= total
        if response.status == 413 and self.chunk_size > MIN_CHUNK_SIZE:  # a proxy's limit: halve the chunk
            self.chunk_size //= 2
            return offset, False
        if response.status == 410:  # expired and collected by the server: start again
            return 0, False
        if response.status == 409 and server_offset >= total:
            return server_offset, True  # already complete: an earlier attempt finished it
        if response.status in RETRYABLE_STATUSES:
            raise _Retry("the server answered %d: %s" % (response.status, response.error_message()))
        expect(response, (201,), "uploading the overlay chunk %d-%d" % (offset, last))


class _Retry(Exception):
    """An answer that is worth another try after re-reading the offset."""
