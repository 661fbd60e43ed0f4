"""The overlay of a scan: chunked or whole upload, status (HEAD), discard, and download with ranges.

The protocol's rules live in `..uploads`; this router reads the request, calls them and writes the answer.
Every answer about an upload, errors included, carries `Upload-Offset` (and `Upload-Length` once known).
"""

import asyncio
import re
from contextlib import asynccontextmanager
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from .. import uploads
from ..errors import ApiError
from ..jobs import overlay as _verify_job  # noqa: F401  (registers the verify_overlay job)
from ..uploads import OverlayUploads, progress_headers
from ..wire.negotiation import XML, no_content, render, wants_json
from .deps import API_PREFIX, Services, migration_user, services

router = APIRouter(tags=["overlay"])
OVERLAY = "/users/{uid}/scannedinstances/{siid}/scans/{sid}/overlay"
SWEEP_EVERY_SECONDS = 60


def overlay_uploads(request: Request) -> OverlayUploads:
    return request.app.state.overlay_uploads


async def _with_progress(operation, request: Request, scan_key: tuple):
    """Run an upload operation; an error answer gets the upload's progress headers when it lacks them."""
    try:
        return await operation
    except ApiError as error:
        if "Upload-Offset" not in error.headers and error.status_code != 404:
            progress = await _progress(request, *scan_key)
            if progress is not None:
                error.headers.update(progress_headers(*progress))
        raise


async def _progress(request: Request, owner, siid: int, sid: int):
    manager = overlay_uploads(request)
    try:
        scan_id, _ = await run_in_threadpool(manager.owned_scan, owner, siid, sid)
    except ApiError:
        return None
    return await run_in_threadpool(manager.progress, scan_id)


@router.post(OVERLAY, status_code=201)
async def upload_overlay(request: Request, siid: int, sid: int, crc: str | None = None,
                         overlayName: str | None = None, sha256: str | None = None,
                         owner=Depends(migration_user), app: Services = Depends(services)):
    """scanOverlay_uploadChunk (with Content-Range) and scanOverlay_upload (without): upload-protocol.md 1–2."""
    manager = overlay_uploads(request)
    content_range = request.headers.get("content-range")

    async def receive():
        checksum = uploads.parse_crc(crc)
        name = uploads.parse_overlay_name(overlayName)
        expected_sha256 = uploads.parse_sha256(sha256)
        content_length = uploads.parse_content_length(request.headers.get("content-length"))
        if content_range is None:
            uploads.check_whole_limits(content_length, app.settings.max_overlay_size)
            return await manager.receive_whole(request.stream(), owner, siid, sid, checksum, expected_sha256, name)
        chunk = uploads.parse_content_range(content_range)
        uploads.check_chunk_limits(chunk, content_length, app.settings.max_chunk_size,
                                   app.settings.max_overlay_size)
        return await manager.receive_chunk(request.stream(), owner, siid, sid, chunk, checksum,
                                           expected_sha256, name)

    answer = await _with_progress(receive(), request, (owner, siid, sid))
    if app.jobs is not None:
        app.jobs.wake()
    return render(request, "scan", answer.resource, 201, answer.headers)


@router.head(OVERLAY)
async def overlay_status(request: Request, siid: int, sid: int, owner=Depends(migration_user)):
    """200 with Upload-Offset and Upload-Length; 404 before the first byte; 410 once expired."""
    received, total = await run_in_threadpool(overlay_uploads(request).status, owner, siid, sid)
    return Response(status_code=200, headers={**progress_headers(received, total), "Cache-Control": "no-store"})


@router.delete(OVERLAY)
async def discard_overlay(request: Request, siid: int, sid: int, owner=Depends(migration_user)):
    await run_in_threadpool(overlay_uploads(request).discard, owner, siid, sid)
    return no_content()


# ---------------------------------------------------------------- download

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end exclusive) of a single `Range`; None: the whole file; "unsatisfiable": 416."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None  # several ranges or another unit: answering the whole file is allowed
    if not match[1]:
        length = int(match[2])
        return (max(0, size - length), size) if length > 0 else "unsatisfiable"
    start = int(match[1])
    if match[2] and int(match[2]) < start:
        return None  # an invalid range is ignored (RFC 9110, 14.1.1): the whole file
    end = min(int(match[2]) + 1, size) if match[2] else size
    if start >= size:
        return "unsatisfiable"
    return start, end


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = [value.strip().removeprefix("W/") for value in header.split(",")]
    return "*" in candidates or etag in candidates


def content_disposition(name: str) -> str:
    """A header value for any name: plain when it is safe inside quotes, else percent-encoded (RFC 6266)."""
    if name.isascii() and name.isprintable() and not any(character in name for character in '"\\'):
        return f'attachment; filename="{name}"'
    return f"attachment; filename*=UTF-8''{quote(name, safe='')}"


def media_type(name: str) -> str:
    if name.endswith((".tar.gz", ".tgz", ".gz")):
        return "application/gzip"
    if name.endswith(".tar"):
        return "application/x-tar"
    return "application/octet-stream"


@router.get(OVERLAY)
async def download_overlay(request: Request, siid: int, sid: int, owner=Depends(migration_user),
                           app: Services = Depends(services)):
    """The complete archive, with ETag (sha256), Range (206) and If-None-Match (304, never to XML clients)."""
    overlay = await run_in_threadpool(overlay_uploads(request).overlay_file, owner, siid, sid)
    etag = f'"{overlay.sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Disposition": content_disposition(overlay.name),
               **progress_headers(overlay.size, overlay.size)}
    xml_client = XML in request.headers.get("accept", "") and not wants_json(request)
    if _etag_matches(request.headers.get("if-none-match"), etag) and not xml_client:
        return Response(status_code=304, headers=headers)
    wanted = byte_range(request.headers.get("range"), overlay.size)
    if_range = request.headers.get("if-range")
    if if_range and if_range.strip() != etag:
        wanted = None  # the client's copy is another version: send it whole
    if wanted == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{overlay.size}"})
    start, end, status = 0, overlay.size, 200
    if wanted is not None:
        start, end = wanted
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{overlay.size}"
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(app.blobs.read(overlay.key, start, end), status, headers,
                             media_type=media_type(overlay.name))


# ---------------------------------------------------------------- wiring


def install(app: FastAPI) -> None:
    """Serve the overlay operations of `app` (after `app.state.services` is set) and collect idle partial
    uploads while it runs."""
    app.include_router(router, prefix=API_PREFIX)
    manager = OverlayUploads(app.state.services)
    app.state.overlay_uploads = manager
    outer_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running_app):
        async with outer_lifespan(running_app) as state:
            sweeper = asyncio.create_task(_sweep_forever(manager))
            try:
                yield state
            finally:
                sweeper.cancel()

    app.router.lifespan_context = lifespan


async def _sweep_forever(manager: OverlayUploads) -> None:
    interval = max(1, min(SWEEP_EVERY_SECONDS, manager.settings.upload_expiry_seconds // 2))
    while True:
        try:
            await run_in_threadpool(manager.expire_idle)
        except Exception:
            uploads.log.exception("could not collect idle overlay uploads")
        await asyncio.sleep(interval)
