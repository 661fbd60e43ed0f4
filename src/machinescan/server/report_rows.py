"""A report's database rows in batches, parsed next to the inserts: in a child process or in a thread.

Why a process for SQLite: parsing is pure Python and holds the GIL all the time, and SQLite's driver gives
the GIL back and takes it again for every row it inserts, so with a parsing thread next to it each insert
waits for the parser's time slice and the two take turns instead of overlapping (the measurements are in
the commit that introduced this module). PostgreSQL does its share of the work in its own server process,
so a thread is enough there, and cheaper than the marshalling a child needs. The child imports only
`machinescan.report` and this module: it never touches the database or the blob store, it reads the
compressed report on its stdin and writes batches of row tuples on its stdout, marshalled (both ends are
the same interpreter).

    python -m machinescan.server.report_rows SCAN_ID  < report.jsonl.gz  > frames
"""

import base64
import contextlib
import marshal
import queue
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field

from ..report import ReportError, read_report

BATCH_ROWS = 20000
_FRAME_LENGTH = struct.Struct("<I")


@dataclass
class Totals:
    packages: int = 0
    changes: dict = field(default_factory=lambda: {"added": 0, "modified": 0, "deleted": 0})
    overlay_bytes: int = 0


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


class ReportRows:
    """Batches of rows as the parser makes them; subclasses say where the parser runs.

    After `batches()` has ended without an error, `header`, `profile` and `totals` hold what the report
    says besides its rows. Use it as a context manager, so that the parser is stopped whatever happens.
    """

    def __init__(self) -> None:
        self.header: dict | None = None
        self.profile: dict | None = None
        self.totals = Totals()

    def __enter__(self) -> "ReportRows":
        return self

    def batches(self):
        """Yield (package rows, file rows) as the parser makes them; ReportError when the report is invalid."""
        while True:
            kind, *payload = self._receive()
            if kind == "rows":
                yield payload
                continue
            self._raise_input_error()
            if kind == "invalid":
                raise ReportError(payload[0])
            header, profile, totals = payload
            self.header, self.profile, self.totals = header, profile, Totals(**totals)
            return

    def _receive(self) -> tuple:
        raise NotImplementedError

    def _raise_input_error(self) -> None:
        """Raise the error that reading the blob met, if any: the parser then saw a cut-short report."""


class ChildProcessRows(ReportRows):
    """The parser runs in a child process that a thread of this one feeds with the report's blocks."""

    def __init__(self, scan_id: int, blocks):
        super().__init__()
        self.bytes_fed = 0
        self._feed_error: BaseException | None = None
        # stderr goes to a file, not a pipe: a pipe nobody reads until the end could fill and stall the child.
        self._errors = tempfile.TemporaryFile()
        self._child = subprocess.Popen([sys.executable, "-m", __name__, str(scan_id)], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=self._errors)
        self._feeder = threading.Thread(target=self._feed, args=(blocks,), name=f"feed-report-{scan_id}",
                                        daemon=True)
        self._feeder.start()

    def __exit__(self, *_exc) -> None:
        if self._child.poll() is None:
            self._child.kill()
        self._child.wait()
        self._feeder.join()
        self._child.stdout.close()
        self._errors.close()

    def _raise_input_error(self) -> None:
        self._feeder.join()
        if self._feed_error is not None:
            raise self._feed_error

    def _receive(self) -> tuple:
        length = self._read_exactly(_FRAME_LENGTH.size)
        return marshal.loads(self._read_exactly(_FRAME_LENGTH.unpack(length)[0]))

    def _read_exactly(self, size: int) -> bytes:
        data = self._child.stdout.read(size)
        if len(data) < size:
            status = self._child.wait()
            self._errors.seek(0)
            last_line = (self._errors.read().decode("utf-8", "replace").strip().splitlines() or [""])[-1]
            raise RuntimeError(f"the report parser exited with status {status}: {last_line}")
        return data

    def _feed(self, blocks) -> None:
        stdin = self._child.stdin
        try:
            for block in blocks:
                stdin.write(block)
                self.bytes_fed += len(block)
        except BrokenPipeError:
            pass  # the child stopped reading: it found the report invalid, or it was stopped
        except BaseException as error:
            self._feed_error = error
        finally:
            try:
                stdin.close()
            except BrokenPipeError:
                pass


