"""What a scan found: packages, files, the per-directory delta, comparisons and the install profile."""

import json
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ..db import contents, queries
from ..db.models import Scan, ScannedPackage, User
from ..errors import BadRequest, Conflict, NotFound
from ..file_archive import chosen_files
from ..wire import resources
from ..wire.negotiation import read_resource, render
from .deps import Services, db_session, migration_user, services
from .overlay import content_disposition

router = APIRouter(tags=["scan contents"])
SCAN = "/users/{uid}/scannedinstances/{siid}/scans/{sid}"
MAX_COMPARE_FILES = 10000
ARCHIVE_TYPES = {"application/gzip", "application/x-gzip", "application/x-tar", "application/x-compressed-tar",
                 "application/octet-stream"}


def ingested_scan(session: Session, owner: User, siid: int, sid: int) -> Scan:
    scan = queries.get_scan(session, owner, siid, sid)
    if not scan.validated:
        state = scan.error_message if scan.error else (scan.status_message or "waiting")
        raise Conflict(f"scan {sid} has no ingested report yet ({state})")
    return scan


def other_scan(session: Session, owner: User, reference: str) -> Scan:
    """A scan named by id or by URI (`users/u/scannedinstances/1/scans/2`); only the caller's own."""
    parts = reference.strip().strip("/").split("/")
    try:
        if len(parts) == 1:
            scan_id = int(parts[0])
            # Looked up among the owner's scans only: another user's scan is as absent as a missing one.
            scan = session.scalar(queries.user_scans_query(owner).where(Scan.id == scan_id))
            if scan is None:
                raise NotFound(f"no scan {scan_id}")
            return ingested_scan(session, owner, scan.instance_id, scan_id)
        siid, sid = int(parts[parts.index("scannedinstances") + 1]), int(parts[parts.index("scans") + 1])
    except (ValueError, IndexError):
        raise BadRequest(f"cannot read a scan id or URI from {reference!r}") from None
    return ingested_scan(session, owner, siid, sid)


def delta_base(session: Session, scan: Scan, delta: bool) -> int | None:
    """With `delta=true`, the scan to compare with: the previous ingested scan of the same instance."""
    return contents.previous_scan_id(session, scan) if delta else None


# ---------------------------------------------------------------- packages


@router.get(SCAN + "/packages")
def list_packages(request: Request, siid: int, sid: int, excludeFiles: bool = True, all: bool = True,
                  fromRepo: bool = False, uploaded: bool = False, notSelected: bool = False,
                  compareWith: str | None = None, delta: bool = False, index: int = 0, max: int | None = None,
                  search: str | None = None, owner: User = Depends(migration_user),
                  session: Session = Depends(db_session)):
    scan = ingested_scan(session, owner, siid, sid)
    uri = resources.scan_uri(owner.login_name, siid, sid)
    base = other_scan(session, owner, compareWith).id if compareWith else delta_base(session, scan, delta)
    if base is not None:
        differing = contents.packages_differing(session, base, scan.id)
        page = differing[index:index + (max or queries.MAX_PAGE)]
        items = [resources.scanned_package(row, uri, siid, comparison=how, previous=previous)
                 for how, row, previous in page]
        return render(request, "scannedPackages", resources.listing("scannedPackages", items, len(differing)))
    query = contents.packages_query(scan.id, search, modified_only=not all)
    total = queries.count(session, query)
    rows = list(session.scalars(queries.page(query, index, max)))
    modified = contents.changed_files_of_packages(session, scan.id, [row.key for row in rows]) \
        if not excludeFiles else {}
    items = [resources.scanned_package(
        row, uri, siid, modified_files=[resources.scanned_file(f, uri, siid) for f in modified.get(row.key, [])]
        if not excludeFiles else None) for row in rows]
    return render(request, "scannedPackages", resources.listing("scannedPackages", items, total))


@router.get(SCAN + "/packages/{pid}/files")
def list_package_files(request: Request, siid: int, sid: int, pid: int, dir: str | None = None,
                       rellevel: bool = False, delta: bool = False, index: int = 0, max: int | None = None,
                       owner: User = Depends(migration_user), session: Session = Depends(db_session)):
    scan = ingested_scan(session, owner, siid, sid)
    package = session.get(ScannedPackage, pid)
    if package is None or package.scan_id != scan.id:
        raise NotFound(f"no package {pid} in scan {sid}")
    selection = contents.file_filter(change_type="all", directory=dir, rellevel=rellevel)
    selection.package = package.key
    if delta:
        selection.change_types = contents.CHANGED
    return _file_listing(request, session, scan, owner, selection, index, max)


# ---------------------------------------------------------------- files


