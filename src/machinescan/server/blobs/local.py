"""The local-folder blob backend: one file per key, written to a temporary name, made durable, renamed.

A partial upload is a file of its own under the key's folder (`<key>.partial-<random>`, so it goes with
its scan's prefix). A chunk is staged in place: written past the acknowledged bytes under an exclusive
`flock`, with writeback started block by block (so the fsync at `append` finds little left to write and
the disk works while the network delivers), and cut back to the acknowledged offset if it is discarded.
Each byte reaches the disk once.
"""

import fcntl
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from . import READ_BLOCK, BlobStore, BlobWriter, StagedChunk, check_key

_STAGING = ".staging"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobWriter(BlobWriter):
    def __init__(self, staging_path: Path, final_path: Path):
        self._staging_path = staging_path
        self._final_path = final_path
        self._file = open(staging_path, "wb")

    def write(self, block: bytes) -> None:
        self._file.write(block)

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._final_path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._staging_path, self._final_path)
        _fsync_dir(self._final_path.parent)

    def abort(self) -> None:
        self._file.close()
        self._staging_path.unlink(missing_ok=True)


class LocalStagedChunk(StagedChunk):
    """The next chunk, written in place past the acknowledged offset of a partial file held with `flock`."""

    def __init__(self, path: Path, offset: int):
        self.offset = offset
        self.size = 0
        self.appended = False
        self._written = False
        self._lock = threading.Lock()  # a write still running on a worker thread finishes before discard
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # waits for another request staging on this upload

    def write(self, block: bytes) -> None:
        with self._lock:
            if self.fd is None:
                raise OSError("write to a discarded chunk")
            if not self._written:
                self._start()
            position = self.offset + self.size
            view = memoryview(block)
            while view:
                written = os.pwrite(self.fd, view, position)
                view = view[written:]
                position += written
            self.size += len(block)

    def _start(self) -> None:
        stored = os.fstat(self.fd).st_size
        if stored < self.offset:
            raise OSError(f"the partial upload holds {stored} bytes, fewer than the {self.offset} "
                          f"acknowledged: the storage lost data")
        if stored > self.offset:
            os.ftruncate(self.fd, self.offset)  # never acknowledged: a failed chunk or a crash mid-chunk
        self._written = True

    def make_durable(self) -> None:
        with self._lock:
            if not self._written:
                self._start()
            os.ftruncate(self.fd, self.offset + self.size)
            os.fdatasync(self.fd)
            self.appended = True

    def discard(self) -> None:
        with self._lock:
            if self.fd is None:
                return
            try:
                if self._written and not self.appended:
                    os.ftruncate(self.fd, self.offset)
            finally:
                os.close(self.fd)  # releases the flock
                self.fd = None


class LocalBlobStore(BlobStore):
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        (self.root / _STAGING).mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def writer(self, key: str) -> BlobWriter:
        staging = self.root / _STAGING / uuid.uuid4().hex
        return LocalBlobWriter(staging, self._path(key))

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with open(self._path(key), "rb") as blob:
            blob.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                block = blob.read(READ_BLOCK if remaining is None else min(READ_BLOCK, remaining))
                if not block:
                    return
                if remaining is not None:
                    remaining -= len(block)
                yield block

    def delete_prefix(self, prefix: str) -> None:
        target = self._path(prefix.rstrip("/"))
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root)
            if path.is_file() and relative.parts[0] != _STAGING:
                yield relative.as_posix()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    # ------------------------------------------------------------ partial uploads

    def create_partial(self, key: str) -> str:
        handle = check_key(f"{key}.partial-{uuid.uuid4().hex[:12]}")
        path = self._path(handle)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        _fsync_dir(path.parent)
        return handle

    def stage_chunk(self, handle: str, offset: int) -> LocalStagedChunk:
        return LocalStagedChunk(self._path(handle), offset)

    def append(self, handle: str, offset: int, staged: StagedChunk) -> None:
        assert isinstance(staged, LocalStagedChunk) and staged.fd is not None and staged.offset == offset
        staged.make_durable()

    def partial_size(self, handle: str) -> int | None:
        return self.size(handle)

    def read_partial(self, handle: str, start: int, end: int) -> Iterator[bytes]:
        return self.read(handle, start, end)

    def finalize(self, handle: str, key: str) -> None:
        # A hard link, not a rename: the partial file stays until abort_partial, so a crash before the
        # caller records the completion leaves the upload as it was.
        final_path = self._path(key)
        final_path.parent.mkdir(parents=True, exist_ok=True)
        linked = self.root / _STAGING / uuid.uuid4().hex
        os.link(self._path(handle), linked)
        os.replace(linked, final_path)
        _fsync_dir(final_path.parent)

    def abort_partial(self, handle: str) -> None:
        self._path(handle).unlink(missing_ok=True)
