""":class:`~nuseal.feed.store.storage.Storage` in an S3-compatible bucket (``nuseal serve --storage s3://...``).

The keys are the served URL paths, as in the local folder, below an optional prefix. Every ``PutObject`` (and a
multipart upload, at its completion) replaces an object atomically, so readers see the old bytes or the new ones
and interrupted writes leave nothing (:meth:`S3Storage.list_temporaries` is empty); the feed's crash consistency
does not depend on the backend (pending entries stay in the local data folder, ``docs/feed.md``). The ETag the
static layer sends is the object's own. Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, a profile, an instance role); ``boto3`` is the ``s3`` extra (``pip install
nuseal[s3]``), imported only when this backend is used.

URL form: ``s3://BUCKET[/PREFIX][?endpoint=URL][&region=NAME]`` (``endpoint`` for S3-compatible servers such as
MinIO, Ceph or moto; AWS S3 without it).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from nuseal.errors import ConfigError
from nuseal.feed.store.storage import CHUNK_SIZE, StoredInfo, StoredObject, safe_key

__all__ = ["S3Storage", "parse_s3_url"]

_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket"})
#: Keys per ListObjectsV2 page (the S3 maximum).
_PAGE = 1000


def parse_s3_url(url: str) -> tuple[str, str, str | None, str | None]:
    """``(bucket, prefix, endpoint, region)`` of a storage URL (module docstring).

    Raises:
        ConfigError: not an ``s3://`` URL with a bucket, or an unknown query parameter.
    """
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"the storage URL {url!r} must be s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]")
    query = parse_qs(parts.query, keep_blank_values=False)
    unknown = set(query) - {"endpoint", "region"}
    if unknown:
        raise ConfigError(f"the storage URL {url!r} has unknown parameters: {', '.join(sorted(unknown))}")
    prefix = parts.path.strip("/")
    if prefix:
        safe_key(prefix)
    endpoint = query.get("endpoint", [None])[-1]
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"the storage endpoint {endpoint!r} must be an http(s) URL")
    return parts.netloc, prefix + "/" if prefix else "", endpoint, query.get("region", [None])[-1]


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _info(response: dict[str, Any]) -> StoredInfo:
    etag = str(response.get("ETag", "")).strip('"')
    modified = response["LastModified"]
    return StoredInfo(int(response["ContentLength"]), modified.timestamp(), etag, (etag, modified))


class _S3Object:
    """:class:`StoredObject` of :class:`S3Storage`: the body of one ``GetObject``, with that response's info."""

    __slots__ = ("_body", "info")

    def __init__(self, body: Any, info: StoredInfo) -> None:
        self._body = body
        self.info = info

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._body.read(size if size >= 0 else None)
        return data

    def chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        yield from self._body.iter_chunks(chunk_size)

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _S3Object:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class S3Storage:
    """:class:`~nuseal.feed.store.storage.Storage` in ``bucket`` below ``prefix`` (empty, or ending in ``/``).

    Errors of the service other than a missing key are raised as ``OSError`` naming the operation and key, as the
    local backend's are, so callers handle one kind of storage failure.
    """

    #: stat and open are network requests: the static layer runs them in a worker thread.
    inline_reads = False

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        if client is None:
            try:
                import boto3  # noqa: PLC0415 - the optional 's3' extra, only for this backend
            except ImportError as exc:
                raise ConfigError("the S3 storage backend needs boto3: pip install 'nuseal[s3]'") from exc
            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str) -> S3Storage:
        """The storage a ``s3://`` URL names (module docstring). Raises: ConfigError."""
        bucket, prefix, endpoint, region = parse_s3_url(url)
        return cls(bucket, prefix, endpoint_url=endpoint, region=region)

    def _key(self, key: str) -> str:
        return self.prefix + safe_key(key)

    def _failed(self, operation: str, key: str, exc: Exception) -> OSError:
        return OSError(f"S3 {operation} of {self.bucket}/{self._key(key)} failed: {exc}")

    def _call(self, operation: str, key: str, **kwargs: Any) -> dict[str, Any] | None:
        """One API call; None when the key is missing."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - with boto3

        try:
            response: dict[str, Any] = getattr(self.client, operation)(
                Bucket=self.bucket, Key=self._key(key), **kwargs
            )
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise self._failed(operation, key, exc) from exc
        except BotoCoreError as exc:
            raise self._failed(operation, key, exc) from exc
        return response

    def put_bytes(self, key: str, data: bytes, *, durable: bool = False) -> None:
        # S3 acknowledges a PUT once the object is stored durably: ``durable`` needs nothing more
        self._call("put_object", key, Body=data)

    def put_file(self, key: str, source: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - with boto3

        try:
            self.client.upload_file(str(source), self.bucket, self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._failed("upload", key, exc) from exc

    def read_bytes(self, key: str) -> bytes | None:
        found = self.open(key)
        if found is None:
            return None
        with found as value:
            return value.read()

    def open(self, key: str) -> StoredObject | None:
        response = self._call("get_object", key)
        if response is None:
            return None
        return _S3Object(response["Body"], _info(response))

    def stat(self, key: str) -> StoredInfo | None:
        response = self._call("head_object", key)
        return None if response is None else _info(response)

    def version(self, key: str) -> Hashable | None:
        info = self.stat(key)
        return None if info is None else info.version

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def delete(self, key: str) -> None:
        self._call("delete_object", key)

    def list_keys(self, prefix: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - with boto3

        folder = self.prefix + safe_key(prefix.rstrip("/")) + "/"
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=folder, PaginationConfig={"PageSize": _PAGE}
            ):
                for item in page.get("Contents", ()):
                    key = str(item["Key"])[len(self.prefix) :]
                    if not key.rsplit("/", 1)[-1].startswith("."):
                        keys.append(key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return []
            raise self._failed("list", prefix, exc) from exc
        except BotoCoreError as exc:
            raise self._failed("list", prefix, exc) from exc
        return sorted(keys)

    def list_temporaries(self, prefix: str) -> list[str]:
        return []  # every write is atomic: nothing half-written is ever visible
