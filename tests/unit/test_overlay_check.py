"""verify_overlay: a streamed tar (plain, gzip, multi-member gzip) checked against the report's files."""

import gzip
import hashlib
import io
import tarfile

import pytest

from machinescan.server.blobs.local import LocalBlobStore
from machinescan.server.overlay_check import verify_overlay


def tar_bytes(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.LNKTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def multi_member_gzip(data: bytes, piece: int = 3000) -> bytes:
    return b"".join(gzip.compress(data[start:start + piece]) for start in range(0, len(data), piece))


def digest(content: bytes) -> tuple[int, str]:
    return len(content), hashlib.sha256(content).hexdigest()


@pytest.fixture
def store(tmp_path):
    return LocalBlobStore(tmp_path)


def put(store, data: bytes) -> str:
    with store.writer("scans/x/overlay") as writer:
        writer.write(data)
        writer.commit()
    return "scans/x/overlay"


FILES = {"etc/app.conf": b"listen 80\n" * 500, "usr/local/bin/tool": bytes(range(256)) * 40}


@pytest.mark.parametrize("encode", [lambda data: data, gzip.compress, multi_member_gzip],
                         ids=["tar", "tar.gz", "multi-member tar.gz"])
def test_matching_archive_passes(store, encode):
    key = put(store, encode(tar_bytes(FILES, links={"etc/app.conf.bak": "etc/app.conf"})))
    expected = {path: digest(content) for path, content in FILES.items()}
    expected["etc/app.conf.bak"] = digest(FILES["etc/app.conf"])
    check = verify_overlay(store, key, expected)
    assert check.ok, check.message()
    assert (check.members, check.files) == (3, 2)


def test_every_member_of_a_multi_member_gzip_is_read(store):
    key = put(store, multi_member_gzip(tar_bytes(FILES), piece=700))
    assert set(verify_overlay(store, key, None).found) == set(FILES)


def test_differences_are_named(store):
    changed = {**FILES, "etc/app.conf": b"listen 8080\n"}
    key = put(store, gzip.compress(tar_bytes(changed)))
    expected = {**{path: digest(content) for path, content in FILES.items()}, "etc/missing": (1, None)}
    check = verify_overlay(store, key, expected)
    assert not check.ok
    assert "'etc/app.conf' has 12 bytes in the archive" in check.message()
    assert "'etc/missing' is in the report but not in the archive" in check.message()


@pytest.mark.parametrize("name", ["/etc/passwd", "../escape", "a/../../b"])
def test_unsafe_member_names_are_refused(store, name):
    check = verify_overlay(store, put(store, tar_bytes({name: b"x"})), None)
    assert not check.ok and "unsafe member name" in check.message()


@pytest.mark.parametrize("data", [b"not an archive at all" * 100, b"", None], ids=["garbage", "empty", "truncated"])
def test_unreadable_archives_are_refused(store, data):
    if data is None:
        data = gzip.compress(tar_bytes(FILES))[:-200]
    check = verify_overlay(store, put(store, data), None)
    assert not check.ok and "cannot be read" in check.message()


def _archive(*members: tuple[str, str, bytes]) -> bytes:
    """A tar of (name, kind, content or link target) in this order, duplicates allowed."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload.decode()
                archive.addfile(info)
            else:
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_a_member_twice_is_refused_even_when_its_last_copy_matches(store):
    key = put(store, _archive(("etc/d", "file", b"not what the report says"), ("etc/d", "file", b"reported")))
    check = verify_overlay(store, key, {"etc/d": digest(b"reported")})
    assert not check.ok and "'etc/d' is in the archive twice" in check.message()


def test_a_member_below_a_symlink_is_refused(store):
    key = put(store, _archive(("opt/x", "symlink", b"/etc"), ("opt/x/evil", "file", b"payload")))
    check = verify_overlay(store, key, {"opt/x/evil": digest(b"payload")})
    assert not check.ok and "'opt/x/evil' lies below the symlink 'opt/x'" in check.message()


def test_a_symlink_beside_files_is_fine(store):
    key = put(store, _archive(("opt/x", "symlink", b"/etc"), ("opt/xy/file", "file", b"ok")))
    assert verify_overlay(store, key, {"opt/xy/file": digest(b"ok")}).ok
