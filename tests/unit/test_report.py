"""The report format: writer and reader round trip, path encoding, and every rejection the spec names."""

import base64
import gzip
import io
import json

import pytest

from machinescan.report import (FORMAT, VERSION, ReportError, ReportWriter, decode_path, encode_path,
                                read_report)

HEADER = {"agent": {"name": "machinescan-agent", "version": "0.1"},
          "scan": {"root": "/", "started": "2026-01-02T03:04:05Z", "excludes": ["/proc"], "overlay": False},
          "host": {"hostname": "box", "cpu_count": 2}, "distribution": {"id": "debian", "version": "12"}}


def file_record(path, change="unchanged", **extra):
    record = {"path": path, "kind": "file", "mode": "0644", "size": 3, "packages": ["base-files"],
              "change": change}
    record.update(extra)
    return record


def gzip_lines(records):
    """A report file made by hand: one JSON text per line, exactly as given."""
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in records)
    return gzip.compress(text.encode("utf-8"))


def header_line(**changes):
    record = {"type": "header", "format": FORMAT, "version": VERSION}
    record.update(HEADER)
    record.update(changes)
    return record


def trailer_line(counts, changes=None, complete=True):
    return {"type": "trailer", "counts": counts, "changes": changes or {}, "elapsed_seconds": 1.5,
            "complete": complete}


def written_report(write_records):
    output = io.BytesIO()
    writer = ReportWriter(output)
    writer.header(HEADER)
    write_records(writer)
    writer.close(elapsed_seconds=2.25)
    return output.getvalue()


def read_all(data):
    return list(read_report(io.BytesIO(data)))


def rejection(data):
    with pytest.raises(ReportError) as caught:
        read_all(data)
    return caught.value


# Path encoding

@pytest.mark.parametrize("raw", [b"/etc/passwd", "/home/zoë/notes".encode("utf-8"), b"/tmp/\xff\xfe latin1 \xe9",
                                 b"/a\nnewline", b"/\xed\xa0\x80 surrogate as utf-8", b"/"])
def test_path_round_trips_byte_exact(raw):
    assert decode_path(json.loads(json.dumps(encode_path(raw)))) == raw


def test_valid_utf8_path_is_a_plain_string():
    assert encode_path("/home/zoë".encode("utf-8")) == "/home/zoë"


def test_invalid_utf8_path_is_base64_object():
    assert encode_path(b"/x\xff") == {"b64": base64.b64encode(b"/x\xff").decode("ascii")}


def test_decode_path_rejects_other_values():
    for value in (None, 3, {"b64": "not base64!"}, {"other": "x"}):
        with pytest.raises(ValueError):
            decode_path(value)


# Round trip

def test_round_trip_keeps_every_record_and_field():
    odd_names = [b"/srv/caf\xe9.txt", b"/srv/line1\nline2", "/srv/日本語".encode("utf-8")]

    def write(writer):
        writer.package({"manager": "dpkg", "name": "base-files", "version": "12.4", "epoch": None,
                        "arch": "amd64", "files": 3})
        for name in odd_names:
            writer.file(file_record(name, change="added", link_target=b"/target\xff"))
        writer.file(file_record(b"/etc/issue", change="modified", changed=["size", "digest"]))
        writer.profile({"timezone": "Europe/Paris", "users": [{"name": "root", "uid": 0}]})
        writer.error(b"/proc/\xff", "walk", "permission denied")
        writer.overlay({"members": 2, "size": 1234, "format": "tar.gz"})

    records = read_all(written_report(write))
    types = [record["type"] for _, record in records]
    assert types == ["header", "package", "file", "file", "file", "file", "profile", "error", "overlay",
                     "trailer"]
    assert [line for line, _ in records] == list(range(1, 11))
    header = records[0][1]
    assert (header["format"], header["version"], header["scan"]) == (FORMAT, VERSION, HEADER["scan"])
    assert [decode_path(record["path"]) for _, record in records[2:5]] == odd_names
    assert decode_path(records[2][1]["link_target"]) == b"/target\xff"
    assert records[1][1]["epoch"] is None
    assert records[5][1]["changed"] == ["size", "digest"]
    assert decode_path(records[7][1]["path"]) == b"/proc/\xff"
    assert records[6][1]["users"] == [{"name": "root", "uid": 0}]


def test_trailer_counts_records_by_type_and_files_by_change():
    def write(writer):
        writer.package({"manager": "rpm", "name": "bash", "version": "5.1", "epoch": 0})
        writer.file(file_record(b"/a", change="added"))
        writer.file(file_record(b"/b", change="added"))
        writer.file(file_record(b"/c", change="deleted"))
        writer.error(None, "packages", "rpm database locked")

    trailer = read_all(written_report(write))[-1][1]
    assert trailer["counts"] == {"header": 1, "package": 1, "file": 3, "error": 1}
    assert trailer["changes"] == {"added": 2, "deleted": 1}
    assert trailer["elapsed_seconds"] == 2.25
    assert trailer["complete"] is True


