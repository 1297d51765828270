"""Errors the lake raises; each names the key it is about."""

from __future__ import annotations


class LakeError(Exception):
    """Base class for lake failures."""


class LakeKeyNotFound(LakeError):
    def __init__(self, location: str) -> None:
        super().__init__(f"lake object not found: {location}")
        self.location = location


class PreconditionFailed(LakeError):
    """A conditional write lost: the object was created or changed by another writer."""

    def __init__(self, location: str, detail: str) -> None:
        super().__init__(f"conditional write to {location} refused: {detail}")
        self.location = location


class CorruptLakeFile(LakeError):
    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"corrupt lake file {location}: {reason}")
        self.location = location


class ReadOnlyLocation(LakeError):
    """A write aimed at a bucket this environment may only read (the `test` environment's read bucket)."""


def _bucket_origin(variable: str | None) -> str:
    return f"; the bucket name comes from {variable}" if variable else ""


class LakeBucketNotFound(LakeError):
    """The bucket itself is missing (a typo in its variable, the wrong account or region)."""

    def __init__(self, bucket: str, key: str, operation: str, variable: str | None = None) -> None:
        super().__init__(
            f"bucket s3://{bucket} does not exist ({operation} {key or '(bucket listing)'})"
            f"{_bucket_origin(variable)}"
        )
        self.bucket = bucket
        self.variable = variable


class LakeAccessDenied(LakeError):
    """The bucket exists (or S3 will not say) but this identity may not do the operation on it."""

    def __init__(self, bucket: str, key: str, operation: str, variable: str | None = None) -> None:
        super().__init__(
            f"access denied: {operation} on s3://{bucket}/{key}{_bucket_origin(variable)}; check the bucket "
            f"name and that the run's IAM identity may {operation} there"
        )
        self.bucket = bucket
        self.variable = variable


class InvalidBucketName(LakeError, ValueError):
    """A bucket name S3 would reject, caught before any request is sent."""
