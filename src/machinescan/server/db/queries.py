"""Queries over instances and scans: filters, ordering and paging done by the database, never in Python."""

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from ..errors import BadRequest, NotFound
from .models import Scan, ScannedInstance, User

MAX_PAGE = 10000  # items of one page: large enough that a whole scan pages through in a few requests

INSTANCE_ORDER = {
    "name": ScannedInstance.name,
    "created": ScannedInstance.created,
    "lastmodified": ScannedInstance.last_modified,
    "dbid": ScannedInstance.id,
    "id": ScannedInstance.id,
}
SCAN_ORDER = {
    "name": Scan.name,
    "created": Scan.created,
    "lastmodified": Scan.last_modified,
    "dbid": Scan.id,
    "id": Scan.id,
}


def order_column(table: dict, name: str | None, default):
    if not name:
        return default
    column = table.get(name.lower())
    if column is None:
        raise BadRequest(f"cannot order by {name!r}; choose one of {', '.join(sorted(table))}")
    return column


def page(query: Select, index: int, max_items: int | None) -> Select:
    if index < 0:
        raise BadRequest("index must be 0 or more")
    if max_items is not None and max_items < 0:
        raise BadRequest("max must be 0 or more")
    limit = MAX_PAGE if max_items is None else min(max_items, MAX_PAGE)
    return query.offset(index).limit(limit)


def count(session: Session, query: Select) -> int:
    return session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))


def parse_id_list(ids: str | None, name: str = "id") -> list[int] | None:
    if not ids:
        return None
    try:
        return [int(part) for part in ids.split(",") if part.strip()]
    except ValueError:
        raise BadRequest(f"{name} must be a comma-separated list of numbers, got {ids!r}") from None


# ---------------------------------------------------------------- instances


def get_instance(session: Session, owner: User, instance_id: int) -> ScannedInstance:
    instance = session.get(ScannedInstance, instance_id)
    if instance is None or instance.user_id != owner.id:
        raise NotFound(f"no scanned instance {instance_id} for user {owner.login_name!r}")
    return instance


def instances_query(owner: User, name: str | None = None, ids: list[int] | None = None) -> Select:
    query = select(ScannedInstance).where(ScannedInstance.user_id == owner.id)
    if name:
        query = query.where(ScannedInstance.name == name)
    if ids is not None:
        query = query.where(ScannedInstance.id.in_(ids))
    return query


def scans_by_instance(session: Session, instance_ids: Sequence[int]) -> dict[int, list[Scan]]:
    """The scans of several instances in one query."""
    grouped: dict[int, list[Scan]] = defaultdict(list)
    if instance_ids:
        for scan in session.scalars(select(Scan).where(Scan.instance_id.in_(instance_ids)).order_by(Scan.id)):
            grouped[scan.instance_id].append(scan)
    return grouped


def scan_counts(session: Session, instance_ids: Sequence[int]) -> dict[int, int]:
    if not instance_ids:
        return {}
    rows = session.execute(select(Scan.instance_id, func.count()).where(Scan.instance_id.in_(instance_ids))
                           .group_by(Scan.instance_id))
    return dict(rows.tuples().all())


# ---------------------------------------------------------------- scans


def get_scan(session: Session, owner: User, instance_id: int, scan_id: int, lock: bool = False) -> Scan:
    instance = get_instance(session, owner, instance_id)
    query = select(Scan).where(Scan.id == scan_id, Scan.instance_id == instance.id)
    if lock:
        query = query.with_for_update()
    scan = session.scalar(query)
    if scan is None:
        raise NotFound(f"no scan {scan_id} in scanned instance {instance_id}")
    return scan


def user_scans_query(owner: User) -> Select:
    return select(Scan).join(ScannedInstance).where(ScannedInstance.user_id == owner.id)


def delete_scans(session: Session, scans: Sequence[Scan]) -> list[str]:
    """Delete scan rows (their packages and files cascade); returns the blob prefixes to delete after commit."""
    prefixes = [scan.blob_prefix for scan in scans]
    if scans:
        session.execute(delete(Scan).where(Scan.id.in_([scan.id for scan in scans])))
    return prefixes