def test_writer_streams_records_before_close():
    output = io.BytesIO()
    writer = ReportWriter(output, compresslevel=1)
    writer.header(HEADER)
    for number in range(20000):
        writer.file(file_record(("/data/%d-%s" % (number, "x" * 40)).encode("ascii")))
    assert output.tell() > 0
    writer.close(1.0)


def test_error_message_with_surrogate_escaped_name_is_written_as_valid_utf8():
    message = "cannot read %s: permission denied" % b"/srv/\xff".decode("utf-8", "surrogateescape")
    records = read_all(written_report(lambda writer: writer.error(None, "walk", message)))
    assert records[1][1]["message"] == "cannot read /srv/\ufffd: permission denied"


def test_surrogate_escaped_str_path_keeps_its_bytes():
    path = b"/srv/\xff".decode("utf-8", "surrogateescape")
    records = read_all(written_report(lambda writer: writer.file(file_record(path))))
    assert decode_path(records[1][1]["path"]) == b"/srv/\xff"


def test_multi_member_gzip_is_read():
    lines = [header_line(), file_record("/a"), trailer_line({"header": 1, "file": 1}, {"unchanged": 1})]
    lines[1]["type"] = "file"
    text = [(json.dumps(line) + "\n").encode("utf-8") for line in lines]
    data = gzip.compress(text[0] + text[1]) + gzip.compress(text[2])
    assert [record["type"] for _, record in read_all(data)] == ["header", "file", "trailer"]


def test_unknown_record_types_and_fields_are_ignored():
    package = {"type": "package", "manager": "apk", "name": "musl", "version": "1.2.4-r2", "future": [1]}
    data = gzip_lines([header_line(), {"type": "hologram", "x": 1}, package,
                       trailer_line({"header": 1, "hologram": 1, "package": 1})])
    records = read_all(data)
    assert [(line, record["type"]) for line, record in records] == [(1, "header"), (3, "package"),
                                                                    (4, "trailer")]
    assert records[1][1]["future"] == [1]


# Writer refusals

def test_writer_refuses_records_before_the_header():
    with pytest.raises(ReportError):
        ReportWriter(io.BytesIO()).file(file_record(b"/a"))


def test_writer_refuses_an_ill_typed_record():
    writer = ReportWriter(io.BytesIO())
    writer.header(HEADER)
    with pytest.raises(ReportError, match="'members'"):
        writer.overlay({"members": "2", "format": "tar.gz"})


def test_report_abandoned_by_an_exception_has_no_trailer():
    output = io.BytesIO()
    with pytest.raises(RuntimeError):
        with ReportWriter(output) as writer:
            writer.header(HEADER)
            writer.file(file_record(b"/a"))
            raise RuntimeError("scan interrupted")
    error = rejection(output.getvalue())
    assert error.line == 3 and "truncated" in str(error)


# Reader rejections

