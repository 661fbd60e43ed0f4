"""Scans: receiving a report, listing, reading, renaming, cancelling and deleting scans."""

import uuid

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ..db import contents, queries
from ..db.models import Scan, User
from ..errors import BadRequest
from ..jobs import enqueue
from ..jobs.ingest import INGEST_REPORT
from ..multipart import first_part
from ..streams import stream_into
from ..wire import resources
from ..wire.negotiation import no_content, read_resource, render
from .deps import Services, db_session, migration_user, services

router = APIRouter(tags=["scans"])
SCAN = "/users/{uid}/scannedinstances/{siid}/scans/{sid}"


def scan_list(owner: User, scans: list[Scan], total: int) -> dict:
    return resources.listing("scans", [resources.scan(scan, owner.login_name) for scan in scans], total)


# ---------------------------------------------------------------- receiving a report


@router.post("/users/{uid}/scannedinstances/{siid}/scans", status_code=201)
async def upload_report(request: Request, siid: int, crc: int | None = None,
                        reportFileName: str = "report.jsonl.gz",
                        owner: User = Depends(migration_user), app: Services = Depends(services)):
    """Store the report (raw body or one multipart file part) while checking its CRC-32, then queue ingestion."""
    if crc is None:
        raise BadRequest("the query must carry crc=<CRC-32 of the report> so that the upload can be checked")
    await run_in_threadpool(_check_instance, app, owner, siid)
    blocks = request.stream()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        blocks = first_part(blocks, content_type)
    blob_prefix = f"scans/{uuid.uuid4().hex}/"
    with app.blobs.writer(blob_prefix + "report.jsonl.gz") as writer:
        received = await stream_into(blocks, writer, app.settings.max_report_size, "report")
        if received.size == 0:
            raise BadRequest("the report is empty")
        if received.crc32 != crc:
            raise BadRequest(f"the report's CRC-32 is {received.crc32}, not {crc} as announced: "
                             f"it was damaged on the way; send it again")
        resource = await run_in_threadpool(_insert_scan, app, owner, siid, blob_prefix, reportFileName,
                                           received.size, crc, writer)
    app.jobs.wake()
    return render(request, "scan", resource, 201)


def _check_instance(app: Services, owner: User, siid: int) -> None:
    with app.database.session() as session:
        queries.get_instance(session, owner, siid)


def _insert_scan(app: Services, owner: User, siid: int, blob_prefix: str, file_name: str, size: int,
                 crc: int, writer) -> dict:
    with app.database.session() as session:
        instance = queries.get_instance(session, owner, siid)
        number = session.scalar(select(func.count()).where(Scan.instance_id == instance.id)) + 1
        scan = Scan(instance_id=instance.id, name=f"{instance.name} #{number}", blob_prefix=blob_prefix,
                    report_file_name=file_name, report_size=size, report_crc=crc, scanned=True,
                    percentage=5, status_message="report received; waiting to be ingested")
        session.add(scan)
        session.flush()
        enqueue(session, INGEST_REPORT, scan.id)
        writer.commit()  # the blob becomes visible only with the row that names it
        return resources.scan(scan, owner.login_name)


# ---------------------------------------------------------------- the scans of an instance


@router.get("/users/{uid}/scannedinstances/{siid}/scans")
def list_instance_scans(request: Request, siid: int, query: str | None = None, orderBy: str | None = None,
                        descending: bool = False, offset: int = 0, count: int | None = None,
                        ongoing: bool = False, includeStats: bool = True, delta: bool = False,
                        owner: User = Depends(migration_user), session: Session = Depends(db_session)):
    instance = queries.get_instance(session, owner, siid)
    select_scans = select(Scan).where(Scan.instance_id == instance.id)
    if query:
        select_scans = select_scans.where(Scan.name.contains(query, autoescape=True))
    if ongoing:
        select_scans = select_scans.where(~Scan.complete, ~Scan.error, ~Scan.cancelled)
    total = queries.count(session, select_scans)
    column = queries.order_column(queries.SCAN_ORDER, orderBy, Scan.id)
    select_scans = queries.page(select_scans.order_by(column.desc() if descending else column.asc(), Scan.id),
                                offset, count)
    return render(request, "scans", scan_list(owner, list(session.scalars(select_scans)), total))


@router.delete("/users/{uid}/scannedinstances/{siid}/scans")
def delete_instance_scans(siid: int, owner: User = Depends(migration_user), app: Services = Depends(services)):
    with app.database.session() as session:
        instance = queries.get_instance(session, owner, siid)
        prefixes = queries.delete_scans(session, list(session.scalars(
            select(Scan).where(Scan.instance_id == instance.id))))
    _delete_blobs(app, prefixes)
    return no_content()


