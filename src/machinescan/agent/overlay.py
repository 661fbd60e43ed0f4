"""Streaming overlay archive: a GNU tar of the added and modified entries, as a parallel multi-member gzip.

What goes in (decided by the scan, recorded as `in_overlay` in the report): added and modified regular
files, symlinks and directories (a directory member carries the mode, owner and mtime of an added
directory; owned directories are rebuilt by their packages, so they are not stored). Fifos, sockets and
devices never go in. Member names are the scanned paths without the leading '/' ('etc/app.conf'), as
raw bytes (GNU format, long names through ././@LongLink). A second path of an inode already stored
becomes a tar hard link to it. Every member has exactly the size its header declares: a file that
shrinks while read is padded with zeros, one that grows is cut, and both are reported as
`changed_during_read`.

Policy (recorded in the report header): a regular file larger than `max_file_size` is left out
(`too_large`); a sparse file (holes confirmed with SEEK_HOLE) is left out (`sparse`) unless
`sparse="store"`, which stores it whole, holes as zeros, within `max_file_size`.

Compression (`auto`, `gzip`, `none`): the tar stream is cut in blocks, each compressed by a thread pool
(zlib releases the GIL) into an independent gzip member at level 1; `auto` stores at level 0 the blocks
whose samples do not shrink, and both store at level 0 a block whose compressed form is not smaller.
At most a few blocks are in flight, so memory stays bounded whatever the archive size.
"""

import collections
import concurrent.futures
import hashlib
import os
import stat
import tarfile
import zlib

from .changes import NotARegularFile, open_regular_file

BLOCK_SIZE = 1024 * 1024
READ_SIZE = 1024 * 1024
TAR_BLOCK = 512
TAR_RECORD = 20 * TAR_BLOCK
COMPRESS_MODES = ("auto", "gzip", "none")
SPARSE_POLICIES = ("skip", "store")
DEFAULT_MAX_FILE_SIZE = 4 * 1024 ** 3

# A block is taken as incompressible when level 1 saves less than this share on its samples.
_SAMPLE_SIZE = 16 * 1024
_INCOMPRESSIBLE_RATIO = 0.97


class OverlayError(Exception):
    """The overlay archive cannot be written (the output failed); the scan cannot go on with it."""


# ---------------------------------------------------------------------------------------------------
# Compressed output


def gzip_member(block, level):
    """One independent gzip member holding `block`, compressed at `level`."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(block) + compressor.flush()


def looks_incompressible(block):
    """True when level 1 barely shrinks three samples of the block (start, middle, end)."""
    if len(block) <= 3 * _SAMPLE_SIZE:
        samples = [block]
    else:
        middle = len(block) // 2
        samples = [block[:_SAMPLE_SIZE], block[middle:middle + _SAMPLE_SIZE], block[-_SAMPLE_SIZE:]]
    sample_bytes = sum(len(sample) for sample in samples)
    compressed = sum(len(zlib.compress(sample, 1)) for sample in samples)
    return compressed >= sample_bytes * _INCOMPRESSIBLE_RATIO


def compress_block(block, mode):
    """The gzip member for one block: level 1, or level 0 (stored) when compressing does not pay."""
    if mode == "auto" and looks_incompressible(block):
        return gzip_member(block, 0)
    member = gzip_member(block, 1)
    if len(member) >= len(block):
        return gzip_member(block, 0)
    return member


class CompressedOutput(object):
    """A write-only byte sink that compresses blocks in parallel and counts and hashes what it writes."""

    def __init__(self, fileobj, mode="auto", workers=None, block_size=BLOCK_SIZE):
        if mode not in COMPRESS_MODES:
            raise ValueError("compression must be one of %s, not %r" % (", ".join(COMPRESS_MODES), mode))
        self.fileobj = fileobj
        self.mode = mode
        self.block_size = block_size
        self.size = 0             # bytes written to fileobj
        self.sha256 = hashlib.sha256()
        self.raw_size = 0         # bytes of the uncompressed tar stream
        self._buffer = bytearray()
        self._pending = collections.deque()
        workers = workers or os.cpu_count() or 2
        # Enough blocks queued that a worker never idles while the reader is busy with small files.
        self._max_in_flight = 4 * workers
        self._pool = None if mode == "none" else concurrent.futures.ThreadPoolExecutor(max_workers=workers)

    def write(self, data):
        self.raw_size += len(data)
        self._buffer += data
        while len(self._buffer) >= self.block_size:
            self._submit(bytes(self._buffer[:self.block_size]))
            # bytearray drops a prefix without moving the rest (CPython keeps a start offset).
            del self._buffer[:self.block_size]

    def close(self):
        """Flush everything; returns (archive size, archive sha256 hex)."""
        if self._buffer:
            self._submit(bytes(self._buffer))
            self._buffer = bytearray()
        while self._pending:
            self._emit(self._pending.popleft())
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.fileobj.flush()
        return self.size, self.sha256.hexdigest()

    def abandon(self):
        """Stop the workers without writing what is pending (the archive is being thrown away)."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _submit(self, block):
        if self._pool is None:
            self._write_out(block)
            return
        self._pending.append(self._pool.submit(compress_block, block, self.mode))
        while self._pending and (len(self._pending) > self._max_in_flight or self._pending[0].done()):
            self._emit(self._pending.popleft())

    def _emit(self, future):
        self._write_out(future.result())

    def _write_out(self, data):
        try:
            self.fileobj.write(data)
        except OSError as error:
            raise OverlayError("cannot write the overlay archive: %s" % error)
        self.sha256.update(data)
        self.size += len(data)


