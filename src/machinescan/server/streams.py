"""Request bodies streamed into the blob store block by block, with their CRC-32 and size checked on the way."""

import zlib
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from .blobs import BlobWriter
from .errors import PayloadTooLarge

# Requests arrive in socket-sized pieces; gathering them into 1 MiB writes keeps thread hops rare.
WRITE_BLOCK = 1024 * 1024


class Received:
    def __init__(self) -> None:
        self.size = 0
        self.crc32 = 0


async def stream_into(blocks: AsyncIterator[bytes], writer: BlobWriter, limit: int, what: str) -> Received:
    received = Received()
    pending = bytearray()
    async for block in blocks:
        received.size += len(block)
        if received.size > limit:
            raise PayloadTooLarge(f"the {what} is larger than the limit of {limit} bytes")
        received.crc32 = zlib.crc32(block, received.crc32)
        pending += block
        if len(pending) >= WRITE_BLOCK:
            await run_in_threadpool(writer.write, bytes(pending))
            pending.clear()
    if pending:
        await run_in_threadpool(writer.write, bytes(pending))
    return received
