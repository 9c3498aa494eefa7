"""Receiving a push body: streamed to a staging file with a size cap, hashed as it arrives.

NuGet clients send ``multipart/form-data`` with one file part (NuGet.Client ``PackageUpdateResource``:
``MultipartFormDataContent`` with the ``.nupkg`` as a ``StreamContent``); a bare body
(``application/octet-stream``) is accepted too. Nothing is buffered in memory beyond one chunk: the part's
bytes go to a file in the staging folder (same filesystem as storage, so publishing is a hard link or a
rename) while SHA-512 is computed. The upload is refused with 413 as soon as it passes the cap; the rest
of the body is then read and dropped (up to :data:`MAX_DRAIN_BYTES`) so the client gets to read the answer.

The cap bounds the whole body whatever its framing (``Content-Length`` or chunked): the package part may be at
most ``cap`` bytes, and everything else (other multipart fields, part headers, preamble, epilogue) at most
:data:`MULTIPART_OVERHEAD` more. python-multipart bounds each part's headers (8 lines of 4,224 bytes).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from nuseal.feed.errors import BadRequestError, PackageTooLargeError

__all__ = ["MAX_DRAIN_BYTES", "MULTIPART_OVERHEAD", "StagedUpload", "package_sha512", "receive_upload"]


def package_sha512(data: bytes) -> str:
    """The form the feed stores a package's hash in (``Package.sha512``, V2's ``PackageHash``): base64 of the
    SHA-512 of the whole ``.nupkg`` file."""
    return base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


#: Bytes of multipart framing tolerated on top of the package size cap.
MULTIPART_OVERHEAD = 64 * 1024
#: After refusing an oversize upload, at most this much more of the body is read and dropped.
MAX_DRAIN_BYTES = 64 * 1024 * 1024
#: Most parts in one multipart body.
MAX_PARTS = 4


@dataclass
class StagedUpload:
    """The received package: a file in the staging folder, its size and SHA-512 (base64, as NuGet writes it)."""

    path: Path
    size: int
    sha512: str

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _Sink:
    """Writes one part's bytes to the staging file, hashing and counting them against the cap."""

    def __init__(self, path: Path, cap: int) -> None:
        self.path = path
        self.cap = cap
        self.file = open(path, "wb")  # noqa: SIM115 - closed in finish()/abort()
        self.hash = hashlib.sha512()
        self.size = 0
        self.too_large = False

    def write(self, data: bytes | memoryview) -> None:
        if self.too_large:
            return
        self.size += len(data)
        if self.size > self.cap:
            self.too_large = True
            return
        self.hash.update(data)
        self.file.write(data)

    def finish(self) -> StagedUpload:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return StagedUpload(self.path, self.size, base64.b64encode(self.hash.digest()).decode("ascii"))

    def abort(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _Body:
    """Counts every byte of the request body; stops the stream once more than ``limit`` arrived."""

    def __init__(self, stream: AsyncIterator[bytes], limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.size = 0
        self.over = False

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream:
            self.size += len(chunk)
            if self.size > self.limit:
                self.over = True
                return
            yield chunk


async def _drain(stream: AsyncIterator[bytes], already: int) -> None:
    seen = already
    async for chunk in stream:
        seen += len(chunk)
        if seen > MAX_DRAIN_BYTES:
            return


async def receive_upload(
    stream: AsyncIterator[bytes],
    *,
    content_type: str | None,
    content_length: int | None,
    staging_dir: Path,
    cap: int,
) -> StagedUpload:
    """Stream a push body into ``staging_dir``.

    Raises:
        PackageTooLargeError: the package is larger than ``cap`` bytes, or the body (declared or received, any
            framing) larger than ``cap`` + :data:`MULTIPART_OVERHEAD`.
        BadRequestError: a multipart body without boundary, malformed framing (python-multipart's header
            bounds included), or no file part; an empty package.
    """
    if content_length is not None and content_length > cap + MULTIPART_OVERHEAD:
        if content_length - cap <= MAX_DRAIN_BYTES:
            await _drain(stream, 0)
        raise PackageTooLargeError(
            f"the upload is {content_length} bytes; this feed accepts packages up to {cap} bytes"
        )
    staging_dir.mkdir(parents=True, exist_ok=True)
    sink = _Sink(staging_dir / f"upload-{secrets.token_hex(12)}.nupkg", cap)
    body = _Body(stream, cap + MULTIPART_OVERHEAD)
    try:
        mime, params = parse_options_header(content_type or "application/octet-stream")
        if mime == b"multipart/form-data":
            await _receive_multipart(body, params.get(b"boundary"), sink)
        else:
            async for chunk in body.chunks():
                sink.write(chunk)
                if sink.too_large:
                    break
        if sink.too_large or body.over:
            await _drain(stream, body.size)
            raise PackageTooLargeError(
                f"the package is larger than this feed's limit of {cap} bytes"
                if sink.too_large
                else f"the request body is larger than this feed's limit of {cap + MULTIPART_OVERHEAD} bytes "
                f"(a package of at most {cap} bytes and {MULTIPART_OVERHEAD} bytes of multipart framing)"
            )
        if sink.size == 0:
            raise BadRequestError("the upload holds no package bytes")
        return sink.finish()
    except BaseException:
        sink.abort()
        raise


class _Parts:
    """Multipart callbacks: tracks part headers and routes the package part's bytes to the sink."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.part = -1
        self.target = -1
        self.field = b""
        self.value = b""
        self.headers: dict[bytes, bytes] = {}

    def on_part_begin(self) -> None:
        self.part += 1
        self.headers = {}
        if self.part >= MAX_PARTS:
            raise BadRequestError(f"the multipart body has more than {MAX_PARTS} parts")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.field.lower()] = self.value
        self.field = self.value = b""

    def on_headers_finished(self) -> None:
        if self.target >= 0:
            return
        _, disp = parse_options_header(self.headers.get(b"content-disposition", b""))
        # NuGet names its part "package" and gives a file name; take the first part that looks like that
        if b"filename" in disp or b"filename*" in disp or disp.get(b"name") == b"package":
            self.target = self.part

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.target == self.part:
            self.sink.write(memoryview(data)[start:end])


async def _receive_multipart(body: _Body, boundary: bytes | None, sink: _Sink) -> None:
    if not boundary:
        raise BadRequestError("the multipart body has no boundary")
    parts = _Parts(sink)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": parts.on_part_begin,
            "on_header_field": parts.on_header_field,
            "on_header_value": parts.on_header_value,
            "on_header_end": parts.on_header_end,
            "on_headers_finished": parts.on_headers_finished,
            "on_part_data": parts.on_part_data,
        },
    )
    try:
        async for chunk in body.chunks():
            parser.write(chunk)
            if sink.too_large:
                return
        if body.over:
            return
        parser.finalize()
    except MultipartParseError as exc:
        raise BadRequestError(f"the multipart body is malformed: {exc}") from exc
    if parts.target < 0:
        raise BadRequestError("the multipart body has no package part (a part with a file name)")