class ThreadRows(ReportRows):
    """The parser runs in a thread of this process; two batches at most wait for the consumer."""

    def __init__(self, scan_id: int, blocks):
        super().__init__()
        self._reader = BlockReader(blocks)
        self._messages: queue.Queue = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._parser = threading.Thread(target=self._run, args=(scan_id,), name=f"parse-report-{scan_id}",
                                        daemon=True)
        self._parser.start()

    @property
    def bytes_fed(self) -> int:
        return self._reader.bytes_read

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._parser.join()

    def _run(self, scan_id: int) -> None:
        try:
            _parse(scan_id, self._reader, self._put)
            return
        except _Stopped:
            return
        except ReportError as error:
            last = ("invalid", str(error))
        except BaseException as error:
            last = ("failed", error)
        with contextlib.suppress(_Stopped):
            self._put(last)

    def _put(self, message: tuple) -> None:
        while not self._stop.is_set():  # a consumer that gave up takes nothing more: stop rather than block
            try:
                self._messages.put(message, timeout=0.1)
                return
            except queue.Full:
                pass
        raise _Stopped

    def _receive(self) -> tuple:
        message = self._messages.get()
        if message[0] == "failed":
            raise message[1]
        return message


class _Stopped(Exception):
    """The consumer of a ThreadRows has stopped."""


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


def _frame_writer(out):
    """A `send` for _parse that writes length-prefixed marshalled messages to `out`."""
    def send(message: tuple) -> None:
        frame = marshal.dumps(message)
        out.write(_FRAME_LENGTH.pack(len(frame)))
        out.write(frame)
    return send


def _parse(scan_id: int, source, send) -> None:
    """The child's work: rows in batches of BATCH_ROWS files, then what the report says besides."""
    packages: list[tuple] = []
    files: list[tuple] = []
    header = profile = None
    totals = Totals()
    for line, record in read_report(source):
        kind = record["type"]
        if kind == "file":
            if not _absolute(record["path"]):
                raise ReportError(f"file path {record['path']!r} is not absolute", line)
            files.append(file_row(scan_id, record))
            if record.get("in_overlay") and record.get("size"):
                totals.overlay_bytes += record["size"]
            if len(files) >= BATCH_ROWS:
                send(("rows", packages, files))
                packages, files = [], []
        elif kind == "package":
            packages.append(package_row(scan_id, record))
        elif kind == "header":
            header = record
        elif kind == "profile":
            profile = {name: value for name, value in record.items() if name != "type"}
        elif kind == "trailer":
            _count_from_trailer(totals, record)
    send(("rows", packages, files))
    send(("end", header, profile, vars(totals)))


def _count_from_trailer(totals: Totals, trailer: dict) -> None:
    """The reader has checked the trailer's counts against its own, so they spare counting each record."""
    changes = trailer["changes"]
    totals.packages = int(trailer["counts"].get("package", 0))
    totals.changes = {"added": int(changes.get("added", 0)), "deleted": int(changes.get("deleted", 0)),
                      "modified": int(changes.get("modified", 0)) + int(changes.get("metadata", 0))}


def main() -> None:
    out = sys.stdout.buffer
    # Opened by descriptor, so that it has no name for errors to cite: the parent's messages name none.
    report = open(sys.stdin.fileno(), "rb", closefd=False)
    send = _frame_writer(out)
    try:
        _parse(int(sys.argv[1]), report, send)
    except ReportError as error:
        send(("invalid", str(error)))
    out.flush()


if __name__ == "__main__":
    main()
