"""Lake storage resources: one interface, a local directory and an S3 bucket behind it.

Every write is atomic (a reader sees the old object or the new one, never half of one) and can be made
conditional: ``create_only`` refuses to replace an existing object, ``if_match`` refuses to replace an object
that changed since it was read. The `test` environment reads configuration from one bucket and writes
everything to another; the S3 lake refuses, at the client level, any write aimed at the read bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import dagster as dg
from pydantic import PrivateAttr

from spotlake_assets.storage.botocore_config import client_config
from spotlake_assets.storage.errors import (
    InvalidBucketName,
    LakeAccessDenied,
    LakeBucketNotFound,
    LakeKeyNotFound,
    PreconditionFailed,
    ReadOnlyLocation,
)
from spotlake_assets.storage.locks import file_lock

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    from botocore.exceptions import ClientError

# S3 operations that change a bucket; the read-bucket guard refuses all of them.
_S3_WRITE_OPERATIONS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "DeleteObject",
        "DeleteObjects",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "PutObjectTagging",
        "PutObjectAcl",
        "RestoreObject",
    }
)

_BUCKET_ALPHABET = re.compile(r"[a-z0-9.-]+")
# Error codes S3 answers when the identity may not act on the bucket (HEAD answers the bare status).
_ACCESS_DENIED = frozenset({"AccessDenied", "403", "AllAccessDisabled"})


def bucket_name_problem(name: str) -> str | None:
    """Why S3 would reject ``name`` as a general-purpose bucket name, or None when it is valid. Checked before
    any request, so a typo is reported with the variable that holds it instead of botocore's bare error."""
    if not 3 <= len(name) <= 63:
        return f"it has {len(name)} characters (3 to 63 allowed)"
    if not _BUCKET_ALPHABET.fullmatch(name):
        return "only lowercase letters, digits, '.' and '-' are allowed"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "it must begin and end with a letter or digit"
    if ".." in name:
        return "it has two adjacent dots"
    with contextlib.suppress(ValueError):
        ipaddress.IPv4Address(name)
        return "it is formatted as an IP address"
    return None


@dataclass(frozen=True)
class StoredObject:
    key: str
    etag: str


