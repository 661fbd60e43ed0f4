"""The overlay archive: exact members, GNU tar extraction byte for byte, compression modes, odd files."""

import gzip
import hashlib
import os
import stat
import subprocess
import zlib

import pytest

from machinescan.agent.overlay import (CompressedOutput, OverlayPolicy, OverlayWriter, compress_block,
                                       gzip_member, is_sparse)


def write_overlay(archive_path, root, paths, compress="auto", block_size=64 * 1024, on_chunk=None,
                  read_size=1024 * 1024):
    """Store `paths` (bytes, from root) found under `root`; returns (results by path, size, sha256, members)."""
    root = os.fsencode(str(root))
    results = {}
    with open(archive_path, "wb") as archive:
        output = CompressedOutput(archive, compress, workers=2, block_size=block_size)
        writer = OverlayWriter(output, read_size=read_size)
        for path in paths:
            disk_path = root + path
            st = os.lstat(disk_path)
            if stat.S_ISDIR(st.st_mode):
                writer.add_directory(path, st, "root", "root")
            elif stat.S_ISLNK(st.st_mode):
                writer.add_symlink(path, st, os.readlink(disk_path))
            else:
                results[path] = writer.add_file(path, disk_path, st, on_chunk=on_chunk)
        writer.close()
        size, sha256 = output.close()
    return results, size, sha256, writer.members


def extract_with_gnu_tar(archive_path, target):
    os.makedirs(str(target), exist_ok=True)
    subprocess.check_call(["tar", "-xpf", str(archive_path), "-C", str(target)])


def assert_same_entry(original, extracted):
    before, after = os.lstat(original), os.lstat(extracted)
    assert stat.S_IFMT(before.st_mode) == stat.S_IFMT(after.st_mode), original
    assert stat.S_IMODE(before.st_mode) == stat.S_IMODE(after.st_mode), original
    assert int(before.st_mtime) == int(after.st_mtime), original
    if stat.S_ISREG(before.st_mode):
        with open(original, "rb") as a, open(extracted, "rb") as b:
            assert a.read() == b.read(), original
    if stat.S_ISLNK(before.st_mode):
        assert os.readlink(original) == os.readlink(extracted)


def make_tree(root):
    """Files worth archiving: odd names, long names, setuid, symlinks, compressible and random content."""
    root = os.fsencode(str(root))
    os.makedirs(root + b"/etc/app")
    os.makedirs(root + b"/opt/" + b"x" * 150 + b"/deep")
    files = {
        b"/etc/app/conf": b"key=value\n" * 1000,
        b"/etc/app/caf\xe9": b"latin-1 name\n",
        b"/etc/app/new\nline": b"newline in name\n",
        b"/opt/" + b"x" * 150 + b"/deep/" + b"y" * 120: os.urandom(300 * 1024),
        b"/etc/app/empty": b"",
        b"/etc/app/exact512": b"z" * 512,
    }
    for path, content in files.items():
        with open(root + path, "wb") as handle:
            handle.write(content)
    os.chmod(root + b"/etc/app/conf", 0o4750)
    os.utime(root + b"/etc/app/conf", (1500000000, 1500000000))
    os.symlink(b"conf", root + b"/etc/app/link")
    os.symlink(b"/nonexistent/\xff", root + b"/etc/app/dangling")
    # Sorted together, as the walk yields them: a directory's members are contiguous. GNU tar sets a
    # directory's mtime once it meets a member outside it, so a member put back into it later would move
    # that mtime to the time of extraction (this test failed so when the clock ticked mid-extraction).
    return [b"/etc", b"/etc/app"] + sorted(list(files) + [b"/etc/app/link", b"/etc/app/dangling"])


@pytest.mark.parametrize("compress", ["auto", "gzip", "none"])
def test_overlay_extracts_byte_exact_with_gnu_tar(tmp_path, compress):
    source = tmp_path / "source"
    paths = make_tree(source)
    archive = tmp_path / "overlay.tar"
    results, size, sha256, members = write_overlay(archive, source, paths, compress=compress)
    extract_with_gnu_tar(archive, tmp_path / "out")
    for path in paths:
        assert_same_entry(os.fsencode(str(source)) + path, os.fsencode(str(tmp_path / "out")) + path)
    data = archive.read_bytes()
    assert size == len(data)
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert members == len(paths)
    for path, result in results.items():
        with open(os.fsencode(str(source)) + path, "rb") as handle:
            assert result.sha256 == hashlib.sha256(handle.read()).hexdigest()
        assert result.note is None


