"""Where reports and overlays live: the `BlobStore` interface and the choice of backend by URL."""

from abc import ABC, abstractmethod
from collections.abc import Iterator

READ_BLOCK = 1024 * 1024


class BlobWriter(ABC):
    """A new blob being written; invisible under its key until `commit`, gone after `abort`."""

    @abstractmethod
    def write(self, block: bytes) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is not None:
            self.abort()


class BlobStore(ABC):
    @abstractmethod
    def writer(self, key: str) -> BlobWriter:
        """Start writing a blob that replaces `key` atomically on commit."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The size of a committed blob, None when absent."""

    @abstractmethod
    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes `start` to `end` (exclusive; None: to the end), in blocks."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Delete every blob whose key starts with `prefix` (a folder-like prefix ending in `/`)."""

    @abstractmethod
    def keys(self) -> Iterator[str]:
        """Every committed key (for audits and tests)."""


class InvalidKey(ValueError):
    pass


def check_key(key: str) -> str:
    """Keys are relative, slash-separated, without `.`/`..` parts: they can never leave the store."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts[:-1]) \
            or parts[-1] in (".", ".."):
        raise InvalidKey(f"invalid blob key {key!r}")
    return key


def open_blob_store(url: str) -> BlobStore:
    if url.startswith("file://"):
        from .local import LocalBlobStore

        return LocalBlobStore(url[len("file://"):])
    raise ValueError(f"unsupported blob store URL {url!r} (supported: file:///path)")