# ---------------------------------------------------------------------------------------------------
# Policy


class OverlayPolicy(object):
    """Which regular files may go in the overlay: size limit and sparse-file handling."""

    def __init__(self, max_file_size=DEFAULT_MAX_FILE_SIZE, sparse="skip"):
        if sparse not in SPARSE_POLICIES:
            raise ValueError("sparse policy must be one of %s, not %r" % (", ".join(SPARSE_POLICIES), sparse))
        self.max_file_size = max_file_size
        self.sparse = sparse

    def as_record(self):
        return {"max_file_size": self.max_file_size, "sparse": self.sparse}

    def exclusion_note(self, st, disk_path):
        """'sparse' or 'too_large' when a regular file stays out of the overlay, else None."""
        if st.st_size > self.max_file_size:
            return "sparse" if is_sparse(disk_path, st) else "too_large"
        if self.sparse == "skip" and is_sparse(disk_path, st):
            return "sparse"
        return None


def is_sparse(disk_path, st):
    """True when the file has a hole: fewer blocks than its size, confirmed by SEEK_HOLE when available.

    The block count alone misleads on compressing filesystems, hence the SEEK_HOLE check.
    """
    if st.st_size == 0 or st.st_blocks * 512 >= st.st_size:
        return False
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_hole is None:
        return True
    try:
        fd = open_regular_file(disk_path)
    except OSError:
        return True
    try:
        return os.lseek(fd, 0, seek_hole) < st.st_size
    except OSError:
        return True
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------
# Tar stream


class StoredFile(object):
    """The outcome of storing one regular file: what the archive holds and whether it is trustworthy."""

    __slots__ = ("stored", "sha256", "note", "error")

    def __init__(self, stored, sha256=None, note=None, error=None):
        self.stored = stored
        self.sha256 = sha256
        self.note = note
        self.error = error


