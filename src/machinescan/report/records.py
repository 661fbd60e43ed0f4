"""What a report record is: format name and version, required fields per record type, path encoding."""

import base64
import binascii

FORMAT = "machinescan-report"
VERSION = 1

RECORD_TYPES = ("header", "package", "file", "profile", "error", "overlay", "trailer")
CHANGES = ("unchanged", "added", "modified", "metadata", "deleted")

# Accepted JSON types of a field, compared with `type(value) in accepted` so that a bool never passes
# for an int. PATH marks the fields holding a path: a string, or {"b64": ...} for non-UTF-8 bytes.
STR = (str,)
INT = (int,)
NUMBER = (int, float)
BOOL = (bool,)
OBJECT = (dict,)
PATH = (str, dict)
PATH_OR_NULL = (str, dict, type(None))

# Every line is one JSON object whose "type" names its record type. The trailer carries "counts"
# ({record type: lines of that type}, header included, trailer not), "changes" ({change: file records}),
# "elapsed_seconds" and "complete": true; a reader checks both counts against what it read.
# The one table of what each known record type must carry; every other field is optional.
REQUIRED_FIELDS = {
    "header": (("format", STR), ("version", INT), ("agent", OBJECT), ("scan", OBJECT)),
    "package": (("manager", STR), ("name", STR), ("version", STR)),
    "file": (("path", PATH), ("kind", STR), ("change", STR)),
    "profile": (),
    "error": (("path", PATH_OR_NULL), ("stage", STR), ("message", STR)),
    "overlay": (("members", INT), ("format", STR)),
    "trailer": (("counts", OBJECT), ("changes", OBJECT), ("elapsed_seconds", NUMBER),
                ("complete", BOOL)),
}

# Optional fields the server stores in typed columns and serves with schema types: when present and not
# null, they must have these types (a size of "abc" would make the server's XML invalid).
LIST = (list,)
TYPED_OPTIONAL_FIELDS = {
    "package": (("release", STR), ("epoch", INT), ("arch", STR), ("installed_size", INT),
                ("install_time", STR), ("source", STR), ("files", INT), ("status", STR), ("modified", BOOL),
                ("missing_files", INT)),
    "file": (("mode", STR), ("uid", INT), ("gid", INT), ("owner", STR), ("group", STR), ("size", INT),
             ("mtime", NUMBER), ("nlink", INT), ("sha256", STR), ("link_target", PATH), ("packages", LIST),
             ("changed", LIST), ("conffile", BOOL), ("in_overlay", BOOL), ("note", STR)),
}
MAX_INT = 2 ** 63 - 1  # what a database integer column holds

# Fields a writer accepts as raw bytes and encodes with encode_path.
PATH_FIELDS = {"file": ("path", "link_target"), "error": ("path",)}


class ReportError(ValueError):
    """A report that cannot be trusted: `line` is its 1-based line number (None when not line-bound)."""

    def __init__(self, message, line=None, source=None):
        where = " ".join(part for part in (source, "line %d" % line if line else None) if part)
        super().__init__("%s: %s" % (where, message) if where else message)
        self.line = line
        self.reason = message


def encode_path(raw):
    """Bytes of a path -> its JSON form: the string when valid UTF-8, else {"b64": base64 of the bytes}."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(raw).decode("ascii")}


def decode_path(value):
    """JSON form of a path -> the exact bytes it was written from; ValueError when it is neither form."""
    if type(value) is str:
        return value.encode("utf-8")
    if type(value) is dict and type(value.get("b64")) is str:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("path {\"b64\": ...} is not valid base64: %s" % exc)
    raise ValueError("a path is a string or {\"b64\": \"...\"}, not %r" % (value,))


def is_encoded_path(value):
    """True when value is a string or a {"b64": str} object (the two path forms)."""
    return type(value) is str or (type(value) is dict and type(value.get("b64")) is str)


def missing_or_ill_typed(record_type, record, optional=True):
    """The first problem with a record's fields as a message, or None when they are all right: required
    fields present with their types and, with `optional`, typed optional fields (when not null) with
    theirs. The agent's writer leaves the optional ones to the reader: its records are typed by
    construction, and a scan writes hundreds of thousands of them."""
    # The loops test the common case inline (the reader runs them for every record); _ill_typed says why.
    for field, accepted in REQUIRED_FIELDS[record_type]:
        value = record.get(field, _MISSING)
        kind = type(value)
        if kind not in accepted or kind is dict or (kind is int and not -MAX_INT <= value <= MAX_INT):
            problem = _ill_typed(record_type, field, value, accepted)
            if problem is not None:
                return problem
    if not optional or record_type not in TYPED_OPTIONAL_FIELDS:
        return None
    for field, accepted in TYPED_OPTIONAL_FIELDS[record_type]:
        value = record.get(field)
        kind = type(value)
        if value is not None and (kind not in accepted or kind is dict or
                                  (kind is int and not -MAX_INT <= value <= MAX_INT)):
            problem = _ill_typed(record_type, field, value, accepted)
            if problem is not None:
                return problem
    return _file_problem(record) if record_type == "file" else None


def _ill_typed(record_type, field, value, accepted):
    if type(value) not in accepted:
        if value is _MISSING:
            return "%s record has no %r field" % (record_type, field)
        return "%s record field %r is %s, expected %s" % (
            record_type, field, _json_type_name(value), " or ".join(_json_type_name(t()) for t in accepted))
    if (accepted is PATH or accepted is PATH_OR_NULL) and type(value) is dict and \
            type(value.get("b64")) is not str:
        return "%s record field %r is an object without a \"b64\" string" % (record_type, field)
    if type(value) is int and abs(value) > MAX_INT:
        return "%s record field %r is %d, beyond 64 bits" % (record_type, field, value)
    return None


def _file_problem(record):
    if record["change"] not in CHANGES:
        return "file record change %r is not one of %s" % (record["change"], ", ".join(CHANGES))
    for field in ("packages", "changed"):
        if any(type(item) is not str for item in record.get(field) or ()):
            return "file record field %r must hold strings only" % field
    return None


_MISSING = object()


def _json_type_name(value):
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", dict: "an object",
             list: "an array", type(None): "null"}
    return names.get(type(value), type(value).__name__)
