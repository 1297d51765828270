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