def test_truncated_gzip_stream_is_a_report_error():
    data = written_report(lambda writer: [writer.file(file_record(("/f%d" % n).encode())) for n in range(5000)])
    error = rejection(data[:len(data) // 2])
    assert "truncated" in str(error)
    assert error.line > 1


def test_gzip_stream_cut_in_the_header_names_line_1():
    assert rejection(written_report(lambda writer: None)[:15]).line == 1


def test_corrupt_gzip_data_is_a_report_error():
    data = bytearray(written_report(lambda writer: [writer.file(file_record(b"/f%d" % n)) for n in range(50)]))
    data[30:60] = b"\x00" * 30
    assert isinstance(rejection(bytes(data)), ReportError)


def test_not_gzip_is_a_report_error():
    assert "gzip" in str(rejection(b'{"type": "header"}\n'))


def test_empty_file_is_a_report_error():
    assert rejection(b"").line == 1


def test_missing_trailer_names_the_line_after_the_last():
    data = gzip_lines([header_line(), dict(file_record("/a"), type="file")])
    error = rejection(data)
    assert error.line == 3
    assert "no trailer after line 2" in str(error)


def test_newer_major_version_is_rejected_on_line_1():
    error = rejection(gzip_lines([header_line(version=VERSION + 1), trailer_line({"header": 1})]))
    assert error.line == 1 and "newer" in str(error)


def test_other_format_is_rejected_on_line_1():
    error = rejection(gzip_lines([header_line(format="uforge-scan"), trailer_line({"header": 1})]))
    assert error.line == 1 and "uforge-scan" in str(error)


def test_header_must_come_first():
    error = rejection(gzip_lines([dict(file_record("/a"), type="file"), header_line(),
                                  trailer_line({"header": 1})]))
    assert error.line == 1 and "header" in str(error)


def test_invalid_json_names_its_line():
    lines = [header_line(), dict(file_record("/a"), type="file"), '{"type": "file", "path": "/b",',
             trailer_line({"header": 1, "file": 2})]
    error = rejection(gzip_lines(lines))
    assert error.line == 3 and "invalid JSON" in str(error)


def test_invalid_utf8_line_names_its_line():
    text = (json.dumps(header_line()) + "\n").encode() + b'{"type": "file", "path": "/\xff"}\n'
    assert rejection(gzip.compress(text)).line == 2


def test_wrong_field_type_names_its_line_and_field():
    package = {"type": "package", "manager": "dpkg", "name": "bash", "version": 5}
    error = rejection(gzip_lines([header_line(), package, trailer_line({"header": 1, "package": 1})]))
    assert error.line == 2 and "'version'" in str(error)


def test_boolean_is_not_an_integer():
    overlay = {"type": "overlay", "members": True, "format": "tar.gz"}
    assert rejection(gzip_lines([header_line(), overlay, trailer_line({"header": 1, "overlay": 1})])).line == 2


def test_missing_required_field_names_its_line_and_field():
    record = dict(file_record("/a"), type="file")
    del record["change"]
    error = rejection(gzip_lines([header_line(), record, trailer_line({"header": 1, "file": 1})]))
    assert error.line == 2 and "'change'" in str(error)


def test_path_object_without_b64_is_rejected():
    record = dict(file_record({"hex": "ff"}), type="file")
    assert rejection(gzip_lines([header_line(), record, trailer_line({"header": 1, "file": 1})])).line == 2


def test_record_after_the_trailer_is_rejected():
    lines = [header_line(), trailer_line({"header": 1}), dict(file_record("/a"), type="file")]
    assert rejection(gzip_lines(lines)).line == 3


def test_trailer_counts_that_disagree_are_rejected():
    lines = [header_line(), dict(file_record("/a"), type="file"), trailer_line({"header": 1, "file": 2})]
    error = rejection(gzip_lines(lines))
    assert error.line == 3 and "file=2" in str(error)


def test_incomplete_trailer_is_rejected():
    assert rejection(gzip_lines([header_line(), trailer_line({"header": 1}, complete=False)])).line == 2


def test_error_names_the_file_when_it_has_a_name(tmp_path):
    report = tmp_path / "report.jsonl.gz"
    report.write_bytes(gzip_lines([header_line()]))
    with open(str(report), "rb") as stream, pytest.raises(ReportError) as caught:
        list(read_report(stream))
    assert str(caught.value).startswith(str(report) + " line 2: ")


def test_extra_data_after_a_record_is_invalid_json():
    lines = [header_line(), json.dumps(dict(file_record("/a"), type="file")) + ' {"x": 1}',
             trailer_line({"header": 1, "file": 1}, {"unchanged": 1})]
    error = rejection(gzip_lines(lines))
    assert error.line == 2 and "invalid JSON" in str(error)


def test_spaces_and_carriage_returns_around_a_record_are_accepted():
    lines = [header_line(), "  " + json.dumps(dict(file_record("/a"), type="file")) + " \r",
             trailer_line({"header": 1, "file": 1}, {"unchanged": 1})]
    assert [record["type"] for _, record in read_all(gzip_lines(lines))] == ["header", "file", "trailer"]


def test_header_fields_cannot_override_format_and_version():
    output = io.BytesIO()
    writer = ReportWriter(output)
    writer.header(dict(HEADER, format="other", version=99))
    writer.close(0)
    header = read_all(output.getvalue())[0][1]
    assert (header["format"], header["version"]) == (FORMAT, VERSION)


@pytest.mark.parametrize("fields, named", [
    ({"size": "abc"}, "'size' is a string, expected an integer"),
    ({"size": 10 ** 30}, "beyond 64 bits"),
    ({"mode": 420}, "'mode' is an integer, expected a string"),
    ({"change": "weird"}, "change 'weird' is not one of"),
    ({"packages": "abc"}, "'packages' is a string, expected an array"),
    ({"packages": [1, 2]}, "'packages' must hold strings only"),
    ({"link_target": {"x": 1}}, "'link_target' is an object without a \"b64\" string"),
    ({"in_overlay": "yes"}, "'in_overlay' is a string, expected a boolean"),
])
def test_typed_optional_fields_of_a_file_are_checked(fields, named):
    record = {"type": "file", "path": "/srv/a", "kind": "file", "change": "added", **fields}
    error = rejection(gzip_lines([header_line(), record, trailer_line({"header": 1, "file": 1}, {"added": 1})]))
    assert error.line == 2 and named in str(error), str(error)


def test_null_optional_fields_are_accepted():
    record = {"type": "file", "path": "/srv/a", "kind": "file", "change": "added", "owner": None, "sha256": None,
              "size": None}
    records = read_all(gzip_lines([header_line(), record, trailer_line({"header": 1, "file": 1}, {"added": 1})]))
    assert any(record.get("path") == "/srv/a" for _, record in records)
