"""Ingest a stored report: packages and files into the database in batches, then counters and profile."""

import base64
import json
import queue
import threading

from sqlalchemy import delete, select, update

from ...report import ReportError, read_report
from ..db.bulk import insert_rows
from ..db.models import Scan, ScannedFile, ScannedInstance, ScannedPackage
from ..lifecycle import report_ingested
from . import JobContext, handler

INGEST_REPORT = "ingest_report"
BATCH_ROWS = 20000

PACKAGE_COLUMNS = ("scan_id", "manager", "name", "key", "version", "release", "epoch", "arch", "installed_size",
                   "install_time", "source", "files", "status", "modified", "missing_files")
FILE_COLUMNS = ("scan_id", "path", "path_b64", "directory", "kind", "mode", "uid", "gid", "owner", "group",
                "size", "mtime", "nlink", "sha256", "link_target", "package", "packages", "change", "changed",
                "conffile", "in_overlay", "uploaded", "note")


class BlockReader:
    """A read()-able view of the blob store's block iterator that counts the bytes read (for progress)."""

    def __init__(self, blocks):
        self._blocks = iter(blocks)
        self._pending = b""
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            block = next(self._blocks, None)
            if block is None:
                break
            self._pending += block
        if size < 0:
            size = len(self._pending)
        piece, self._pending = self._pending[:size], self._pending[size:]
        self.bytes_read += len(piece)
        return piece


def text_path(value) -> tuple[str, str | None]:
    """A report path as (text, base64 of the exact bytes when they are not UTF-8)."""
    if type(value) is str:
        return value, None
    raw = base64.b64decode(value["b64"])
    return raw.decode("utf-8", "replace"), value["b64"]


def package_row(scan_id: int, record: dict) -> tuple:
    get = record.get
    return (scan_id, record["manager"], record["name"], get("key") or record["name"], record["version"],
            get("release"), get("epoch"),
            get("arch"), get("installed_size"), _text(get("install_time")), get("source"), get("files"),
            get("status"), bool(get("modified")), get("missing_files") or 0)


def file_row(scan_id: int, record: dict) -> tuple:
    get = record.get
    path, path_b64 = text_path(record["path"])
    target = get("link_target")
    owners = get("packages") or ()
    changed = get("changed")
    return (scan_id, path, path_b64, path[:path.rindex("/")] or "/", record["kind"], get("mode"), get("uid"),
            get("gid"), get("owner"), get("group"), get("size"), get("mtime"), get("nlink"), get("sha256"),
            text_path(target)[0] if target is not None else None, owners[0] if owners else None,
            " ".join(owners) or None, record["change"], ",".join(changed) if changed else None,
            bool(get("conffile")), bool(get("in_overlay")), False, get("note"))


def _absolute(path) -> bool:
    return path.startswith("/") if type(path) is str else base64.b64decode(path["b64"]).startswith(b"/")


def _text(value):
    return None if value is None else str(value)


class Totals:
    def __init__(self) -> None:
        self.packages = 0
        self.changes = {"added": 0, "modified": 0, "deleted": 0}
        self.overlay_bytes = 0


@handler(INGEST_REPORT)
def ingest_report(context: JobContext) -> None:
    services = context.services
    with services.database.session() as session:
        scan = session.get(Scan, context.scan_id)
        key, report_size = scan.report_blob, scan.report_size or 1
        scan.percentage, scan.status_message = 10, "ingesting the report"
    clear_rows(services, context.scan_id)
    reader = BlockReader(services.blobs.read(key))
    try:
        parsed = _load(context, reader, report_size)
    except ReportError as error:
        clear_rows(services, context.scan_id)
        _fail(services, context.scan_id, f"the report is invalid: {error}; run the agent again")
        return
    except BaseException:
        clear_rows(services, context.scan_id)
        raise
    _finish(services, context.scan_id, parsed.header, parsed.profile, parsed.totals)


class ParsedReport:
    """What the parsing thread learns besides the rows, and the error that stopped it, if any."""

    def __init__(self) -> None:
        self.header: dict | None = None
        self.profile: dict | None = None
        self.totals = Totals()
        self.error: BaseException | None = None


_END = object()


def _load(context: JobContext, reader: BlockReader, report_size: int) -> ParsedReport:
    """Parse in one thread while this one inserts: the database works (without the GIL) while Python parses.
    The queue holds two batches at most, so memory stays bounded whatever the report's size."""
    batches: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    parsed = ParsedReport()
    parser = threading.Thread(target=_parse, args=(context.scan_id, reader, report_size, batches, stop, parsed),
                              name=f"parse-report-{context.scan_id}", daemon=True)
    parser.start()
    try:
        while (batch := batches.get()) is not _END:
            _flush(context, *batch)
    finally:
        stop.set()
        while parser.is_alive():  # let a parser blocked on a full queue see `stop`
            try:
                batches.get(timeout=0.1)
            except queue.Empty:
                pass
    if parsed.error is not None:
        raise parsed.error
    return parsed


def _parse(scan_id: int, reader: BlockReader, report_size: int, batches: queue.Queue, stop: threading.Event,
           parsed: ParsedReport) -> None:
    packages: list[tuple] = []
    files: list[tuple] = []
    totals = parsed.totals
    try:
        for line, record in read_report(reader):
            kind = record["type"]
            if kind == "file":
                if not _absolute(record["path"]):
                    raise ReportError(f"file path {record['path']!r} is not absolute", line)
                files.append(file_row(scan_id, record))
                change = "modified" if record["change"] == "metadata" else record["change"]
                if change in totals.changes:
                    totals.changes[change] += 1
                if record.get("in_overlay") and record.get("size"):
                    totals.overlay_bytes += record["size"]
                if len(files) >= BATCH_ROWS:
                    if not _hand_over(batches, stop, (packages, files, 10 + 80 * reader.bytes_read // report_size)):
                        return
                    packages, files = [], []
            elif kind == "package":
                packages.append(package_row(scan_id, record))
                totals.packages += 1
            elif kind == "header":
                parsed.header = record
            elif kind == "profile":
                parsed.profile = {field: value for field, value in record.items() if field != "type"}
        _hand_over(batches, stop, (packages, files, 90))
    except BaseException as error:
        parsed.error = error
    finally:
        _hand_over(batches, stop, _END)


def _hand_over(batches: queue.Queue, stop: threading.Event, item) -> bool:
    while not stop.is_set():
        try:
            batches.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


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
