"""The report parsers (child process, thread): rows in batches, what the report says besides, every way to stop."""

import gzip

import pytest
from reports import file, package, report_bytes

from machinescan.report import ReportError
from machinescan.server.report_rows import BATCH_ROWS, ChildProcessRows, ThreadRows, file_row

PARSERS = pytest.mark.parametrize("parser", [ChildProcessRows, ThreadRows])


def blocks_of(data: bytes, size: int = 4096):
    return (data[start:start + size] for start in range(0, len(data), size))


@PARSERS
def test_rows_come_in_batches_then_header_profile_and_totals(parser):
    files = [file(f"/srv/f{number}", change="added", size=2) for number in range(BATCH_ROWS + 1)]
    report = report_bytes([package("bash", "5.2-1")], files, profile={"timezone": "UTC"})
    with parser(7, blocks_of(report)) as rows:
        batches = list(rows.batches())
    assert [(len(packages), len(files)) for packages, files in batches] == [(1, BATCH_ROWS), (0, 1)]
    assert batches[0][1][0] == file_row(7, {**files[0], "type": "file"})
    assert rows.header["distribution"]["id"] == "debian" and rows.profile == {"timezone": "UTC"}
    assert (rows.totals.packages, rows.totals.changes["added"], rows.totals.overlay_bytes) == \
        (1, BATCH_ROWS + 1, 2 * (BATCH_ROWS + 1))
    assert rows.bytes_fed == len(report)


@PARSERS
def test_an_invalid_report_raises_report_error_naming_the_line(parser):
    lines = gzip.decompress(report_bytes([], [file("/a")])).split(b"\n")
    lines[2] = b"{not json"
    with parser(1, blocks_of(gzip.compress(b"\n".join(lines)))) as rows:
        with pytest.raises(ReportError, match="line 3: invalid JSON"):
            list(rows.batches())


@PARSERS
def test_a_relative_file_path_is_invalid(parser):
    with parser(1, blocks_of(report_bytes([], [file("srv/f")]))) as rows:
        with pytest.raises(ReportError, match="is not absolute"):
            list(rows.batches())


@PARSERS
def test_a_failing_blob_read_is_the_error_rather_than_a_cut_short_report(parser):
    report = report_bytes([], [file(f"/srv/f{number}") for number in range(2000)])

    def failing_blocks():
        yield report[:len(report) // 2]
        raise OSError("blob store unreachable")

    with parser(1, failing_blocks()) as rows:
        with pytest.raises(OSError, match="blob store unreachable"):
            list(rows.batches())


def test_the_child_is_stopped_when_the_consumer_gives_up():
    files = [file(f"/srv/f{number}") for number in range(3 * BATCH_ROWS)]
    with ChildProcessRows(1, blocks_of(report_bytes([], files))) as rows:
        next(rows.batches())
    assert rows._child.returncode is not None


def test_the_thread_is_stopped_when_the_consumer_gives_up():
    files = [file(f"/srv/f{number}") for number in range(5 * BATCH_ROWS)]
    with ThreadRows(1, blocks_of(report_bytes([], files))) as rows:
        next(rows.batches())
    assert not rows._parser.is_alive()


def test_a_child_that_writes_much_to_stderr_does_not_stall(tmp_path, monkeypatch):
    """Warnings on stderr beyond a pipe's 64 KiB: they go to a file, so the child never blocks on them."""
    import sys
    import threading

    from machinescan.server import report_rows

    noisy_python = tmp_path / "noisy-python"
    noisy_python.write_text(f"#!/bin/sh\nhead -c 300000 /dev/zero | tr '\\\\0' w >&2\nexec {sys.executable} \"$@\"\n")
    noisy_python.chmod(0o755)
    monkeypatch.setattr(report_rows.sys, "executable", str(noisy_python))
    report = report_bytes([], [file(f"/srv/f{number}") for number in range(3 * BATCH_ROWS)])
    counted = []

    def consume():
        with ChildProcessRows(1, blocks_of(report)) as rows:
            counted.append(sum(len(files) for _, files in rows.batches()))

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    consumer.join(timeout=60)
    assert counted == [3 * BATCH_ROWS]
