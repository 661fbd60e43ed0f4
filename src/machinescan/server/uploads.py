"""The overlay upload protocol (shared/spec/upload-protocol.md): every rule with its status code, and the
operations that apply them to the upload's database row and the blob store.

A chunk goes through three steps. `prepare` (row locked, no body read yet) applies the rules that need
only the headers and the upload's state, so a gap, a finished upload or an expired one is answered at
once, and a retried chunk that already landed is acknowledged without reading its body again. The body
is then *staged* without the row lock, while its size and CRC-32 are computed (the local store stages in
place, past the acknowledged bytes, holding the partial file exclusively; the rules are applied again
once it is held). `commit` (row locked again) re-applies
the rules, since another request may have moved the upload meanwhile, appends the staged bytes at the
acknowledged offset, durably, and only then moves the offset in the database. A chunk that fails a check,
a client that goes away and a process that dies mid-chunk therefore leave the acknowledged bytes and the
offset as they were.
"""

import asyncio
import hashlib
import logging
import re
import threading
import uuid
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from .blobs import BlobStore, BlobWriter, NotReadable, StagedChunk
from .db import queries
from .db import uploads as rows
from .db.models import OverlayUpload, Scan, User, utcnow
from .errors import ApiError, BadRequest, Conflict, Gone, NotFound, PayloadTooLarge
from .lifecycle import overlay_received
from .wire import resources

log = logging.getLogger("machinescan.uploads")

# Socket-sized request pieces are gathered into blocks of this size before each thread hop.
WRITE_BLOCK = 1024 * 1024
DEFAULT_OVERLAY_NAME = "overlay.tar.gz"

# What `decide` tells the caller to do with a chunk.
APPEND = "append"  # the chunk starts at the offset: store it
STORED = "stored"  # a retry of a chunk that landed: acknowledge, change nothing
RESTART = "restart"  # the upload expired and the client starts over at byte 0


# ================================================================ the rules

def progress_headers(received: int, total: int | None) -> dict[str, str]:
    headers = {"Upload-Offset": str(received)}
    if total is not None:
        headers["Upload-Length"] = str(total)
    return headers


@dataclass(frozen=True)
class ChunkRange:
    first: int
    last: int
    total: int | None  # None: `*`, not known yet

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    @property
    def completes(self) -> bool:
        return self.total is not None and self.last + 1 == self.total


_CONTENT_RANGE = re.compile(r"bytes (\d{1,19})-(\d{1,19})/(\d{1,19}|\*)")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def parse_crc(value: str | None) -> int:
    """400: the CRC-32 of the body is required, as an unsigned decimal integer."""
    if value is None or not value.strip():
        raise BadRequest("the query must carry crc=<CRC-32 of the body> so that the upload can be checked")
    if not value.strip().isdigit() or int(value) >= 2 ** 32:
        raise BadRequest(f"crc must be the CRC-32 of the body as an unsigned decimal integer, got {value!r}")
    return int(value)


def parse_content_range(header: str) -> ChunkRange:
    """400: `Content-Range: bytes <first>-<last>/<total or *>` with first <= last < total."""
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        raise BadRequest(f"malformed Content-Range {header!r}: send 'bytes <first>-<last>/<total>' "
                         f"(the total may be * until the last chunk)")
    first, last = int(match[1]), int(match[2])
    total = None if match[3] == "*" else int(match[3])
    if last < first:
        raise BadRequest(f"Content-Range {header!r} ends before it starts")
    if total is not None and last + 1 > total:
        raise BadRequest(f"Content-Range {header!r} ends past the total of {total} bytes")
    return ChunkRange(first, last, total)


def parse_sha256(value: str | None) -> str | None:
    """400: `sha256` is 64 hexadecimal digits."""
    if value is None:
        return None
    digest = value.strip().lower()
    if not _SHA256.fullmatch(digest):
        raise BadRequest(f"sha256 must be 64 hexadecimal digits, got {value!r}")
    return digest