def gnu_tar_escaped(name):
    """A member name as GNU tar's default quoting style (escape) prints it."""
    named = {0x5C: b"\\\\", 0x0A: b"\\n", 0x09: b"\\t"}
    out = b""
    for byte in name:
        if byte in named:
            out += named[byte]
        elif 0x20 <= byte < 0x7F:
            out += bytes([byte])
        else:
            out += b"\\%03o" % byte
    return out


def test_gnu_tar_lists_exactly_the_members_written(tmp_path):
    source = tmp_path / "source"
    paths = make_tree(source)
    archive = tmp_path / "overlay.tar.gz"
    write_overlay(archive, source, paths)
    listed = subprocess.check_output(["tar", "-tzf", str(archive)])
    names = [name.rstrip(b"/") for name in listed.split(b"\n") if name]
    assert names == [gnu_tar_escaped(path.lstrip(b"/")) for path in paths]


def test_compressed_overlay_is_multi_member_gzip(tmp_path):
    source = tmp_path / "source"
    paths = make_tree(source)
    archive = tmp_path / "overlay.tar.gz"
    write_overlay(archive, source, paths, compress="gzip", block_size=16 * 1024)
    data = archive.read_bytes()
    members = 0
    remaining = data
    while remaining:
        decompressor = zlib.decompressobj(31)
        decompressor.decompress(remaining)
        assert decompressor.eof
        remaining = decompressor.unused_data
        members += 1
    assert members > 10
    assert gzip.decompress(data)[:100].startswith(b"etc/")


def test_incompressible_block_is_stored_at_level_0():
    random_block = os.urandom(256 * 1024)
    member = compress_block(random_block, "auto")
    assert zlib.decompress(member, 31) == random_block
    assert len(member) < len(random_block) + 200  # stored: only gzip framing is added
    assert member == gzip_member(random_block, 0)
    text_block = b"hello world " * 20000
    assert len(compress_block(text_block, "auto")) < len(text_block) / 10


def test_hard_links_become_tar_hard_links(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "first").write_bytes(b"shared content\n")
    os.link(str(source / "first"), str(source / "second"))
    archive = tmp_path / "overlay.tar.gz"
    results, _, _, _ = write_overlay(archive, source, [b"/first", b"/second"])
    listing = subprocess.check_output(["tar", "-tvzf", str(archive)]).decode()
    assert "second link to first" in listing
    extract_with_gnu_tar(archive, tmp_path / "out")
    out_first, out_second = os.stat(str(tmp_path / "out" / "first")), os.stat(str(tmp_path / "out" / "second"))
    assert out_first.st_ino == out_second.st_ino
    assert results[b"/second"].sha256 == results[b"/first"].sha256


