"""Where reports and overlays live: the `BlobStore` interface and the choice of backend by URL.

Two ways in. `writer(key)` writes a whole blob that replaces `key` atomically on commit (reports, whole
overlay uploads). Partial uploads (chunked overlays, upload-protocol.md) grow chunk by chunk across
requests, processes and restarts: `create_partial` names one with a *handle* that the caller keeps in the
database; each chunk is first *staged* (`stage_chunk`) and, only once its checks passed, `append`ed at
the offset the database acknowledges, durably; `finalize` turns the complete upload into an ordinary blob
and `abort_partial` drops it. The offset lives in the database, never in the store: bytes past the
offset it is given (a chunk that failed, or a process that died mid-chunk) are dropped or ignored, so a
crash can never move the acknowledged offset.

S3 backend (design, not built yet). The handle is `<key>|<multipart upload id>`; `create_partial` is
CreateMultipartUpload. S3 parts are 5 MiB at least except the last, and a part cannot be read back or
changed once uploaded, so the backend keeps a *tail*: the bytes after the last full part, as one small
staging object `<key>.tail-<offset where it ends>` (less than one part). Parts have one fixed size P
(e.g. 8 MiB), part n holding bytes [(n-1)P, nP). `stage_chunk` streams the body to a staging object (or a
local temporary file) and holds nothing; `append(handle, offset, staged)` reads the tail that ends at
`offset` (a tail or parts written by an append that was never acknowledged are simply overwritten or
ignored: the names derive from offsets), uploads every full part (UploadPart with `x-amz-checksum-crc32`) and keeps the
remainder as the new tail. `partial_size` is parts + tail; `read_partial` serves
only the tail (parts are unreadable before completion), so the caller's retry check relies on the CRC
recorded per chunk, and the whole-archive sha256 fallback reads the finalized object (see uploads.py).
`finalize` uploads the tail as the last part and CompleteMultipartUpload, then copies nothing: the object
is written straight at `key`; if it finds the multipart upload already completed (a crash between
completion and the database commit) and the object at `key` has the right size, it succeeds.
`abort_partial` is AbortMultipartUpload plus deleting the tail; expiry calls it, and a bucket lifecycle
rule (AbortIncompleteMultipartUpload after a few days) catches what a crash left.
"""

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


class StagedChunk(ABC):
    """The body of one chunk request, held aside until its size and CRC are checked; then appended or discarded."""

    @abstractmethod
    def write(self, block: bytes) -> None: ...

    @abstractmethod
    def discard(self) -> None:
        """Forget the staged bytes (idempotent; also after `append`)."""


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

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one committed blob (nothing happens when it is absent)."""

    # ------------------------------------------------------------ partial uploads

    @abstractmethod
    def create_partial(self, key: str) -> str:
        """Start an empty partial upload meant to become `key`; returns its handle (kept by the caller)."""

    @abstractmethod
    def stage_chunk(self, handle: str, offset: int) -> StagedChunk:
        """A place for the body of the chunk that starts at byte `offset`, while it is received and checked.

        A backend may stage in place, past the acknowledged bytes (the local one does: no second copy);
        then the staged chunk holds the partial upload exclusively until discarded (another
        `stage_chunk` on it waits), nothing changes before its first `write`, and the caller must check,
        once it holds it, that `offset` is still the acknowledged offset.
        """

    @abstractmethod
    def append(self, handle: str, offset: int, staged: StagedChunk) -> None:
        """Make the partial upload its first `offset` bytes followed by the staged bytes, durably.

        Bytes stored past `offset` and not staged (never acknowledged) are dropped. `discard` still
        follows, and then keeps the appended bytes.
        """

    @abstractmethod
    def partial_size(self, handle: str) -> int | None:
        """The bytes stored in a partial upload (acknowledged or not), None when it does not exist."""

    @abstractmethod
    def read_partial(self, handle: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes `start` to `end` (exclusive) of a partial upload; raises `NotReadable` where the backend cannot."""

    @abstractmethod
    def finalize(self, handle: str, key: str) -> None:
        """Make the partial upload the committed blob `key` (replacing it), durably.

        The partial upload stays until `abort_partial`, so a crash before the caller records the
        completion loses nothing; calling it again is harmless.
        """

    @abstractmethod
    def abort_partial(self, handle: str) -> None:
        """Drop a partial upload and its storage (idempotent)."""


class InvalidKey(ValueError):
    pass


class NotReadable(Exception):
    """The backend cannot read this part of a partial upload back (S3 parts before completion)."""


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
