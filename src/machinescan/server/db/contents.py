"""Queries over what a scan found: packages, files, per-directory change counts, and the difference of two scans.

Every list is filtered, ordered and paged by the database through the (scan_id, …) indexes; nothing here
loads a whole scan.
"""

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Select, and_, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from ..errors import BadRequest
from .models import Scan, ScannedFile, ScannedPackage

CHANGE_TYPES = ("unchanged", "added", "modified", "metadata", "deleted")
CHANGED = ("added", "modified", "metadata", "deleted")


def normal_directory(directory: str | None) -> str:
    if not directory:
        return "/"
    if not directory.startswith("/") or "\x00" in directory:
        raise BadRequest(f"dir must be an absolute path, got {directory!r}")
    return "/" + directory.strip("/") if directory.strip("/") else "/"


def under(directory: str, direct_only: bool = False):
    """Files in `directory` (only its direct entries when `direct_only`, else its whole subtree).

    A subtree is a range of the path index: paths sort by bytes, and every path below `/a/b` lies
    between `/a/b/` and `/a/b0` ('0' follows '/').
    """
    subtree = ScannedFile.path != "/" if directory == "/" else and_(
        ScannedFile.path > directory + "/", ScannedFile.path < directory + "0")
    return and_(subtree, ScannedFile.directory == directory) if direct_only else subtree


# ---------------------------------------------------------------- packages


def packages_query(scan_id: int, search: str | None = None, modified_only: bool = False) -> Select:
    query = select(ScannedPackage).where(ScannedPackage.scan_id == scan_id)
    if search:
        query = query.where(ScannedPackage.name.contains(search, autoescape=True))
    if modified_only:
        query = query.where(ScannedPackage.modified)
    return query.order_by(ScannedPackage.name, ScannedPackage.arch, ScannedPackage.id)


def changed_files_of_packages(session: Session, scan_id: int, keys: list[str]) -> dict[str, list[ScannedFile]]:
    """The changed files of several packages (by key) in one query, for `pkgFiles`."""
    grouped: dict[str, list[ScannedFile]] = defaultdict(list)
    if keys:
        query = select(ScannedFile).where(ScannedFile.scan_id == scan_id, ScannedFile.package.in_(keys),
                                          ScannedFile.change.in_(CHANGED)).order_by(ScannedFile.path)
        for row in session.scalars(query):
            grouped[row.package].append(row)
    return grouped


# ---------------------------------------------------------------- files


@dataclass
class FileFilter:
    change_types: tuple[str, ...] = CHANGED
    directory: str = "/"
    direct_only: bool = False
    search: str | None = None
    package: str | None = None


def file_filter(added: bool = True, pkg_files: bool = True, change_type: str | None = None,
                directory: str | None = None, rellevel: bool = False, search: str | None = None) -> FileFilter:
    """The UForge switches: `added` (files no package owns), `pkgFiles` (changed package files); our
    `changeType` (a comma list of change types, or `all`) overrides both."""
    if change_type:
        wanted = CHANGE_TYPES if change_type == "all" else tuple(change_type.split(","))
        unknown = set(wanted) - set(CHANGE_TYPES)
        if unknown:
            raise BadRequest(f"changeType must be among {', '.join(CHANGE_TYPES)} or all, got {change_type!r}")
    else:
        wanted = (("added",) if added else ()) + (("modified", "metadata", "deleted") if pkg_files else ())
    return FileFilter(tuple(wanted), normal_directory(directory), rellevel, search)


def files_query(scan_id: int, selection: FileFilter) -> Select:
    query = select(ScannedFile).where(ScannedFile.scan_id == scan_id,
                                      ScannedFile.change.in_(selection.change_types),
                                      under(selection.directory, selection.direct_only))
    if selection.search:
        query = query.where(ScannedFile.path.contains(selection.search, autoescape=True))
    if selection.package:
        every_owner = literal(" ") + ScannedFile.packages + literal(" ")
        query = query.where(or_(ScannedFile.package == selection.package,
                                every_owner.contains(f" {selection.package} ", autoescape=True)))
    return query.order_by(ScannedFile.path, ScannedFile.id)


# ---------------------------------------------------------------- per-directory counts


@dataclass
class DirectoryCounts:
    added: int = 0
    changed: int = 0
    deleted: int = 0

    def add(self, other: "DirectoryCounts") -> None:
        self.added += other.added
        self.changed += other.changed
        self.deleted += other.deleted


