"""The first file part of a `multipart/form-data` body, as a stream of blocks (never spooled whole)."""

from collections.abc import AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import BadRequest


async def first_part(blocks: AsyncIterator[bytes], content_type: str) -> AsyncIterator[bytes]:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest("multipart/form-data without a boundary")
    state = {"part": 0, "done": False}
    out: list[bytes] = []

    def on_part_begin() -> None:
        state["part"] += 1

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["part"] == 1:
            out.append(data[start:end])

    def on_end() -> None:
        state["done"] = True

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_part_data": on_part_data,
                                        "on_end": on_end})
    try:
        async for block in blocks:
            parser.write(block)
            while out:
                yield out.pop(0)
        parser.finalize()
    except MultipartParseError as error:
        raise BadRequest(f"malformed multipart/form-data body: {error}") from None
    while out:
        yield out.pop(0)
    if state["part"] == 0:
        raise BadRequest("the multipart body holds no file part")
