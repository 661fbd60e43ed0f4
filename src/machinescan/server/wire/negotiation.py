"""Content negotiation: XML unless the client asks for JSON; request bodies read with a size bound."""

from fastapi import Request, Response

from ..errors import BadRequest, PayloadTooLarge
from .codec import WireError, from_json, from_xml, to_json, to_xml

XML = "application/xml"
JSON = "application/json"


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    if JSON not in accept:
        return False
    return XML not in accept or accept.index(JSON) < accept.index(XML)


def render(request: Request, root: str, resource: dict, status_code: int = 200,
           headers: dict[str, str] | None = None) -> Response:
    if wants_json(request):
        return Response(to_json(resource), status_code, headers, media_type=JSON)
    # Exactly `application/xml`: the SDK refuses a charset parameter.
    response = Response(to_xml(root, resource), status_code, headers)
    response.headers["content-type"] = XML
    return response


def no_content() -> Response:
    return Response(status_code=204)


async def read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is larger than the limit of {limit} bytes")
    body = bytearray()
    async for block in request.stream():
        body += block
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body is larger than the limit of {limit} bytes")
    return bytes(body)


async def read_resource(request: Request, root: str, limit: int) -> dict:
    body = await read_bounded(request, limit)
    if not body.strip():
        raise BadRequest(f"the request needs a <{root}> body")
    content_type = request.headers.get("content-type", "")
    try:
        return from_json(body, root) if JSON in content_type else from_xml(body, root)
    except WireError as error:
        raise BadRequest(str(error)) from None
