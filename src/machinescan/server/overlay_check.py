"""Checking a stored overlay archive: a readable tar (plain or gzip, multi-member too) with safe member names
whose regular files have the sizes and sha256 digests the report announced. Streams; extracts nothing."""

import hashlib
import io
import tarfile
import zlib
from dataclasses import dataclass, field

from .blobs import BlobStore

READ_BLOCK = 1024 * 1024
MAX_PROBLEMS = 20  # enough to say what differs without an unbounded message

# path (as in the archive: relative, no leading '/') -> (size, sha256); None where the report has no value.
ExpectedMembers = dict[str, tuple[int | None, str | None]]


@dataclass
class OverlayCheck:
    members: int = 0
    files: int = 0
    bytes_in_files: int = 0
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0
    # the regular files (and hard links to them) found, with their digests: path -> (size, sha256)
    found: dict[str, tuple[int, str]] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)  # every member so far, to refuse a second copy
    symlinks: set[str] = field(default_factory=set)  # no member may lie below one (extraction escapes)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self.more_problems += 1

    def message(self) -> str:
        if self.ok:
            return f"overlay verified: {self.members} members, {self.files} files, {self.bytes_in_files} bytes"
        more = f" (and {self.more_problems} more)" if self.more_problems else ""
        return "the overlay archive does not match the report: " + "; ".join(self.problems) + more


class _Chunks(io.RawIOBase):
    """A raw file over a source of byte blocks, read without copying whole blocks around."""

    def __init__(self, next_block):
        self._next_block = next_block  # returns b"" at the end
        self._block = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._block:
            block = self._next_block()
            if not block:
                return 0
            self._block = memoryview(block)
        count = min(len(buffer), len(self._block))
        buffer[:count] = self._block[:count]
        self._block = self._block[count:]
        return count


def _gzip_members(compressed: io.BufferedReader):
    """The decompressed blocks of a gzip stream of one or more members (tarfile's reader stops after one)."""
    decompressor = zlib.decompressobj(wbits=31)

    def next_block() -> bytes:
        nonlocal decompressor
        while True:
            if decompressor.eof:
                rest = decompressor.unused_data or compressed.read(READ_BLOCK)
                if not rest:
                    return b""
                decompressor = zlib.decompressobj(wbits=31)
                data = rest
            else:
                data = decompressor.unconsumed_tail or compressed.read(READ_BLOCK)
                if not data:
                    raise zlib.error("the gzip stream is truncated")
            output = decompressor.decompress(data, READ_BLOCK)
            if output:
                return output

    return next_block


def tar_stream(blobs: BlobStore, key: str) -> io.BufferedReader:
    """The tar bytes of the archive at `key`, decompressed on the fly when it is gzipped."""
    blocks = iter(blobs.read(key))
    raw = io.BufferedReader(_Chunks(lambda: next(blocks, b"")), READ_BLOCK)
    # Our agent writes a multi-member gzip (blocks compressed in parallel); tarfile's own gzip reading
    # ("r|*", "r|gz") stops after the first member, so the members are decompressed here.
    if raw.peek(2)[:2] == b"\x1f\x8b":
        return io.BufferedReader(_Chunks(_gzip_members(raw)), READ_BLOCK)
    return raw


def member_path(name: str) -> str:
    """A member's name as the report's paths are, without the leading '/': `etc/hosts`."""
    return name.removeprefix("./").rstrip("/")


def unsafe_name(name: str) -> bool:
    return name.startswith("/") or ".." in name.split("/") or name == ""


def verify_overlay(blobs: BlobStore, key: str, expected_members: ExpectedMembers | None) -> OverlayCheck:
    """Read the archive at `key` once, and say what is wrong with it (`problems` empty when nothing)."""
    check = OverlayCheck()
    try:
        with tarfile.open(fileobj=tar_stream(blobs, key), mode="r|") as archive:
            for member in archive:
                _check_member(archive, member, check)
    except (tarfile.TarError, zlib.error, EOFError, OSError) as error:
        check.problem(f"the archive cannot be read after {check.members} members ({error}); "
                      f"it must be a tar or tar.gz file")
        return check
    if expected_members is not None:
        _compare(check, expected_members)
    return check


def _check_member(archive: tarfile.TarFile, member: tarfile.TarInfo, check: OverlayCheck) -> None:
    check.members += 1
    name = member_path(member.name)
    if unsafe_name(member.name):
        check.problem(f"unsafe member name {member.name!r} (absolute or with '..')")
        return
    if name in check.names:
        check.problem(f"{member.name!r} is in the archive twice")
        return
    check.names.add(name)
    parents = name.split("/")[:-1]
    through = next((link for link in ("/".join(parents[:depth]) for depth in range(1, len(parents) + 1))
                    if link in check.symlinks), None)
    if through is not None:
        check.problem(f"{member.name!r} lies below the symlink {through!r}: extracted, it would land elsewhere")
        return
    if member.issym():
        check.symlinks.add(name)
    if member.islnk():
        if unsafe_name(member.linkname):
            check.problem(f"hard link {member.name!r} points to an unsafe name {member.linkname!r}")
        elif member_path(member.linkname) in check.found:
            check.found[name] = check.found[member_path(member.linkname)]
        return
    if not member.isfile():
        return
    hasher = hashlib.sha256()
    content = archive.extractfile(member)
    size = 0
    while block := content.read(READ_BLOCK):
        hasher.update(block)
        size += len(block)
    if size != member.size:
        check.problem(f"{member.name!r} is cut short ({size} of {member.size} bytes)")
    check.files += 1
    check.bytes_in_files += size
    check.found[name] = (size, hasher.hexdigest())


def _compare(check: OverlayCheck, expected_members: ExpectedMembers) -> None:
    for path, (size, digest) in expected_members.items():
        found = check.found.get(path)
        if found is None:
            check.problem(f"{path!r} is in the report but not in the archive")
            continue
        if size is not None and found[0] != size:
            check.problem(f"{path!r} has {found[0]} bytes in the archive, {size} in the report")
        elif digest is not None and found[1] != digest:
            check.problem(f"{path!r} differs: sha256 {found[1]} in the archive, {digest} in the report")
