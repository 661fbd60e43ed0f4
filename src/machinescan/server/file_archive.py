"""Archives of chosen files cut out of a stored overlay (`GET …/files` asking for an archive).

The overlay is read once as a stream and each chosen member is written to a new tar.gz as it passes,
block by block: memory holds one read block and the set of chosen paths, whatever the files' sizes.
"""

import tarfile
import zlib
from collections.abc import Iterable, Iterator

from .blobs import BlobStore
from .overlay_check import READ_BLOCK, member_path, tar_stream, unsafe_name

TAR_BLOCK = 512


def chosen_files(blobs: BlobStore, overlay_key: str, wanted: set[str]) -> Iterator[bytes]:
    """A tar.gz of the overlay members whose paths (`etc/hosts`, no leading '/') are in `wanted`."""
    return _gzipped(_tar(_chosen_members(blobs, overlay_key, wanted)))


def _chosen_members(blobs: BlobStore, key: str, wanted: set[str]):
    written = set()
    with tarfile.open(fileobj=tar_stream(blobs, key), mode="r|") as overlay:
        for member in overlay:
            path = member_path(member.name)
            if path not in wanted or unsafe_name(member.name):
                continue
            # A hard link needs its target earlier in the same archive: when the target was not chosen
            # the link cannot be written, and is left out (docs/api.md says so).
            if member.islnk() and member_path(member.linkname) not in written:
                continue
            written.add(path)
            yield member, _blocks(overlay.extractfile(member)) if member.isfile() else ()


def _blocks(content) -> Iterator[bytes]:
    while block := content.read(READ_BLOCK):
        yield block


def _tar(members: Iterable[tuple[tarfile.TarInfo, Iterable[bytes]]]) -> Iterator[bytes]:
    """The bytes of a POSIX (pax) tar of `members`, each header followed by its data and padding."""
    for member, blocks in members:
        yield member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        size = 0
        for block in blocks:
            size += len(block)
            yield block
        if size % TAR_BLOCK:
            yield bytes(TAR_BLOCK - size % TAR_BLOCK)
    yield bytes(2 * TAR_BLOCK)  # end of archive


def _gzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        if compressed := compressor.compress(chunk):
            yield compressed
    yield compressor.flush()