def test_file_that_shrinks_while_read_is_zero_padded_and_noted(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    content = os.urandom(3 * 65536)
    (source / "log").write_bytes(content)

    def shrink(path, done):
        if done == 65536:
            os.truncate(str(source / "log"), 100000)

    archive = tmp_path / "overlay.tar.gz"
    results, _, _, _ = write_overlay(archive, source, [b"/log", ], on_chunk=shrink, read_size=65536)
    (source / "after").write_bytes(b"")  # nothing else needed: the archive must still be readable
    extract_with_gnu_tar(archive, tmp_path / "out")
    extracted = (tmp_path / "out" / "log").read_bytes()
    expected = content[:100000] + bytes(len(content) - 100000)
    assert extracted == expected
    assert results[b"/log"].note == "changed_during_read"
    assert results[b"/log"].sha256 == hashlib.sha256(expected).hexdigest()


def test_file_that_grows_while_read_is_cut_at_declared_size(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    content = os.urandom(2 * 65536 + 7)
    (source / "log").write_bytes(content)
    (source / "next").write_bytes(b"next member\n")

    def grow(path, done):
        if path == b"/log" and done == 65536:
            with open(str(source / "log"), "ab") as handle:
                handle.write(b"appended" * 1000)

    archive = tmp_path / "overlay.tar.gz"
    results, _, _, _ = write_overlay(archive, source, [b"/log", b"/next"], on_chunk=grow, read_size=65536)
    extract_with_gnu_tar(archive, tmp_path / "out")
    assert (tmp_path / "out" / "log").read_bytes() == content
    assert (tmp_path / "out" / "next").read_bytes() == b"next member\n"
    assert results[b"/log"].note == "changed_during_read"
    assert results[b"/next"].note is None


def test_file_deleted_before_read_writes_no_member(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "kept").write_bytes(b"kept\n")
    (source / "gone").write_bytes(b"gone\n")
    st = os.lstat(str(source / "gone"))
    (source / "gone").unlink()
    archive = tmp_path / "overlay.tar.gz"
    with open(str(archive), "wb") as handle:
        output = CompressedOutput(handle, "auto", workers=2)
        writer = OverlayWriter(output)
        result = writer.add_file(b"/gone", os.fsencode(str(source / "gone")), st)
        writer.add_file(b"/kept", os.fsencode(str(source / "kept")), os.lstat(str(source / "kept")))
        writer.close()
        output.close()
    assert not result.stored and result.note == "vanished"
    assert subprocess.check_output(["tar", "-tzf", str(archive)]) == b"kept\n"


def test_fifo_put_in_place_of_a_file_is_not_read(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "was_file").write_bytes(b"x")
    st = os.lstat(str(source / "was_file"))
    (source / "was_file").unlink()
    os.mkfifo(str(source / "was_file"))
    with open(str(tmp_path / "o.tar"), "wb") as handle:
        writer = OverlayWriter(CompressedOutput(handle, "none"))
        result = writer.add_file(b"/was_file", os.fsencode(str(source / "was_file")), st)
    assert not result.stored and result.note == "vanished"


def test_20_gb_sparse_file_is_detected_without_reading_it(tmp_path):
    sparse = tmp_path / "disk.img"
    subprocess.check_call(["truncate", "-s", "20G", str(sparse)])
    with open(str(sparse), "r+b") as handle:
        handle.seek(10 * 1024 ** 3)
        handle.write(b"data in the middle")
    st = os.lstat(str(sparse))
    assert is_sparse(os.fsencode(str(sparse)), st)
    assert OverlayPolicy(max_file_size=100 * 1024 ** 3, sparse="skip").exclusion_note(st, str(sparse)) == "sparse"
    assert OverlayPolicy(max_file_size=1024 ** 3, sparse="store").exclusion_note(st, str(sparse)) == "sparse"
    assert OverlayPolicy(max_file_size=100 * 1024 ** 3, sparse="store").exclusion_note(st, str(sparse)) is None


def test_dense_file_is_not_sparse_and_too_large_is_noted(tmp_path):
    dense = tmp_path / "dense"
    dense.write_bytes(os.urandom(200000))
    st = os.lstat(str(dense))
    assert not is_sparse(os.fsencode(str(dense)), st)
    assert OverlayPolicy(max_file_size=100000).exclusion_note(st, str(dense)) == "too_large"
    assert OverlayPolicy(max_file_size=200000).exclusion_note(st, str(dense)) is None


def test_sparse_file_stored_by_policy_extracts_exactly(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    sparse = source / "holes"
    subprocess.check_call(["truncate", "-s", "3M", str(sparse)])
    with open(str(sparse), "r+b") as handle:
        handle.seek(1024 * 1024)
        handle.write(b"middle")
    archive = tmp_path / "overlay.tar.gz"
    write_overlay(archive, source, [b"/holes"])
    extract_with_gnu_tar(archive, tmp_path / "out")
    assert_same_entry(str(sparse), str(tmp_path / "out" / "holes"))


def test_pending_blocks_stay_bounded(tmp_path):
    class SlowSink(object):
        def __init__(self):
            self.chunks = 0

        def write(self, data):
            self.chunks += 1

        def flush(self):
            pass

    output = CompressedOutput(SlowSink(), "gzip", workers=2, block_size=4096)
    peak = 0
    for _ in range(500):
        output.write(os.urandom(4096))
        peak = max(peak, len(output._pending))
    output.close()
    assert peak <= 8  # 4 blocks per worker
    assert output.raw_size == 500 * 4096
