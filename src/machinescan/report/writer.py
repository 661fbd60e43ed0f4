"""ReportWriter: streams a scan report, record by record, as gzip-compressed JSON Lines."""

import gzip
import json
import time

from .records import FORMAT, PATH_FIELDS, VERSION, ReportError, encode_path, missing_or_ill_typed

# Records are gathered into blocks of about this size before being handed to zlib: one compress call
# per record would cost more than the JSON encoding.
_BLOCK_BYTES = 256 * 1024

_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class ReportWriter:
    """Writes a report to a binary file object; `close()` writes the trailer that marks it complete.

    Bytes in path fields (`path`, `link_target`) are encoded with encode_path. Each record is checked
    against the required fields on the way out, so a bad record fails here, not on the server.
    The file object itself is left open.
    """

    def __init__(self, binary_fileobj, compresslevel=6):
        self._gzip = gzip.GzipFile(fileobj=binary_fileobj, mode="wb", compresslevel=compresslevel, mtime=0)
        self._block = []
        self._block_bytes = 0
        self._lines = 0
        self._counts = {}
        self._changes = {}
        self._started = time.monotonic()
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        # On an exception the trailer is left out: a reader then rejects the report as truncated.
        if exc_type is None and not self._closed:
            self.close()
        else:
            self._abandon()

    def header(self, fields):
        if self._lines:
            raise ReportError("the header must be the first record, and only one", self._lines + 1)
        record = dict(fields)
        record["format"], record["version"] = FORMAT, VERSION  # what this writer writes, whatever asked
        self._write("header", record)

    def package(self, fields):
        self._write("package", fields)

    def file(self, fields):
        self._write("file", fields)
        self._changes[fields["change"]] = self._changes.get(fields["change"], 0) + 1

    def profile(self, fields):
        self._write("profile", fields)

    def error(self, path, stage, message):
        self._write("error", {"path": path, "stage": stage, "message": message})

    def overlay(self, fields):
        self._write("overlay", fields)

    def close(self, elapsed_seconds=None):
        """Write the trailer (counts by record type and by change) and finish the gzip stream."""
        if elapsed_seconds is None:
            elapsed_seconds = time.monotonic() - self._started
        self._write("trailer", {"counts": dict(self._counts), "changes": dict(self._changes),
                                "elapsed_seconds": round(elapsed_seconds, 3), "complete": True})
        self._flush_block()
        self._gzip.close()
        self._closed = True

    def _write(self, record_type, fields):
        if self._closed:
            raise ReportError("cannot write a %s record: the report is closed" % record_type)
        if not self._lines and record_type != "header":
            raise ReportError("the header must be written before any %s record" % record_type, 1)
        record = {"type": record_type}
        record.update(fields)
        record["type"] = record_type
        for field in PATH_FIELDS.get(record_type, ()):
            if type(record.get(field)) is bytes:
                record[field] = encode_path(record[field])
        problem = missing_or_ill_typed(record_type, record, optional=False)
        if problem:
            raise ReportError(problem, self._lines + 1)
        self._append_line(_json_line(record_type, record))
        self._lines += 1
        if record_type != "trailer":
            self._counts[record_type] = self._counts.get(record_type, 0) + 1

    def _append_line(self, line):
        self._block.append(line)
        self._block_bytes += len(line)
        if self._block_bytes >= _BLOCK_BYTES:
            self._flush_block()

    def _flush_block(self):
        if self._block:
            self._gzip.write(b"".join(self._block))
            self._block = []
            self._block_bytes = 0

    def _abandon(self):
        if not self._closed:
            self._flush_block()
            self._gzip.close()
            self._closed = True


def _json_line(record_type, record):
    try:
        return (_encode_json(record) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        # A str holding lone surrogates (a file name decoded with surrogateescape, often inside an
        # error message): paths get their exact bytes back, other text is repaired with U+FFFD.
        return (_encode_json(_without_surrogates(record_type, record)) + "\n").encode("utf-8")


def _without_surrogates(record_type, record):
    path_fields = PATH_FIELDS.get(record_type, ())
    return {key: _repaired(value, key in path_fields) for key, value in record.items()}


def _repaired(value, is_path):
    if type(value) is str:
        raw = _utf8_bytes_of(value)
        return encode_path(raw) if is_path else raw.decode("utf-8", "replace")
    if type(value) is dict:
        return {_repaired(key, False): _repaired(item, False) for key, item in value.items()}
    if type(value) in (list, tuple):
        return [_repaired(item, False) for item in value]
    return value


def _utf8_bytes_of(text):
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


__all__ = ["ReportWriter"]