# ---------------------------------------------------------------- one scan


@router.get(SCAN)
def get_scan(request: Request, siid: int, sid: int, validated: bool = True, pkgs: bool = True,
             added: bool = True, pkgFiles: bool = True, dir: str | None = None, rellevel: bool = False,
             delta: bool = False, owner: User = Depends(migration_user), session: Session = Depends(db_session)):
    scan = queries.get_scan(session, owner, siid, sid)
    extra = {"packages": _embedded_packages(session, scan, owner, pkgFiles)} if pkgs and scan.validated else None
    progress = request.app.state.overlay_uploads.progress(scan.id)
    return render(request, "scan", resources.scan(scan, owner.login_name, extra, progress))


def _embedded_packages(session: Session, scan: Scan, owner: User, with_files: bool) -> list[dict]:
    uri = resources.scan_uri(owner.login_name, scan.instance_id, scan.id)
    rows = list(session.scalars(contents.packages_query(scan.id)))
    changed = contents.changed_files_of_packages(session, scan.id, [row.key for row in rows]) if with_files else {}
    return [resources.scanned_package(
        row, uri, scan.instance_id,
        modified_files=[resources.scanned_file(f, uri, scan.instance_id) for f in changed.get(row.key, [])]
        if with_files else None) for row in rows]


@router.put(SCAN)
async def update_scan(request: Request, siid: int, sid: int, acceptAll: bool = False,
                      owner: User = Depends(migration_user), app: Services = Depends(services)):
    body = await read_resource(request, "scan", app.settings.max_xml_body)
    resource = await run_in_threadpool(_rename_scan, app, owner, siid, sid, body.get("name"))
    return render(request, "scan", resource)


def _rename_scan(app: Services, owner: User, siid: int, sid: int, name: str | None) -> dict:
    with app.database.session() as session:
        scan = queries.get_scan(session, owner, siid, sid, lock=True)
        if name is not None:
            if not name.strip() or len(name) > 255:
                raise BadRequest("a scan name has 1 to 255 characters")
            scan.name = name.strip()
        session.flush()
        return resources.scan(scan, owner.login_name)


@router.delete(SCAN)
def delete_scan(siid: int, sid: int, owner: User = Depends(migration_user), app: Services = Depends(services)):
    with app.database.session() as session:
        prefixes = queries.delete_scans(session, [queries.get_scan(session, owner, siid, sid)])
    _delete_blobs(app, prefixes)
    return no_content()


@router.delete(SCAN + "/status")
def cancel_scan(request: Request, siid: int, sid: int, owner: User = Depends(migration_user),
                app: Services = Depends(services)):
    with app.database.session() as session:
        scan = queries.get_scan(session, owner, siid, sid, lock=True)
        if not (scan.complete or scan.error or scan.cancelled):
            scan.cancelled = True
            scan.status_message = "cancelled by the user"
            session.flush()
        status = resources.op_status(scan, resources.scan_uri(owner.login_name, siid, sid))
    return render(request, "status", status)


# ---------------------------------------------------------------- all the scans of a user


@router.get("/users/{uid}/scans")
def list_user_scans(request: Request, id: str | None = None, index: int = 0, max: int | None = None,
                    orderby: str | None = None, asc: bool = True, owner: User = Depends(migration_user),
                    session: Session = Depends(db_session)):
    select_scans = queries.user_scans_query(owner)
    ids = queries.parse_id_list(id)
    if ids is not None:
        select_scans = select_scans.where(Scan.id.in_(ids))
    total = queries.count(session, select_scans)
    column = queries.order_column(queries.SCAN_ORDER, orderby, Scan.id)
    select_scans = queries.page(select_scans.order_by(column.asc() if asc else column.desc(), Scan.id),
                                index, max)
    return render(request, "scans", scan_list(owner, list(session.scalars(select_scans)), total))


@router.delete("/users/{uid}/scans")
def delete_user_scans(id: str | None = None, owner: User = Depends(migration_user),
                      app: Services = Depends(services)):
    ids = queries.parse_id_list(id)
    if not ids:
        raise BadRequest("name the scans to delete: id=<id>[,<id>...] (to delete everything, "
                         "DELETE the scanned instances)")
    with app.database.session() as session:
        scans = list(session.scalars(queries.user_scans_query(owner).where(Scan.id.in_(ids))))
        prefixes = queries.delete_scans(session, scans)
    _delete_blobs(app, prefixes)
    return no_content()


def _delete_blobs(app: Services, prefixes: list[str]) -> None:
    for prefix in prefixes:
        app.blobs.delete_prefix(prefix)
