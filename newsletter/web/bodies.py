"""Request bodies, read with a byte cap enforced while they stream in, before any parsing.

Every route that reads a body goes through `read_limited` (forms through `read_form`, which
parses the capped bytes), never through Starlette's `request.body()` / `request.form()`,
which buffer whatever arrives. A body announced larger than the cap is refused before a byte
is read; a chunked body (no Content-Length) or one that lies about its length is cut off as
soon as it passes the cap. Either way the answer is 413 and the connection is closed, so at
most the cap (plus one chunk) is ever held in memory and no more of the body is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, Headers
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from newsletter.errors import ValidationError

FORM_MAX_BYTES = 64 * 1024  # sign-up, preferences, one-click unsubscribe: a few fields each
FORM_MAX_FIELDS = 1000


class BodyTooLarge(HTTPException):
    """413, with `Connection: close`: the rest of the body is never read."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body larger than {limit} bytes", headers={"Connection": "close"}
        )
        self.limit = limit


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body if it is at most `limit` bytes; BodyTooLarge as soon as it is not."""
    declared = request.headers.get("content-length", "").strip()
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request, limit: int = FORM_MAX_BYTES) -> FormData:
    """A urlencoded or multipart form (no files), parsed from at most `limit` bytes."""
    return await parse_form(await read_limited(request, limit), request.headers)


def is_form(headers: Headers) -> bool:
    content_type, _ = parse_options_header(headers.get("content-type", ""))
    return content_type in (b"application/x-www-form-urlencoded", b"multipart/form-data")


async def parse_form(body: bytes, headers: Headers) -> FormData:
    """Fields of an already capped body; an empty form for any other content type."""
    content_type, _ = parse_options_header(headers.get("content-type", ""))
    if content_type == b"application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(
                body.decode("utf-8", "replace"),
                keep_blank_values=True,
                max_num_fields=FORM_MAX_FIELDS,
            )
        except ValueError:
            raise ValidationError(f"form: more than {FORM_MAX_FIELDS} fields") from None
        return FormData(pairs)
    if content_type == b"multipart/form-data":

        async def replay() -> AsyncIterator[bytes]:
            yield body

        parser = MultiPartParser(headers, replay(), max_files=0, max_fields=FORM_MAX_FIELDS)
        try:
            return await parser.parse()
        except MultiPartException as err:
            raise ValidationError(f"form: {err.message}") from None
    return FormData()
