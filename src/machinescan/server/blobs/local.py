"""The local-folder blob backend: one file per key, written to a temporary name, made durable, renamed."""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from . import READ_BLOCK, BlobStore, BlobWriter, check_key

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
