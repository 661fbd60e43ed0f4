"""The local blob backend: chunks staged in place at any offset, written directly or through the page cache."""

import hashlib
import os
import random

import pytest

from machinescan.server.blobs import local
from machinescan.server.blobs.local import ALIGNMENT, DIRECT_BUFFER, LocalBlobStore


@pytest.fixture(params=["direct", "buffered"])
def store(request, tmp_path, monkeypatch):
    """A store on tmp_path, once with direct I/O (where the filesystem takes it) and once without."""
    if request.param == "buffered":
        monkeypatch.setattr(local, "_open_direct", lambda path: None)
    return LocalBlobStore(tmp_path / "blobs")


def _append_chunk(store, handle, offset, data, pieces=3):
    staged = store.stage_chunk(handle, offset)
    try:
        step = max(1, len(data) // pieces)
        for start in range(0, len(data), step):
            staged.write(data[start:start + step])
        store.append(handle, offset, staged)
    finally:
        staged.discard()


def _stored(store, key):
    return b"".join(store.read(key))


def test_chunks_of_unaligned_sizes_reassemble_byte_exact(store):
    sizes = [1, ALIGNMENT - 1, ALIGNMENT, ALIGNMENT + 1, 3 * ALIGNMENT + 17, DIRECT_BUFFER + 5,
             2 * DIRECT_BUFFER, 12345]
    rng = random.Random(7)
    expected = bytearray()
    handle = store.create_partial("scans/1/overlay")
    for size in sizes:
        data = rng.randbytes(size)
        _append_chunk(store, handle, len(expected), data)
        expected += data
        assert store.partial_size(handle) == len(expected)
    store.finalize(handle, "scans/1/overlay-final")
    assert hashlib.sha256(_stored(store, "scans/1/overlay-final")).digest() == hashlib.sha256(expected).digest()


def test_discarded_chunk_leaves_the_acknowledged_bytes(store):
    handle = store.create_partial("scans/2/overlay")
    first = os.urandom(ALIGNMENT + 100)
    _append_chunk(store, handle, 0, first)
    staged = store.stage_chunk(handle, len(first))
    staged.write(os.urandom(DIRECT_BUFFER + 3 * ALIGNMENT))  # long enough to reach the disk
    staged.discard()
    assert store.partial_size(handle) == len(first)
    assert b"".join(store.read_partial(handle, 0, len(first))) == first


def test_bytes_left_past_the_offset_by_a_crash_are_dropped(store):
    handle = store.create_partial("scans/3/overlay")
    first = os.urandom(5000)
    _append_chunk(store, handle, 0, first)
    with open(store.root / handle, "ab") as crashed:  # what a process killed mid-chunk leaves
        crashed.write(b"never acknowledged" * 1000)
    second = os.urandom(7000)
    _append_chunk(store, handle, len(first), second)
    assert b"".join(store.read_partial(handle, 0, store.partial_size(handle))) == first + second


def test_whole_blob_written_in_odd_pieces_is_exact(store):
    rng = random.Random(11)
    data = rng.randbytes(2 * DIRECT_BUFFER + ALIGNMENT + 9)
    with store.writer("scans/4/report.jsonl.gz") as writer:
        position = 0
        while position < len(data):
            step = rng.randint(1, 300_000)
            writer.write(data[position:position + step])
            position += step
        writer.commit()
    assert _stored(store, "scans/4/report.jsonl.gz") == data
    assert list(store.keys()) == ["scans/4/report.jsonl.gz"]


def test_aborted_whole_blob_leaves_nothing(store):
    with pytest.raises(RuntimeError):
        with store.writer("scans/5/report.jsonl.gz") as writer:
            writer.write(os.urandom(DIRECT_BUFFER + 1))
            raise RuntimeError("client went away")
    assert list(store.keys()) == []
    assert list((store.root / ".staging").iterdir()) == []


def test_direct_writes_refused_midway_go_on_through_the_page_cache(tmp_path, monkeypatch):
    """A filesystem that takes O_DIRECT at open but refuses the writes (EINVAL): nothing is lost."""
    import errno
    import fcntl

    real_pwrite_all = local._pwrite_all

    def pwrite_all(fd, data, position):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        real_pwrite_all(fd, data, position)

    monkeypatch.setattr(local, "_pwrite_all", pwrite_all)
    store = LocalBlobStore(tmp_path / "blobs")
    rng = random.Random(3)
    data = rng.randbytes(3 * DIRECT_BUFFER + 123)
    handle = store.create_partial("scans/6/overlay")
    _append_chunk(store, handle, 0, data[:100])
    _append_chunk(store, handle, 100, data[100:], pieces=1)  # one write spanning several buffers
    assert b"".join(store.read_partial(handle, 0, len(data))) == data