def parse_overlay_name(value: str | None) -> str | None:
    """400: a plain file name, used in `Content-Disposition` of the download."""
    if value is None:
        return None
    name = value.strip()
    if not name or len(name) > 255 or "/" in name or "\\" in name or name in (".", "..") \
            or any(ord(character) < 32 or ord(character) == 127 for character in name):
        raise BadRequest(f"overlayName must be a plain file name (no folders, 1 to 255 characters), "
                         f"got {value!r}")
    return name


def parse_content_length(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit():
        raise BadRequest(f"malformed Content-Length {value!r}")
    return int(value)


def check_chunk_limits(chunk: ChunkRange, content_length: int | None, max_chunk: int, max_overlay: int) -> None:
    """413 beyond the chunk or overlay size limit; 400 when the body cannot be the range (before reading it)."""
    if chunk.length > max_chunk:
        raise PayloadTooLarge(f"a chunk of {chunk.length} bytes is larger than this server's maximum of "
                              f"{max_chunk} bytes; send smaller chunks")
    if (chunk.total if chunk.total is not None else chunk.last + 1) > max_overlay:
        raise PayloadTooLarge(f"the overlay would be larger than this server's limit of {max_overlay} bytes")
    if content_length is not None and content_length != chunk.length:
        raise BadRequest(f"the body has {content_length} bytes but the Content-Range announces {chunk.length}")


def check_whole_limits(content_length: int | None, max_overlay: int) -> None:
    """413: a whole overlay larger than the limit is refused before its body is read."""
    if content_length is not None and content_length > max_overlay:
        raise PayloadTooLarge(f"the overlay is larger than this server's limit of {max_overlay} bytes")


def decide(upload: OverlayUpload, chunk: ChunkRange, crc: int, stored_crc: Callable[[], int | None]) -> str:
    """What to do with a chunk, given the upload's state; raises the protocol's answer when it is refused.

    `stored_crc()` gives the CRC-32 of the stored bytes `first..last` (None when they cannot be read back).
    """
    received, total = upload.received_bytes, upload.total_bytes
    headers = progress_headers(received, total)
    if upload.state == "expired":
        if chunk.first == 0:
            return RESTART
        raise Gone("this partial overlay upload was idle too long and was deleted; upload the overlay "
                   "again from byte 0", headers)
    if chunk.last < received:
        found = stored_crc()
        if found == crc:
            return STORED  # 201: a retry of a chunk that landed
        raise Conflict(f"bytes {chunk.first}-{chunk.last} were already stored with other content "
                       f"(CRC-32 {found}, not {crc}); continue from byte {received}", headers)  # 409
    if upload.state == "complete":
        raise Conflict("the overlay of this scan is already complete; DELETE it first to upload another",
                       headers)  # 409
    if chunk.first > received:
        raise Conflict(f"the server has {received} bytes of this overlay; send the chunk that starts at "
                       f"byte {received}", headers)  # 409: a gap
    if chunk.first < received:
        raise Conflict(f"bytes {chunk.first}-{received - 1} are already stored; send the chunk that starts "
                       f"at byte {received}", headers)  # 409: overlaps stored bytes
    if total is not None and chunk.total is not None and chunk.total != total:
        raise BadRequest(f"the total size was given as {total} bytes, now as {chunk.total}", headers)
    if total is not None and chunk.last + 1 > total:
        raise BadRequest(f"the chunk ends past the total of {total} bytes given earlier", headers)
    return APPEND


def refuse_if_cancelled(scan: Scan, upload: OverlayUpload) -> None:
    """409: a cancelled scan takes no more overlay bytes (its processing was stopped on purpose)."""
    if scan.cancelled:
        raise Conflict("this scan was cancelled; start a new scan to upload an overlay",
                       progress_headers(upload.received_bytes, upload.total_bytes))


# ================================================================ whole-archive sha256

class DigestCache:
    """The sha256 state of the uploads this process appended to, each valid at one offset.

    hashlib state cannot be stored in the database, and re-reading a 10 GiB archive when the last chunk
    arrives would hold that answer for a minute. So each process keeps the state of the uploads it serves
    (keyed by upload and offset, a few hundred bytes each), and only when a chunk went through another
    process (another replica, or before a restart) does the completing request hash the stored bytes
    again, once, sequentially, before it reads its own body and without holding the row lock.
    """

    def __init__(self, capacity: int = 4096):
        self._capacity = capacity
        self._entries: OrderedDict[int, tuple[int, hashlib._Hash]] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, upload_id: int, offset: int):
        """A hasher holding the state at `offset`, to feed with the next chunk; None when unknown here."""
        if offset == 0:
            return hashlib.sha256()
        with self._lock:
            entry = self._entries.get(upload_id)
            return entry[1].copy() if entry is not None and entry[0] == offset else None

    def keep(self, upload_id: int, offset: int, hasher) -> None:
        with self._lock:
            self._entries[upload_id] = (offset, hasher)
            self._entries.move_to_end(upload_id)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def forget(self, upload_id: int) -> None:
        with self._lock:
            self._entries.pop(upload_id, None)


