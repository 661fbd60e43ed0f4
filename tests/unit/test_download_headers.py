"""Headers of downloads: file names of any kind make a valid Content-Disposition."""

from urllib.parse import unquote

import pytest

from machinescan.server.api.overlay import byte_range, content_disposition


def test_a_plain_name_is_quoted():
    assert content_disposition("web1-scan2-files.tar.gz") == 'attachment; filename="web1-scan2-files.tar.gz"'


@pytest.mark.parametrize("name", ['crlf\r\nX-Evil: 1.tar.gz', 'back\\slash.tar.gz', 'say "hi".tar.gz',
                                  "café.tar.gz", "tab\there.tar.gz"])
def test_an_unsafe_name_is_percent_encoded_and_comes_back_exact(name):
    header = content_disposition(name)
    assert header.startswith("attachment; filename*=UTF-8''")
    assert header.isascii() and header.isprintable() and '"' not in header and "\\" not in header
    assert unquote(header.removeprefix("attachment; filename*=UTF-8''")) == name


@pytest.mark.parametrize("header, expected", [
    ("bytes=0-9", (0, 10)), ("bytes=90-", (90, 100)), ("bytes=-10", (90, 100)), ("bytes=95-200", (95, 100)),
    ("bytes=5-3", None),  # invalid: ignored, the whole file is sent
    ("bytes=100-", "unsatisfiable"), ("bytes=0-1,5-6", None), (None, None),
])
def test_byte_ranges_of_a_100_byte_file(header, expected):
    assert byte_range(header, 100) == expected
