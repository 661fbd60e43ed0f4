"""Scanned instances: one per scanned machine name, owning its scans."""

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import queries
from ..db.models import Scan, ScannedInstance, User
from ..errors import BadRequest, Conflict
from ..wire import resources
from ..wire.negotiation import no_content, read_resource, render
from .deps import Services, db_session, migration_user, services

router = APIRouter(tags=["scanned instances"])


def instance_with_scans(session: Session, owner: User, instances: list[ScannedInstance],
                        include_scans: bool) -> list[dict]:
    ids = [instance.id for instance in instances]
    counts = queries.scan_counts(session, ids)
    scans = queries.scans_by_instance(session, ids) if include_scans else {}
    return [
        resources.scanned_instance(
            instance, owner.login_name,
            scans=[resources.scan(scan, owner.login_name) for scan in scans.get(instance.id, [])]
            if include_scans else None,
            total_scans=counts.get(instance.id, 0),
        )
        for instance in instances
    ]


@router.post("/users/{uid}/scannedinstances", status_code=201)
async def create_instance(request: Request, owner: User = Depends(migration_user),
                          app: Services = Depends(services)):
    body = await read_resource(request, "scannedInstance", app.settings.max_xml_body)
    name = (body.get("name") or "").strip()
    if not name or len(name) > 255 or "/" in name or not name.isprintable():
        raise BadRequest("a scanned instance needs a name of 1 to 255 printable characters, without '/'")
    resource = await run_in_threadpool(_insert_instance, app, owner, name, body)
    return render(request, "scannedInstance", resource, 201)


def _insert_instance(app: Services, owner: User, name: str, body: dict) -> dict:
    distribution = body.get("distribution") or {}
    with app.database.session() as session:
        if session.scalar(queries.instances_query(owner, name=name)) is not None:
            raise Conflict(f"a scanned instance named {name!r} already exists")
        instance = ScannedInstance(
            user_id=owner.id, name=name,
            # JSON clients (our agent) may send exactly what they detected; see wire/resources.py.
            distribution_name=_text(distribution.get("detectedName") or distribution.get("name")),
            distribution_version=_text(distribution.get("version")),
            distribution_arch=_text(distribution.get("detectedArch") or distribution.get("arch")),
            platform_type=body.get("platformType"),
            ram_size_mb=body.get("ramSize"), overlay_included=body.get("overlayIncluded"),
        )
        session.add(instance)
        try:
            session.flush()
        except IntegrityError:  # the same name created concurrently
            raise Conflict(f"a scanned instance named {name!r} already exists") from None
        return resources.scanned_instance(instance, owner.login_name, scans=[], total_scans=0)


def _text(value) -> str | None:
    """Detected values are text, whatever JSON type a client sent them as."""
    return None if value is None else str(value)


@router.get("/users/{uid}/scannedinstances")
def list_instances(request: Request, name: str | None = None, id: str | None = None, index: int = 0,
                   max: int | None = None, orderby: str | None = None, asc: bool = True,
                   includeScans: bool = False, delta: bool = False,
                   owner: User = Depends(migration_user), session: Session = Depends(db_session)):
    query = queries.instances_query(owner, name, queries.parse_id_list(id))
    total = queries.count(session, query)
    column = queries.order_column(queries.INSTANCE_ORDER, orderby, ScannedInstance.id)
    query = queries.page(query.order_by(column.asc() if asc else column.desc(), ScannedInstance.id),
                         index, max)
    items = instance_with_scans(session, owner, list(session.scalars(query)), includeScans)
    return render(request, "scannedInstances", resources.listing("scannedInstances", items, total))


@router.delete("/users/{uid}/scannedinstances")
def delete_all_instances(owner: User = Depends(migration_user), app: Services = Depends(services)):
    with app.database.session() as session:
        scans = list(session.scalars(queries.user_scans_query(owner)))
        prefixes = queries.delete_scans(session, scans)
        for instance in session.scalars(queries.instances_query(owner)):
            session.delete(instance)
    for prefix in prefixes:
        app.blobs.delete_prefix(prefix)
    return no_content()


@router.get("/users/{uid}/scannedinstances/{siid}")
def get_instance(request: Request, siid: int, includeScans: bool = False, delta: bool = False,
                 owner: User = Depends(migration_user), session: Session = Depends(db_session)):
    instance = queries.get_instance(session, owner, siid)
    [resource] = instance_with_scans(session, owner, [instance], includeScans)
    return render(request, "scannedInstance", resource)


@router.delete("/users/{uid}/scannedinstances/{siid}")
def delete_instance(siid: int, owner: User = Depends(migration_user), app: Services = Depends(services)):
    with app.database.session() as session:
        instance = queries.get_instance(session, owner, siid)
        prefixes = queries.delete_scans(session, list(session.scalars(select(Scan).where(
            Scan.instance_id == instance.id))))
        session.delete(instance)
    for prefix in prefixes:
        app.blobs.delete_prefix(prefix)
    return no_content()