def sha256_of(blocks: Iterator[bytes], hasher=None) -> "hashlib._Hash":
    hasher = hasher or hashlib.sha256()
    for block in blocks:
        hasher.update(block)
    return hasher


# ================================================================ streaming a request body

class _Sink:
    """Where body blocks go, on worker threads: the staged bytes with their CRC-32, and the sha256 beside.

    The two run on separate threads at once (zlib, hashlib and file writes release the GIL), so a block
    costs the slower of the two rather than their sum while the event loop receives the next one.
    """

    def __init__(self, target: StagedChunk | BlobWriter, hasher=None):
        self.target = target
        self.hasher = hasher
        self.crc32 = 0

    def _store(self, block: bytearray) -> None:
        self.crc32 = zlib.crc32(block, self.crc32)
        self.target.write(block)

    def feed(self, block: bytearray) -> list[asyncio.Future]:
        """Start taking one block; the caller awaits the futures before it feeds the next."""
        work = [asyncio.ensure_future(run_in_threadpool(self._store, block))]
        if self.hasher is not None:
            work.append(asyncio.ensure_future(run_in_threadpool(self.hasher.update, block)))
        return work


async def stream_body(blocks: AsyncIterator[bytes], sink: _Sink, limit: int, over_limit: ApiError) -> int:
    """Feed the body to `sink` in WRITE_BLOCK pieces, one in flight while the next arrives; returns its size."""
    size = 0
    pending = bytearray()
    in_flight: list[asyncio.Future] = []
    try:
        async for block in blocks:
            size += len(block)
            if size > limit:
                raise over_limit
            pending += block
            if len(pending) >= WRITE_BLOCK:
                await asyncio.gather(*in_flight)
                in_flight = sink.feed(pending)
                pending = bytearray()
        await asyncio.gather(*in_flight)
        in_flight = []
        if pending:
            await asyncio.gather(*sink.feed(pending))
    except ClientDisconnect:
        raise BadRequest("the client went away before the whole body arrived; nothing was stored") from None
    finally:
        if in_flight:  # let the writes end before the caller discards their target
            await asyncio.wait(in_flight)
    return size


# ================================================================ the operations

@dataclass
class Answer:
    """A 2xx answer: the scan resource with the upload's progress, and the progress headers."""

    resource: dict
    received: int
    total: int | None

    @property
    def headers(self) -> dict[str, str]:
        return progress_headers(self.received, self.total)


@dataclass
class OverlayFile:
    key: str
    size: int
    sha256: str
    name: str


@dataclass
class _Prepared:
    upload_id: int
    handle: str | None
    received: int
    total: int | None
    answer: Answer | None = None  # set when the chunk is already stored


@dataclass
class _AfterCommit:
    """Blob deletions that may happen only once the database no longer names the blobs."""

    partials: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


