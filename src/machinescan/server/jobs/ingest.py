"""Ingest a stored report: packages and files into the database in batches, then counters and profile."""

import json

from sqlalchemy import delete, select, update

from ...report import ReportError
from ..db.bulk import insert_rows
from ..db.models import Scan, ScannedFile, ScannedInstance, ScannedPackage
from ..lifecycle import report_ingested
from ..report_rows import ChildProcessRows, ReportRows, ThreadRows, Totals
from . import JobContext, handler

INGEST_REPORT = "ingest_report"

PACKAGE_COLUMNS = ("scan_id", "manager", "name", "key", "version", "release", "epoch", "arch", "installed_size",
                   "install_time", "source", "files", "status", "modified", "missing_files")
FILE_COLUMNS = ("scan_id", "path", "path_b64", "directory", "kind", "mode", "uid", "gid", "owner", "group",
                "size", "mtime", "nlink", "sha256", "link_target", "package", "packages", "change", "changed",
                "conffile", "in_overlay", "uploaded", "note")


@handler(INGEST_REPORT)
def ingest_report(context: JobContext) -> None:
    services = context.services
    with services.database.session() as session:
        scan = session.get(Scan, context.scan_id)
        key, report_size = scan.report_blob, scan.report_size or 1
        scan.percentage, scan.status_message = 10, "ingesting the report"
    clear_rows(services, context.scan_id)
    try:
        parsed = _load(context, services.blobs.read(key), report_size)
    except ReportError as error:
        clear_rows(services, context.scan_id)
        _fail(services, context.scan_id, f"the report is invalid: {error}; run the agent again")
        return
    except BaseException:
        clear_rows(services, context.scan_id)
        raise
    _finish(services, context.scan_id, parsed.header, parsed.profile, parsed.totals)


def _load(context: JobContext, blocks, report_size: int) -> ReportRows:
    """Insert batch after batch while the parser makes the next one: in a child process on SQLite, in a thread
    on PostgreSQL (report_rows says why). A few batches at most are in memory, whatever the report's size."""
    on_sqlite = context.services.database.engine.dialect.name == "sqlite"
    with (ChildProcessRows if on_sqlite else ThreadRows)(context.scan_id, blocks) as report:
        for packages, files in report.batches():
            _flush(context, packages, files, 10 + 80 * report.bytes_fed // report_size)
    return report


def _flush(context: JobContext, packages: list[tuple], files: list[tuple], percentage: int) -> None:
    with context.services.database.session() as session:
        context.heartbeat(session)
        connection = session.connection()
        insert_rows(connection, ScannedPackage.__table__, PACKAGE_COLUMNS, packages)
        insert_rows(connection, ScannedFile.__table__, FILE_COLUMNS, files)
        session.execute(update(Scan).where(Scan.id == context.scan_id).values(percentage=percentage))


def clear_rows(services, scan_id: int) -> None:
    """Remove what an earlier, interrupted or failed run of this job inserted."""
    with services.database.session() as session:
        session.execute(delete(ScannedFile).where(ScannedFile.scan_id == scan_id))
        session.execute(delete(ScannedPackage).where(ScannedPackage.scan_id == scan_id))


def _fail(services, scan_id: int, message: str) -> None:
    with services.database.session() as session:
        session.execute(update(Scan).where(Scan.id == scan_id).values(
            error=True, error_message=message, status_message=message, validated=False))


def _finish(services, scan_id: int, header: dict, profile: dict | None, totals: Totals) -> None:
    scan_info = header.get("scan") or {}
    with services.database.session() as session:
        instance = session.scalar(select(ScannedInstance).join(Scan).where(Scan.id == scan_id))
        _describe_instance(instance, header)
        report_ingested(
            session, scan_id, total_packages=totals.packages, total_files_added=totals.changes["added"],
            total_files_modified=totals.changes["modified"], total_files_deleted=totals.changes["deleted"],
            uncompressed_binary_size=totals.overlay_bytes, overlay_expected=bool(scan_info.get("overlay")),
            report_header=json.dumps(header), install_profile=json.dumps(profile) if profile else None,
        )


def _describe_instance(instance: ScannedInstance, header: dict) -> None:
    """The newest report says what the machine is; the first one fixes whether it carries overlays."""
    distribution = header.get("distribution") or {}
    host = header.get("host") or {}
    instance.distribution_name = distribution.get("id") or distribution.get("name") or instance.distribution_name
    instance.distribution_version = distribution.get("version") or instance.distribution_version
    instance.distribution_arch = distribution.get("arch") or host.get("machine") or instance.distribution_arch
    instance.platform_type = host.get("platform_type") or instance.platform_type
    memory = host.get("memory_bytes") or host.get("memory")
    if isinstance(memory, int):
        instance.ram_size_mb = min(memory // (1024 * 1024), 2**31 - 1)
    if instance.overlay_included is None:
        instance.overlay_included = bool((header.get("scan") or {}).get("overlay"))
