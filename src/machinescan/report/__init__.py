"""The scan report format shared by agent and server: gzip JSON Lines, written and read as a stream."""

from .reader import read_report
from .records import (CHANGES, FORMAT, RECORD_TYPES, REQUIRED_FIELDS, VERSION, ReportError, decode_path,
                      encode_path)
from .writer import ReportWriter

__all__ = ["CHANGES", "FORMAT", "RECORD_TYPES", "REQUIRED_FIELDS", "VERSION", "ReportError", "ReportWriter",
           "decode_path", "encode_path", "read_report"]