class LakeResource(dg.ConfigurableResource, ABC):  # type: ignore[type-arg]
    """Where SpotLake's objects live. Keys follow `spotlake_assets.storage.keys`."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The object's bytes; `LakeKeyNotFound` when absent."""

    @abstractmethod
    def head(self, key: str) -> StoredObject | None:
        """The object's current ETag, or None when it does not exist."""

    @abstractmethod
    def write_bytes(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> StoredObject:
        """Write atomically; `PreconditionFailed` when a condition does not hold."""

    @abstractmethod
    def list_keys(self, prefix: str, start_after: str | None = None) -> list[str]:
        """Every key under ``prefix``, sorted; with ``start_after`` only the keys after it (S3's StartAfter,
        so a sensor with a cursor lists what is new, not the whole history)."""

    @abstractmethod
    def read_config_bytes(self, key: str) -> bytes:
        """Configuration (credential pools and the like): in `test` this comes from the read bucket."""

    @abstractmethod
    def location(self, key: str) -> str:
        """A human-readable address of ``key`` (a path or an s3:// URL)."""

    @abstractmethod
    def move_aside(self, key: str, reason: str) -> str:
        """Move a damaged object out of the way (to `quarantine/<key>.<UTC timestamp>`) so the state it held
        is rebuilt instead of failing every rerun; returns where it went. Missing objects are not an error."""

    def sweep_temp_files(self, prefix: str = "", older_than_s: float = 600.0) -> list[str]:
        """Remove temporary files that a killed writer left behind; returns what was removed. S3 writes are
        single PUTs, so only the local lake has any."""
        return []

    def exists(self, key: str) -> bool:
        return self.head(key) is not None


QUARANTINE_PREFIX = "quarantine/"
# Temporary files of `LocalLake.write_bytes`: hidden, named after the object, suffixed `.tmp`.
_TEMP_SUFFIX = ".tmp"


def quarantine_key(key: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{QUARANTINE_PREFIX}{key}.{stamp}"


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class LocalLake(LakeResource):
    """A lake in a local directory. Writes go to a temporary file in the same directory, then are
    renamed into place (atomic on POSIX); conditional writes hold an exclusive lock on the lake."""

    root: str

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in Path(key).parts:
            raise ValueError(f"lake key {key!r} must be relative and stay inside the lake")
        return Path(self.root) / key

    def location(self, key: str) -> str:
        return str(self._path(key))

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise LakeKeyNotFound(str(path)) from None

    def read_config_bytes(self, key: str) -> bytes:
        return self.read_bytes(key)

    def head(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            return StoredObject(key, _etag(path.read_bytes()))
        except FileNotFoundError:
            return None

    def write_bytes(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> StoredObject:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if create_only:
                try:
                    # link() fails if the target exists: an atomic create-only publish.
                    os.link(tmp, path)
                except FileExistsError:
                    raise PreconditionFailed(str(path), "the object already exists") from None
            elif if_match is not None:
                with file_lock(Path(self.root) / ".lake.lock"):
                    current = self.head(key)
                    if current is None or current.etag != if_match:
                        raise PreconditionFailed(str(path), "the object changed since it was read")
                    tmp.replace(path)
            else:
                tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return StoredObject(key, _etag(data))

    def move_aside(self, key: str, reason: str) -> str:
        target_key = quarantine_key(key)
        target = self._path(target_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._path(key).replace(target)
        except FileNotFoundError:
            return ""
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
        return str(target)

    def sweep_temp_files(self, prefix: str = "", older_than_s: float = 600.0) -> list[str]:
        root = Path(self.root)
        base = root / prefix
        search = base if base.is_dir() else base.parent
        if not search.is_dir():
            return []
        cutoff = time.time() - older_than_s
        removed: list[str] = []
        for path in search.rglob(f".*{_TEMP_SUFFIX}"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(str(path))
            except FileNotFoundError:
                continue  # a concurrent sweep or a writer finishing got there first
        return sorted(removed)

    def list_keys(self, prefix: str, start_after: str | None = None) -> list[str]:
        root = Path(self.root)
        base = root / prefix
        search = base if base.is_dir() else base.parent
        if not search.is_dir():
            return []
        keys = [
            p.relative_to(root).as_posix()
            for p in search.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        ]
        return sorted(k for k in keys if k.startswith(prefix) and (start_after is None or k > start_after))


class S3Lake(LakeResource):
    """A lake in S3. ``config_bucket`` (default: ``bucket``) holds configuration that is only read;
    when it differs from ``bucket``, every write operation aimed at it is refused before it is sent."""

    bucket: str
    config_bucket: str | None = None
    region_name: str = "us-west-2"
    endpoint_url: str | None = None
    # Botocore's retries (`storage.botocore_config`); the first attempt counts.
    retry_mode: str = "standard"
    max_attempts: int = 6
    # The `test` environment: the read bucket must be a different bucket from the one written to.
    require_distinct_buckets: bool = False
    # The environment variables that named the buckets, so an error about a bucket says where to fix it.
    bucket_variable: str | None = None
    config_bucket_variable: str | None = None

    _client: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def read_bucket(self) -> str:
        return self.config_bucket or self.bucket

    def client(self) -> Any:
        import boto3

        with self._lock:
            if self._client is None:
                self._check_bucket_names()
                if self.require_distinct_buckets and self.read_bucket == self.bucket:
                    raise ReadOnlyLocation(
                        f"read bucket and write bucket are both s3://{self.bucket}: this environment must "
                        "write to a bucket other than the one it reads configuration from"
                    )
                client = boto3.session.Session().client(
                    "s3",
                    region_name=self.region_name,
                    endpoint_url=self.endpoint_url,
                    config=client_config(retry_mode=self.retry_mode, max_attempts=self.max_attempts),
                )
                if self.read_bucket != self.bucket:
                    client.meta.events.register("provide-client-params.s3.*", self._refuse_read_bucket_writes)
                self._client = client
            return self._client

    def _check_bucket_names(self) -> None:
        for bucket in (self.bucket, self.read_bucket):
            problem = bucket_name_problem(bucket)
            if problem:
                raise InvalidBucketName(
                    f"{self._variable_of(bucket) or 'bucket'}={bucket!r} is not an S3 bucket name: {problem}"
                )

    def _variable_of(self, bucket: str) -> str | None:
        if bucket == self.bucket:
            return self.bucket_variable
        return self.config_bucket_variable or self.bucket_variable

    def _reraise(self, exc: ClientError, bucket: str, key: str) -> NoReturn:
        """Raise a missing bucket or a refused access as a lake error naming the bucket, the key, the
        operation and the variable that set the bucket; any other failure unchanged."""
        code = exc.response.get("Error", {}).get("Code")
        if code == "NoSuchBucket":
            raise LakeBucketNotFound(bucket, key, exc.operation_name, self._variable_of(bucket)) from exc
        if code in _ACCESS_DENIED:
            raise LakeAccessDenied(bucket, key, exc.operation_name, self._variable_of(bucket)) from exc
        raise exc

    def _refuse_read_bucket_writes(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in _S3_WRITE_OPERATIONS and params.get("Bucket") == self.read_bucket:
            raise ReadOnlyLocation(
                f"{model.name} on s3://{self.read_bucket} refused: this environment only reads that bucket"
                f" and writes to s3://{self.bucket}"
            )

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _get(self, bucket: str, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            body: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                raise LakeKeyNotFound(f"s3://{bucket}/{key}") from None
            self._reraise(exc, bucket, key)
        return body

    def read_bytes(self, key: str) -> bytes:
        return self._get(self.bucket, key)

    def read_config_bytes(self, key: str) -> bytes:
        return self._get(self.read_bucket, key)

    def head(self, key: str) -> StoredObject | None:
        from botocore.exceptions import ClientError

        try:
            response = self.client().head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            # A missing bucket also answers HEAD with a bare 404: the write that follows names it.
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            self._reraise(exc, self.bucket, key)
        return StoredObject(key, str(response["ETag"]).strip('"'))

    def write_bytes(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> StoredObject:
        from botocore.exceptions import ClientError

        extra: dict[str, str] = {}
        if create_only:
            extra["IfNoneMatch"] = "*"
        elif if_match is not None:
            extra["IfMatch"] = f'"{if_match}"'
        try:
            response = self.client().put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                detail = (
                    "the object already exists" if create_only else "the object changed since it was read"
                )
                raise PreconditionFailed(self.location(key), detail) from None
            self._reraise(exc, self.bucket, key)
        return StoredObject(key, str(response["ETag"]).strip('"'))

    def move_aside(self, key: str, reason: str) -> str:
        from botocore.exceptions import ClientError

        target = quarantine_key(key)
        client = self.client()
        try:
            client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": key},
                Metadata={"spotlake-reason": reason[:1000].encode("ascii", "replace").decode()},
                MetadataDirective="REPLACE",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return ""
            self._reraise(exc, self.bucket, key)
        client.delete_object(Bucket=self.bucket, Key=key)
        return self.location(target)

    def list_keys(self, prefix: str, start_after: str | None = None) -> list[str]:
        from botocore.exceptions import ClientError

        paginator = self.client().get_paginator("list_objects_v2")
        extra = {"StartAfter": start_after} if start_after else {}
        keys: list[str] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **extra):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except ClientError as exc:
            self._reraise(exc, self.bucket, prefix)
        return sorted(keys)
