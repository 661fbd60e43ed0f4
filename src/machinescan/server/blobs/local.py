"""The local-folder blob backend: one file per key, written to a temporary name, made durable, renamed.

A partial upload is a file of its own under the key's folder (`<key>.partial-<random>`, so it goes with
its scan's prefix); a chunk is staged in `.staging/`, then copied into the partial file in the kernel
(`copy_file_range`) and fsynced. The staged copy is unlinked within milliseconds, usually before the page
cache writes it back, so the disk sees each byte about once.
"""

import os
import shutil
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
    def __init__(self, path: Path):
        self.path = path
        self.size = 0
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)

    def write(self, block: bytes) -> None:
        view = memoryview(block)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.size += len(block)

    def discard(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            self.path.unlink(missing_ok=True)


def _copy_range(source_fd: int, target_fd: int, count: int, target_offset: int) -> None:
    source_offset = 0
    while count > 0:
        try:
            copied = os.copy_file_range(source_fd, target_fd, count, source_offset, target_offset)
        except OSError:  # no copy_file_range across these files: copy through user space
            copied = os.pwrite(target_fd, os.pread(source_fd, min(count, READ_BLOCK), source_offset),
                               target_offset)
        if copied == 0:
            raise OSError(f"short copy: {count} bytes left to append")
        source_offset += copied
        target_offset += copied
        count -= copied


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

    def stage_chunk(self, handle: str) -> LocalStagedChunk:
        return LocalStagedChunk(self.root / _STAGING / uuid.uuid4().hex)

    def append(self, handle: str, offset: int, staged: StagedChunk) -> None:
        assert isinstance(staged, LocalStagedChunk) and staged.fd is not None
        fd = os.open(self._path(handle), os.O_RDWR | os.O_CLOEXEC)
        try:
            stored = os.fstat(fd).st_size
            if stored < offset:
                raise OSError(f"partial upload {handle} holds {stored} bytes, fewer than the "
                              f"{offset} acknowledged: the storage lost data")
            if stored > offset:
                os.ftruncate(fd, offset)  # never acknowledged: left by a process that died mid-append
            _copy_range(staged.fd, fd, staged.size, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        staged.discard()

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