def directory_counts(session: Session, scan_id: int, directory: str, max_depth: int,
                     types: tuple[str, ...], search: str | None) -> dict[str, DirectoryCounts]:
    """Added / changed / deleted counts of every folder under `directory`, down to `max_depth` levels below
    it; deeper folders count in their ancestor at that depth. The database groups by folder, so Python only
    sees one row per folder."""
    change_of = {"added": ("added",), "changed": ("modified", "metadata"), "deleted": ("deleted",)}
    wanted = tuple(change for kind in types for change in change_of[kind])
    query = (select(ScannedFile.directory, ScannedFile.change, func.count())
             .where(ScannedFile.scan_id == scan_id, ScannedFile.change.in_(wanted), under(directory))
             .group_by(ScannedFile.directory, ScannedFile.change))
    if search:
        query = query.where(ScannedFile.path.contains(search, autoescape=True))
    totals: dict[str, DirectoryCounts] = defaultdict(DirectoryCounts)
    base_depth = 0 if directory == "/" else directory.count("/")
    for folder, change, count in session.execute(query):
        parts = folder.strip("/").split("/") if folder != "/" else []
        kept = "/" + "/".join(parts[:base_depth + max_depth]) if parts else "/"
        counts = DirectoryCounts(count if change == "added" else 0,
                                 count if change in ("modified", "metadata") else 0,
                                 count if change == "deleted" else 0)
        totals[kept].add(counts)
    return totals


# ---------------------------------------------------------------- two scans compared


def previous_scan_id(session: Session, scan: Scan) -> int | None:
    return session.scalar(select(Scan.id).where(Scan.instance_id == scan.instance_id, Scan.id < scan.id,
                                                Scan.validated).order_by(Scan.id.desc()).limit(1))


def _same_file():
    other = aliased(ScannedFile)
    same = and_(other.kind == ScannedFile.kind, _equal(other.size, ScannedFile.size),
                _equal(other.sha256, ScannedFile.sha256), _equal(other.mode, ScannedFile.mode),
                _equal(other.uid, ScannedFile.uid), _equal(other.gid, ScannedFile.gid),
                _equal(other.link_target, ScannedFile.link_target))
    return other, same


def _equal(left, right):
    return or_(left == right, and_(left.is_(None), right.is_(None)))


def files_differing(scan_a: int, scan_b: int, selection: FileFilter) -> tuple[Select, Select]:
    """Two queries: files of B that are new or different from A (each with A's row or None), and files of A
    that B no longer has. Paths present in both and equal are left out; deleted entries count as absent."""
    in_a, same = _same_file()
    present_b = and_(ScannedFile.scan_id == scan_b, ScannedFile.change != "deleted",
                     under(selection.directory, selection.direct_only))
    new_or_changed = (select(ScannedFile, in_a)
                      .outerjoin(in_a, and_(in_a.scan_id == scan_a, in_a.path == ScannedFile.path,
                                            in_a.change != "deleted"))
                      .where(present_b, or_(in_a.id.is_(None), ~same)))
    in_b = aliased(ScannedFile)
    gone = (select(ScannedFile)
            .outerjoin(in_b, and_(in_b.scan_id == scan_b, in_b.path == ScannedFile.path, in_b.change != "deleted"))
            .where(ScannedFile.scan_id == scan_a, ScannedFile.change != "deleted",
                   under(selection.directory, selection.direct_only), in_b.id.is_(None)))
    if selection.search:
        new_or_changed = new_or_changed.where(ScannedFile.path.contains(selection.search, autoescape=True))
        gone = gone.where(ScannedFile.path.contains(selection.search, autoescape=True))
    return new_or_changed.order_by(ScannedFile.path), gone.order_by(ScannedFile.path)


def packages_differing(session: Session, scan_a: int, scan_b: int) -> list[tuple[str, ScannedPackage,
                                                                                   ScannedPackage | None]]:
    """(comparison, package, other) for packages added in B, removed from A, or of another version."""
    def by_key(scan_id: int) -> dict:
        rows = session.scalars(select(ScannedPackage).where(ScannedPackage.scan_id == scan_id))
        return {(row.manager, row.name, row.arch): row for row in rows}

    # Packages number in the thousands, not hundreds of thousands: comparing them in Python is fine.
    old, new = by_key(scan_a), by_key(scan_b)
    result = []
    for key in sorted(set(old) | set(new), key=lambda k: (k[1], k[2] or "", k[0])):
        before, after = old.get(key), new.get(key)
        if before is None:
            result.append(("added", after, None))
        elif after is None:
            result.append(("removed", before, None))
        elif (before.epoch, before.version, before.release) != (after.epoch, after.version, after.release):
            result.append(("changed", after, before))
    return result
