"""read_report: streams and checks a scan report, yielding its records one by one."""

import json
import zlib

from .records import FORMAT, REQUIRED_FIELDS, VERSION, ReportError, missing_or_ill_typed

_READ_BYTES = 256 * 1024
_MAX_BLOCK_BYTES = 4 * 1024 * 1024
MAX_LINE_BYTES = 16 * 1024 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS

_decoder = json.JSONDecoder()
_parse_json = _decoder.decode
# The decoder's scanner without the whitespace handling around it: a quarter of the parse time.
_scan_json = _decoder.scan_once


def read_report(binary_fileobj):
    """Yield (line_number, record) for each known record of a gzip JSON Lines report, header first.

    Records of unknown types are skipped. Anything that makes the report untrustworthy raises
    ReportError naming the line: a wrong header, a line that is not JSON, a missing or ill-typed
    required field, a corrupt or cut-short gzip stream, a missing trailer. The last check runs
    after the last record was yielded, so a consumer commits what it stored only once the
    iteration has ended without an error.
    """
    source = _name_of(binary_fileobj)
    checker = _RecordChecker(source)
    blocks = _decompressed_blocks(binary_fileobj)
    line_number = 0
    partial = b""
    while True:
        try:
            block = next(blocks, None)
        except _StreamError as exc:
            raise ReportError(str(exc), line_number + 1, source)
        if block is None:
            break
        lines = block.split(b"\n")
        lines[0] = partial + lines[0]
        partial = lines.pop()
        if len(partial) > MAX_LINE_BYTES:
            raise ReportError("line longer than %d bytes" % MAX_LINE_BYTES, line_number + 1, source)
        for line in lines:
            line_number += 1
            record = checker.check(line_number, line)
            if record is not None:
                yield line_number, record
    if partial:
        line_number += 1
        record = checker.check(line_number, partial)
        if record is not None:
            yield line_number, record
    checker.finish(line_number)


class _RecordChecker:
    """Parses one line at a time and keeps what the header and the trailer must agree with."""

    def __init__(self, source):
        self.source = source
        self.counts = {}
        self.changes = {}
        self.trailer_line = None

    def check(self, line_number, line):
        """The record on this line, or None when its type is unknown; ReportError when it is invalid."""
        if self.trailer_line is not None:
            raise ReportError("a record follows the trailer (line %d)" % self.trailer_line,
                              line_number, self.source)
        try:
            text = line.decode("utf-8")
            record, end = _scan_json(text, 0)
            if end != len(text) and text[end:].strip():
                raise ValueError("extra data")
        except (ValueError, StopIteration):  # UnicodeDecodeError is a ValueError too
            record = self._parse_slowly(line_number, line)
        if type(record) is not dict:
            raise ReportError("a record is a JSON object, not %s" % type(record).__name__,
                              line_number, self.source)
        record_type = record.get("type")
        if line_number == 1:
            self._check_header(record)
        elif record_type == "header":
            raise ReportError("a second header (the header is line 1 only)", line_number, self.source)
        if record_type not in REQUIRED_FIELDS:
            return self._unknown_type(line_number, record_type)
        problem = missing_or_ill_typed(record_type, record)
        if problem:
            raise ReportError(problem, line_number, self.source)
        if record_type == "file":
            change = record["change"]
            self.changes[change] = self.changes.get(change, 0) + 1
        elif record_type == "trailer":
            self._check_trailer(line_number, record)
            return record
        self.counts[record_type] = self.counts.get(record_type, 0) + 1
        return record

    def _parse_slowly(self, line_number, line):
        """The full decoder, for what the fast path refused: it accepts outer spaces, names the error."""
        try:
            return _parse_json(line.decode("utf-8"))
        except ValueError as exc:
            raise ReportError("invalid JSON: %s" % exc, line_number, self.source)

    def finish(self, last_line):
        if self.trailer_line is None:
            if last_line == 0:
                raise ReportError("empty report: no header", 1, self.source)
            raise ReportError("no trailer after line %d: the report is truncated" % last_line,
                              last_line + 1, self.source)

    def _check_header(self, record):
        if record.get("type") != "header":
            raise ReportError("the first record must be the header, not %r" % (record.get("type"),),
                              1, self.source)
        if record.get("format") != FORMAT:
            raise ReportError("format %r is not %r" % (record.get("format"), FORMAT), 1, self.source)
        version = record.get("version")
        if type(version) is not int or version < 1:
            raise ReportError("header version %r is not a positive integer" % (version,), 1, self.source)
        if version > VERSION:
            raise ReportError("report version %d is newer than this reader's (%d): upgrade machinescan"
                              % (version, VERSION), 1, self.source)

    def _unknown_type(self, line_number, record_type):
        if type(record_type) is not str:
            raise ReportError("record has no \"type\" string", line_number, self.source)
        self.counts[record_type] = self.counts.get(record_type, 0) + 1
        return None

    def _check_trailer(self, line_number, trailer):
        self.trailer_line = line_number
        if trailer["complete"] is not True:
            raise ReportError("the trailer says the scan is not complete", line_number, self.source)
        for name, seen, announced in (("records", self.counts, trailer["counts"]),
                                      ("file changes", self.changes, trailer["changes"])):
            if not _same_counts(seen, announced):
                raise ReportError("the trailer counts %s %s, the report holds %s"
                                  % (name, _sorted(announced), _sorted(seen)), line_number, self.source)


class _StreamError(Exception):
    """The compressed stream is corrupt or cut short."""


def _decompressed_blocks(fileobj):
    """Blocks of at most _MAX_BLOCK_BYTES from a gzip stream of one or more members."""
    decompressor = zlib.decompressobj(_GZIP_WBITS)
    compressed = b""
    read_anything = False
    while True:
        if not compressed:
            compressed = fileobj.read(_READ_BYTES)
            if not compressed:
                break
            read_anything = True
        if decompressor.eof:
            decompressor = zlib.decompressobj(_GZIP_WBITS)  # the next member of a multi-member file
        try:
            block = decompressor.decompress(compressed, _MAX_BLOCK_BYTES)
        except zlib.error as exc:
            raise _StreamError("not a valid gzip stream (%s)" % exc)
        compressed = decompressor.unused_data if decompressor.eof else decompressor.unconsumed_tail
        if block:
            yield block
    if not read_anything:
        raise _StreamError("empty file: no header")
    rest = decompressor.flush()
    if rest:
        yield rest
    if not decompressor.eof:
        raise _StreamError("the gzip stream is cut short: the report is truncated")


def _same_counts(seen, announced):
    announced = {key: value for key, value in announced.items() if value}
    return announced == seen


def _sorted(counts):
    return ", ".join("%s=%s" % item for item in sorted(counts.items())) or "none"


def _name_of(fileobj):
    name = getattr(fileobj, "name", None)
    return name if isinstance(name, str) else None