class OverlayUploads:
    def __init__(self, services):
        self.services = services
        self.database = services.database
        self.blobs: BlobStore = services.blobs
        self.settings = services.settings
        self.digests = DigestCache()

    # ------------------------------------------------------------ reading state

    def owned_scan(self, owner: User, siid: int, sid: int) -> tuple[int, str]:
        """404 unless the scan is the owner's; returns its id and blob prefix."""
        with self.database.session() as session:
            scan = queries.get_scan(session, owner, siid, sid)
            return scan.id, scan.blob_prefix

    def progress(self, scan_id: int) -> tuple[int, int | None] | None:
        """Upload-Offset and Upload-Length of a scan's overlay; None before any upload."""
        with self.database.session() as session:
            upload = rows.find_upload(session, scan_id)
            scan = session.get(Scan, scan_id)
            return _progress_of(scan, upload) if scan is not None else None

    def status(self, owner: User, siid: int, sid: int) -> tuple[int, int | None]:
        """HEAD: 200 with the progress; 404 before the first byte; 410 after expiry."""
        scan_id, _ = self.owned_scan(owner, siid, sid)
        self.expire_idle(scan_id)
        with self.database.session() as session:
            upload = rows.find_upload(session, scan_id)
            progress = _progress_of(session.get(Scan, scan_id), upload)
            if upload is not None and upload.state == "expired":
                raise Gone("this partial overlay upload was idle too long and was deleted; upload the overlay "
                           "again from byte 0", progress_headers(*progress))
            if progress is None or progress[0] == 0:
                raise NotFound("no byte of this scan's overlay has been received yet",
                               progress_headers(*(progress or (0, None))))
            return progress

    def overlay_file(self, owner: User, siid: int, sid: int) -> OverlayFile:
        """GET: the complete overlay; 404 while there is none."""
        with self.database.session() as session:
            scan = queries.get_scan(session, owner, siid, sid)
            if scan.overlay_key is None:
                raise NotFound(f"scan {sid} has no complete overlay")
            return OverlayFile(scan.overlay_key, scan.overlay_size, scan.overlay_sha256,
                               scan.overlay_name or DEFAULT_OVERLAY_NAME)

    # ------------------------------------------------------------ a chunk

    async def receive_chunk(self, blocks: AsyncIterator[bytes], owner: User, siid: int, sid: int,
                            chunk: ChunkRange, crc: int, expected_sha256: str | None,
                            name: str | None) -> Answer:
        scan_id, _ = await run_in_threadpool(self.owned_scan, owner, siid, sid)
        await run_in_threadpool(self.expire_idle, scan_id)
        prepared = await run_in_threadpool(self._prepare_chunk, owner, scan_id, chunk, crc, name)
        if prepared.answer is not None:
            return prepared.answer  # a retry of a chunk that landed: the body is not needed
        handle = prepared.handle
        try:
            staged = await run_in_threadpool(self.blobs.stage_chunk, handle, chunk.first)
        except FileNotFoundError:  # expired or deleted meanwhile: answer as the upload now stands
            await run_in_threadpool(self._prepare_chunk, owner, scan_id, chunk, crc, name)
            raise Conflict("the upload changed while this chunk waited; ask HEAD for the offset") from None
        try:
            # Staging may have waited for another request on this upload: decide again.
            prepared = await run_in_threadpool(self._prepare_chunk, owner, scan_id, chunk, crc, name)
            if prepared.answer is not None:
                return prepared.answer
            if prepared.handle != handle:
                raise Conflict("the upload restarted while this chunk waited; ask HEAD for the offset")
            hasher = self.digests.start(prepared.upload_id, chunk.first)
            if hasher is None and chunk.completes:
                hasher = await run_in_threadpool(self._hash_stored, prepared.handle, chunk.first)
            sink = _Sink(staged, hasher)
            too_long = BadRequest(f"the body is longer than the {chunk.length} bytes of its Content-Range; "
                                  f"nothing was stored")
            size = await stream_body(blocks, sink, chunk.length, too_long)
            if size != chunk.length:
                raise BadRequest(f"the body has {size} bytes, shorter than the {chunk.length} bytes of its "
                                 f"Content-Range; nothing was stored")
            if sink.crc32 != crc:
                raise BadRequest(f"the chunk's CRC-32 is {sink.crc32}, not {crc} as announced: it was damaged "
                                 f"on the way; nothing was stored, send it again")
            return await run_in_threadpool(self._commit_chunk, owner, scan_id, chunk, crc, staged, hasher,
                                           expected_sha256)
        finally:
            await run_in_threadpool(staged.discard)

    def _prepare_chunk(self, owner: User, scan_id: int, chunk: ChunkRange, crc: int,
                       name: str | None) -> _Prepared:
        with self.database.session() as session:
            upload = rows.lock_or_create_upload(session, scan_id)
            if upload is None:
                raise NotFound(f"scan {scan_id} was deleted")
            scan = session.get(Scan, scan_id)
            refuse_if_cancelled(scan, upload)
            outcome = decide(upload, chunk, crc, lambda: self._stored_crc(session, scan, upload, chunk))
            if outcome == RESTART:
                self._restart(session, scan, upload)
                outcome = decide(upload, chunk, crc, lambda: None)
            if upload.state == "partial" and upload.storage_handle is None:
                upload.storage_handle = self.blobs.create_partial(scan.blob_prefix + "overlay")
            if name is not None and upload.state == "partial":
                upload.overlay_name = name
            session.flush()
            prepared = _Prepared(upload.id, upload.storage_handle, upload.received_bytes, upload.total_bytes)
            if outcome == STORED:
                prepared.answer = self._answer(scan, upload, owner)
            return prepared

    def _commit_chunk(self, owner: User, scan_id: int, chunk: ChunkRange, crc: int, staged: StagedChunk,
                      hasher, expected_sha256: str | None) -> Answer:
        after = _AfterCommit()
        failure: ApiError | None = None
        with self.database.session() as session:
            upload = rows.lock_upload(session, scan_id)
            if upload is None:
                raise NotFound(f"scan {scan_id} was deleted")
            scan = session.get(Scan, scan_id)
            refuse_if_cancelled(scan, upload)
            outcome = decide(upload, chunk, crc, lambda: self._stored_crc(session, scan, upload, chunk))
            if outcome == RESTART:  # expired while this body arrived
                self._restart(session, scan, upload)
                upload.storage_handle = self.blobs.create_partial(scan.blob_prefix + "overlay")
            if outcome != STORED:
                self.blobs.append(upload.storage_handle, upload.received_bytes, staged)
                upload.received_bytes = chunk.last + 1
                if chunk.total is not None:
                    upload.total_bytes = chunk.total
                upload.last_activity = utcnow()
                rows.record_chunk(session, upload.id, chunk.first, chunk.last, crc)
                if upload.received_bytes == upload.total_bytes:
                    failure = self._complete(session, scan, upload, hasher, expected_sha256, after)
            answer = self._answer(scan, upload, owner)
            upload_id, received = upload.id, upload.received_bytes
        self._cleanup(after)
        if failure is not None:
            self.digests.forget(upload_id)
            raise failure
        if outcome != STORED and hasher is not None:
            self.digests.keep(upload_id, received, hasher)
        return answer

    def _complete(self, session, scan: Scan, upload: OverlayUpload, hasher, expected_sha256: str | None,
                  after: _AfterCommit) -> ApiError | None:
        """The last byte arrived: check the sha256, make the archive the scan's overlay, queue its check."""
        key = f"{scan.blob_prefix}overlay-{uuid.uuid4().hex[:12]}"
        handle = upload.storage_handle
        self.blobs.finalize(handle, key)
        # No hasher: the stored bytes could not be read back before (S3 parts); read the finished blob.
        digest = (hasher or sha256_of(self.blobs.read(key))).hexdigest()
        after.partials.append(handle)
        if expected_sha256 is not None and digest != expected_sha256:
            self.blobs.delete(key)
            rows.delete_upload(session, upload)
            message = (f"the overlay's sha256 is {digest}, not {expected_sha256} as announced: the archive "
                       f"changed or was damaged during the upload and was discarded; upload it again "
                       f"from byte 0")
            scan.error, scan.error_message = True, message
            return BadRequest(message, progress_headers(0, None))  # 400, nothing kept
        if scan.overlay_key:
            after.keys.append(scan.overlay_key)
        self._set_overlay(session, scan, key, upload.total_bytes, digest,
                          upload.overlay_name or DEFAULT_OVERLAY_NAME)
        upload.state, upload.storage_handle = "complete", None
        return None

    def _set_overlay(self, session, scan: Scan, key: str, size: int, digest: str, name: str) -> None:
        overlay_received(session, scan.id, overlay_key=key, overlay_size=size, overlay_sha256=digest,
                         overlay_name=name)

    def _restart(self, session, scan: Scan, upload: OverlayUpload) -> None:
        rows.forget_chunks(session, upload.id)
        upload.state, upload.received_bytes, upload.total_bytes = "partial", 0, None
        upload.overlay_name, upload.storage_handle, upload.last_activity = None, None, utcnow()
        self.digests.forget(upload.id)

    def _stored_crc(self, session, scan: Scan, upload: OverlayUpload, chunk: ChunkRange) -> int | None:
        """The CRC-32 of stored bytes first..last: from the chunk records, else read back when possible."""
        recorded = rows.recorded_crc(session, upload.id, chunk.first, chunk.last)
        if recorded is not None:
            return recorded
        try:
            if upload.state == "complete" and scan.overlay_key:
                blocks = self.blobs.read(scan.overlay_key, chunk.first, chunk.last + 1)
            elif upload.storage_handle:
                blocks = self.blobs.read_partial(upload.storage_handle, chunk.first, chunk.last + 1)
            else:
                return None
            crc = 0
            for block in blocks:
                crc = zlib.crc32(block, crc)
            return crc
        except NotReadable:
            return None

    def _hash_stored(self, handle: str, end: int):
        try:
            return sha256_of(self.blobs.read_partial(handle, 0, end))
        except NotReadable:
            return None

    # ------------------------------------------------------------ a whole overlay

    async def receive_whole(self, blocks: AsyncIterator[bytes], owner: User, siid: int, sid: int, crc: int,
                            expected_sha256: str | None, name: str | None) -> Answer:
        scan_id, blob_prefix = await run_in_threadpool(self.owned_scan, owner, siid, sid)
        key = f"{blob_prefix}overlay-{uuid.uuid4().hex[:12]}"
        limit = self.settings.max_overlay_size
        with self.blobs.writer(key) as writer:
            sink = _Sink(writer, hashlib.sha256())
            too_large = PayloadTooLarge(f"the overlay is larger than this server's limit of {limit} bytes")
            size = await stream_body(blocks, sink, limit, too_large)
            if size == 0:
                raise BadRequest("the overlay is empty")
            if sink.crc32 != crc:
                raise BadRequest(f"the overlay's CRC-32 is {sink.crc32}, not {crc} as announced: it was damaged "
                                 f"on the way; nothing was changed, send it again")
            digest = sink.hasher.hexdigest()
            if expected_sha256 is not None and digest != expected_sha256:
                raise BadRequest(f"the overlay's sha256 is {digest}, not {expected_sha256} as announced; "
                                 f"nothing was changed, send it again")
            return await run_in_threadpool(self._commit_whole, owner, scan_id, writer, size, digest,
                                           name or DEFAULT_OVERLAY_NAME, key)

    def _commit_whole(self, owner: User, scan_id: int, writer: BlobWriter, size: int, digest: str, name: str,
                      key: str) -> Answer:
        after = _AfterCommit()
        with self.database.session() as session:
            upload = rows.lock_or_create_upload(session, scan_id)
            if upload is None:
                raise NotFound(f"scan {scan_id} was deleted")
            scan = session.get(Scan, scan_id)
            refuse_if_cancelled(scan, upload)
            writer.commit()  # under its own new key: the overlay the database names is untouched until commit
            if upload.storage_handle:
                after.partials.append(upload.storage_handle)
            if scan.overlay_key:
                after.keys.append(scan.overlay_key)
            rows.forget_chunks(session, upload.id)
            upload.state, upload.storage_handle, upload.overlay_name = "complete", None, name
            upload.received_bytes = upload.total_bytes = size
            upload.last_activity = utcnow()
            self._set_overlay(session, scan, key, size, digest, name)
            answer = self._answer(scan, upload, owner)
            upload_id = upload.id
        self.digests.forget(upload_id)
        self._cleanup(after)
        return answer

    # ------------------------------------------------------------ discard, expire

    def discard(self, owner: User, siid: int, sid: int) -> None:
        """DELETE: drop the partial or complete overlay (204); 404 when there is none."""
        scan_id, _ = self.owned_scan(owner, siid, sid)
        after = _AfterCommit()
        with self.database.session() as session:
            upload = rows.lock_upload(session, scan_id)
            scan = session.get(Scan, scan_id)
            if scan is None or (upload is None and scan.overlay_key is None):
                raise NotFound(f"scan {sid} has no overlay")
            if upload is not None:
                if upload.storage_handle:
                    after.partials.append(upload.storage_handle)
                self.digests.forget(upload.id)
                rows.delete_upload(session, upload)
            if scan.overlay_key:
                after.keys.append(scan.overlay_key)
            scan.overlay_key = scan.overlay_name = scan.overlay_size = scan.overlay_sha256 = None
            scan.binaries_received = scan.binaries_extracted = False
        self._cleanup(after)

    def expire_idle(self, scan_id: int | None = None) -> int:
        """Delete partial uploads idle longer than the expiry, with their storage; returns how many."""
        idle_since = datetime.now(UTC) - timedelta(seconds=self.settings.upload_expiry_seconds)
        with self.database.session() as session:
            if scan_id is None:
                candidates = rows.idle_partial_uploads(session, idle_since)
            else:
                upload = rows.find_upload(session, scan_id)
                idle = upload is not None and upload.state == "partial" and upload.last_activity < idle_since
                candidates = [scan_id] if idle else []
        expired = 0
        for candidate in candidates:
            after = _AfterCommit()
            with self.database.session() as session:
                upload = rows.lock_upload(session, candidate)
                if upload is None or upload.state != "partial" or upload.last_activity >= idle_since:
                    continue
                if upload.storage_handle:
                    after.partials.append(upload.storage_handle)
                rows.forget_chunks(session, upload.id)
                upload.state, upload.storage_handle, upload.received_bytes, upload.total_bytes = \
                    "expired", None, 0, None
                self.digests.forget(upload.id)
            self._cleanup(after)
            expired += 1
        if expired:
            log.info("collected %d idle partial overlay uploads", expired)
        return expired

    # ------------------------------------------------------------ helpers

    def _answer(self, scan: Scan, upload: OverlayUpload | None, owner: User) -> Answer:
        session_progress = _progress_of(scan, upload) or (0, None)
        received, total = session_progress
        return Answer(resources.scan(scan, owner.login_name, overlay_progress=(received, total)), received, total)

    def _cleanup(self, after: _AfterCommit) -> None:
        for handle in after.partials:
            self.blobs.abort_partial(handle)
        for key in after.keys:
            self.blobs.delete(key)


def _progress_of(scan: Scan | None, upload: OverlayUpload | None) -> tuple[int, int | None] | None:
    if upload is not None:
        return upload.received_bytes, upload.total_bytes
    if scan is not None and scan.overlay_key is not None:
        return scan.overlay_size, scan.overlay_size
    return None