class OverlayWriter(object):
    """Writes overlay members to a CompressedOutput as a GNU tar stream."""

    def __init__(self, output, read_size=READ_SIZE):
        self.output = output
        self.read_size = read_size
        self.members = 0
        self._stored_inodes = {}  # (dev, ino) -> (member name, sha256) of files stored with content

    def add_directory(self, path, st, owner=None, group=None):
        self._write_header(self._tarinfo(path, st, tarfile.DIRTYPE, owner, group))

    def add_symlink(self, path, st, target, owner=None, group=None):
        info = self._tarinfo(path, st, tarfile.SYMTYPE, owner, group)
        info.linkname = _member_text(target)
        self._write_header(info)

    def add_file(self, path, disk_path, st, owner=None, group=None, on_chunk=None):
        """Store a regular file (or a tar hard link to an earlier path of its inode); returns StoredFile.

        Nothing is written when the file cannot be opened (vanished, replaced, unreadable).
        `on_chunk(path, bytes_done)` runs after each read (a test seam for files that change).
        """
        inode = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and inode in self._stored_inodes:
            return self._add_hard_link(path, st, inode, owner, group)
        try:
            fd = open_regular_file(disk_path)
        except (NotARegularFile, FileNotFoundError) as error:
            return StoredFile(False, note="vanished", error="vanished before it was read")
        except OSError as error:
            return StoredFile(False, note="unreadable", error="cannot open: %s" % (error.strerror or error))
        try:
            info = self._tarinfo(path, st, tarfile.REGTYPE, owner, group)
            info.size = st.st_size
            self._write_header(info)
            result = self._copy_exact(fd, path, st, on_chunk)
        finally:
            os.close(fd)
        if st.st_nlink > 1:
            self._stored_inodes[inode] = (info.name, result.sha256)
        return result

    def close(self):
        """End the tar stream (two zero blocks, padded to a whole record)."""
        end = bytes(2 * TAR_BLOCK)
        self.output.write(end)
        written = self.output.raw_size
        if written % TAR_RECORD:
            self.output.write(bytes(TAR_RECORD - written % TAR_RECORD))

    def _add_hard_link(self, path, st, inode, owner, group):
        target_name, sha256 = self._stored_inodes[inode]
        info = self._tarinfo(path, st, tarfile.LNKTYPE, owner, group)
        info.linkname = target_name
        self._write_header(info)
        return StoredFile(True, sha256=sha256)

    def _copy_exact(self, fd, path, st, on_chunk):
        """Copy exactly st.st_size bytes: zeros stand in for what is missing, extra bytes are dropped."""
        hasher = hashlib.sha256()
        remaining = st.st_size
        note = error = None
        while remaining > 0:
            try:
                chunk = os.read(fd, min(self.read_size, remaining))
            except OSError as read_error:
                note, error = "unreadable", "read failed at byte %d: %s" % (
                    st.st_size - remaining, read_error.strerror or read_error)
                chunk = b""
            if not chunk:
                if note is None:
                    note, error = "changed_during_read", "shrank while read: %d bytes missing, zero-filled" % remaining
                chunk = bytes(min(self.read_size, remaining))
                while remaining > 0:
                    piece = chunk[:remaining]
                    hasher.update(piece)
                    self.output.write(piece)
                    remaining -= len(piece)
                break
            hasher.update(chunk)
            self.output.write(chunk)
            remaining -= len(chunk)
            if on_chunk is not None:
                on_chunk(path, st.st_size - remaining)
        if note is None and _changed_after_read(fd, st):
            note, error = "changed_during_read", "changed while read (size or mtime differs after reading)"
        self._pad(st.st_size)
        return StoredFile(True, sha256=hasher.hexdigest(), note=note, error=error)

    def _pad(self, size):
        if size % TAR_BLOCK:
            self.output.write(bytes(TAR_BLOCK - size % TAR_BLOCK))

    def _tarinfo(self, path, st, member_type, owner, group):
        info = tarfile.TarInfo(_member_name(path))
        info.type = member_type
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid = st.st_uid
        info.gid = st.st_gid
        info.uname = owner or ""
        info.gname = group or ""
        info.mtime = max(0, int(st.st_mtime))
        info.size = 0
        return info

    def _write_header(self, info):
        self.output.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
        self.members += 1


def _changed_after_read(fd, st):
    """True when the file's size or mtime moved since it was walked (a file that grew shows a larger size)."""
    try:
        after = os.fstat(fd)
    except OSError:
        return True
    return after.st_size != st.st_size or after.st_mtime_ns != st.st_mtime_ns


def _member_name(path):
    """Scanned path (bytes, absolute) -> member name as tarfile wants it (str, round-trips to the bytes)."""
    return _member_text(path.lstrip(b"/") or b".")


def _member_text(raw):
    return raw.decode("utf-8", "surrogateescape")