@router.get(SCAN + "/files")
def list_files(request: Request, siid: int, sid: int, added: bool = True, pkgFiles: bool = True,
               dir: str | None = None, rellevel: bool = False, delta: bool = False, limit: int | None = None,
               index: int = 0, max: int | None = None, search: str | None = None, changeType: str | None = None,
               compareWith: str | None = None, owner: User = Depends(migration_user),
               session: Session = Depends(db_session)):
    scan = ingested_scan(session, owner, siid, sid)
    selection = contents.file_filter(added, pkgFiles, changeType, dir, rellevel, search)
    base = other_scan(session, owner, compareWith).id if compareWith else delta_base(session, scan, delta)
    if _wants_archive(request):
        return _files_archive(request, session, scan, base, selection)
    if base is not None:
        return _compared_files(request, session, scan, owner, base, selection, index, max or limit)
    return _file_listing(request, session, scan, owner, selection, index, max or limit)


def _file_listing(request: Request, session: Session, scan: Scan, owner: User,
                  selection: contents.FileFilter, index: int, max_items: int | None):
    query = contents.files_query(scan.id, selection)
    if _wants_text(request):
        return _paths_as_text(request, query)
    total = queries.count(session, query)
    uri = resources.scan_uri(owner.login_name, scan.instance_id, scan.id)
    items = [resources.scanned_file(row, uri, scan.instance_id)
             for row in session.scalars(queries.page(query, index, max_items))]
    return render(request, "scannedFiles", resources.listing("scannedFiles", items, total))


def _wants_archive(request: Request) -> bool:
    """`Accept` names only archive types: the client wants the files themselves, not a listing."""
    accepted = {part.split(";")[0].strip() for part in request.headers.get("accept", "").split(",")} - {""}
    return bool(accepted) and accepted <= ARCHIVE_TYPES


def _files_archive(request: Request, session: Session, scan: Scan, base: int | None,
                   selection: contents.FileFilter) -> StreamingResponse:
    """A tar.gz of the chosen files (those new or changed since `base` when given), cut from the overlay."""
    if scan.overlay_key is None or not scan.binaries_extracted:
        raise NotFound(f"scan {scan.id} has no checked overlay to take files from")
    query = contents.files_differing(base, scan.id, selection)[0] if base is not None \
        else contents.files_query(scan.id, selection)
    wanted = {path.lstrip("/") for path in session.scalars(query.with_only_columns(contents.ScannedFile.path))}
    name = f"{scan.instance.name}-scan{scan.id}-files.tar.gz"
    return StreamingResponse(chosen_files(request.app.state.services.blobs, scan.overlay_key, wanted),
                             media_type="application/gzip",
                             headers={"Content-Disposition": content_disposition(name)})


def _wants_text(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/plain" in accept and "application/xml" not in accept and "application/json" not in accept


def _paths_as_text(request: Request, query) -> StreamingResponse:
    """Every matching path, one a line, streamed in pages from a fresh session (no page limit)."""
    database = request.app.state.services.database

    def lines() -> Iterator[bytes]:
        with database.session() as session:
            for row in session.execute(query.with_only_columns(
                    contents.ScannedFile.path).execution_options(yield_per=5000)):
                yield row.path.encode() + b"\n"

    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")


def _compared_files(request: Request, session: Session, scan: Scan, owner: User, base: int,
                    selection: contents.FileFilter, index: int, max_items: int | None):
    """Files that differ from scan `base`: new or changed ones first, then those that are gone."""
    new_or_changed, gone = contents.files_differing(base, scan.id, selection)
    uri = resources.scan_uri(owner.login_name, scan.instance_id, scan.id)
    first_total = queries.count(session, new_or_changed)
    total = first_total + queries.count(session, gone)
    limit = min(max_items or queries.MAX_PAGE, queries.MAX_PAGE)
    items = [resources.scanned_file(row, uri, scan.instance_id, "added" if before is None else "modified")
             for row, before in session.execute(new_or_changed.offset(index).limit(limit))]
    if len(items) < limit:
        offset = max(0, index - first_total)
        items += [resources.scanned_file(row, uri, scan.instance_id, "deleted")
                  for row in session.scalars(gone.offset(offset).limit(limit - len(items)))]
    return render(request, "scannedFiles", resources.listing("scannedFiles", items, total))


@router.get(SCAN + "/files/delta")
def files_delta(request: Request, siid: int, sid: int, dir: str = "/",
                max_depth: int = Query(1, alias="max-depth", ge=0, le=64),
                filter_by_type: str = Query("added,changed,deleted", alias="filter-by-type"),
                search: str | None = None, compareWith: str | None = None,
                owner: User = Depends(migration_user), session: Session = Depends(db_session)):
    scan = ingested_scan(session, owner, siid, sid)
    if compareWith:
        raise BadRequest("files/delta with compareWith is not supported; use files?compareWith=")
    directory = contents.normal_directory(dir)
    types = tuple(kind.strip().lower() for kind in filter_by_type.split(",") if kind.strip())
    if not types or set(types) - {"added", "changed", "deleted"}:
        raise BadRequest("filter-by-type is a comma list of added, changed, deleted")
    counts = contents.directory_counts(session, scan.id, directory, max_depth, types, search)
    uri = resources.scan_uri(owner.login_name, siid, sid)
    selection = contents.FileFilter(_types_to_changes(types), directory, True, search)
    files = [resources.scanned_file(row, uri, siid)
             for row in session.scalars(queries.page(contents.files_query(scan.id, selection), 0, None))]
    return render(request, "scannedDirectory", _tree(directory, counts, files))


def _types_to_changes(types: tuple[str, ...]) -> tuple[str, ...]:
    mapping = {"added": ("added",), "changed": ("modified", "metadata"), "deleted": ("deleted",)}
    return tuple(change for kind in types for change in mapping[kind])


def _tree(directory: str, counts: dict, files: list[dict]) -> dict:
    """Nest the counted folders under `directory`; each folder's sums include its subfolders."""
    nodes: dict[str, dict] = {}

    def node(path: str) -> dict:
        if path not in nodes:
            nodes[path] = resources.directory_structure(path, contents.DirectoryCounts(), [])
            if path != directory:
                parent = path.rsplit("/", 1)[0] or "/"
                node(parent)["subDirectories"].append(nodes[path])
        return nodes[path]

    for path, folder_counts in sorted(counts.items()):
        current = path
        while True:
            target = node(current)
            for field, value in (("sumAdded", folder_counts.added), ("sumChanged", folder_counts.changed),
                                 ("sumDeleted", folder_counts.deleted)):
                target[field] += value
            if current == directory:
                break
            current = current.rsplit("/", 1)[0] or "/"
    root = node(directory)
    root_counts = contents.DirectoryCounts(root["sumAdded"], root["sumChanged"], root["sumDeleted"])
    return resources.scanned_directory(directory, root_counts, root["subDirectories"], files)


# ---------------------------------------------------------------- compare and install profile


@router.post(SCAN, status_code=201)
async def compare_scans(request: Request, siid: int, sid: int, owner: User = Depends(migration_user),
                        app: Services = Depends(services)):
    body = await read_resource(request, "scanCompare", app.settings.max_xml_body)
    if not body.get("scanAUri") or not body.get("scanBUri"):
        raise BadRequest("a scanCompare needs scanAUri and scanBUri")
    resource = await run_in_threadpool(_compare, app, owner, siid, sid, body["scanAUri"], body["scanBUri"])
    return render(request, "scanCompare", resource, 201)


def _compare(app: Services, owner: User, siid: int, sid: int, a_uri: str, b_uri: str) -> dict:
    with app.database.session() as session:
        queries.get_scan(session, owner, siid, sid)
        scan_a, scan_b = other_scan(session, owner, a_uri), other_scan(session, owner, b_uri)
        uri_b = resources.scan_uri(owner.login_name, scan_b.instance_id, scan_b.id)
        uri_a = resources.scan_uri(owner.login_name, scan_a.instance_id, scan_a.id)
        packages = [resources.scanned_package(row, uri_b, scan_b.instance_id, comparison=how, previous=previous)
                    for how, row, previous in contents.packages_differing(session, scan_a.id, scan_b.id)]
        selection = contents.file_filter(change_type="all")
        new_or_changed, gone = contents.files_differing(scan_a.id, scan_b.id, selection)
        files = [resources.scanned_file(row, uri_b, scan_b.instance_id, "added" if before is None else "modified")
                 for row, before in session.execute(new_or_changed.limit(MAX_COMPARE_FILES))]
        files += [resources.scanned_file(row, uri_a, scan_a.instance_id, "deleted")
                  for row in session.scalars(gone.limit(MAX_COMPARE_FILES - len(files)))]
        return resources.scan_compare(uri_a, uri_b, packages, files,
                                      f"{uri_b}/files?compareWith={scan_a.id}&changeType=all")


@router.get(SCAN + "/installProfile")
def get_install_profile(request: Request, siid: int, sid: int, owner: User = Depends(migration_user),
                        session: Session = Depends(db_session)):
    scan = ingested_scan(session, owner, siid, sid)
    profile = json.loads(scan.install_profile) if scan.install_profile else {}
    header = json.loads(scan.report_header) if scan.report_header else {}
    memory = (header.get("host") or {}).get("memory_bytes")
    uri = resources.scan_uri(owner.login_name, siid, sid) + "/installProfile"
    return render(request, "installProfile", resources.install_profile(profile, uri, memory))
