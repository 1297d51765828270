"""Where a month of SpotLake files is, read one file at a time (a month never sits in memory).

Locations: a ``.zip`` path (SpotLake's ``aws-YYYY-MM.zip``: ``aws-YYYY-MM/DD/HH-MM-SS.csv.gz``), a directory
(an unzipped tree or a copy of the bucket's ``rawdata/<p>/YYYY/MM/``), ``s3://bucket/prefix/`` (the files
under it, one GET each) or ``s3://bucket/key.zip`` (downloaded to the scratch directory first: a zip's index
is at its end, and the large job class's scratch volume is sized for it). ``{provider}``, ``{year}`` and
``{month}`` in a location are filled in per partition.
"""

from __future__ import annotations

import contextlib
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import dagster as dg

# SpotLake's bucket layout for raw snapshots; the default source of an import.
DEFAULT_SOURCE = "s3://spotlake/rawdata/{provider}/{year}/{month}/"
_SNAPSHOT_SUFFIXES = (".csv", ".csv.gz")
# The synthetic generator (`synthetic.py`) leaves this file at a month's root and SpotLake's archive never
# holds it: an import of a synthetic month is labelled simulated, like the simulated clouds' data.
SYNTHETIC_MARKER = "SYNTHETIC-NOT-SPOTLAKE-DATA.txt"


@dataclass(frozen=True)
class SnapshotFile:
    name: str
    size: int


class SnapshotSource(Protocol):
    def describe(self) -> str: ...

    def files(self) -> list[SnapshotFile]: ...

    def read(self, file: SnapshotFile) -> bytes: ...


def resolve_location(template: str, provider: str, month: date) -> str:
    return template.format(provider=provider, year=f"{month:%Y}", month=f"{month:%m}")


def _is_snapshot(name: str) -> bool:
    return not name.endswith("/") and name.endswith(_SNAPSHOT_SUFFIXES)


class ZipSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path)

    def describe(self) -> str:
        return str(self.path)

    def files(self) -> list[SnapshotFile]:
        return sorted(
            (SnapshotFile(i.filename, i.file_size) for i in self._zip.infolist() if not i.is_dir()),
            key=lambda f: f.name,
        )

    def read(self, file: SnapshotFile) -> bytes:
        return self._zip.read(file.name)

    def close(self) -> None:
        self._zip.close()


class DirectorySource:
    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def files(self) -> list[SnapshotFile]:
        return sorted(
            (
                SnapshotFile(p.relative_to(self.root).as_posix(), p.stat().st_size)
                for p in self.root.rglob("*")
                if p.is_file()
            ),
            key=lambda f: f.name,
        )

    def read(self, file: SnapshotFile) -> bytes:
        return (self.root / file.name).read_bytes()


class S3PrefixSource:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def files(self) -> list[SnapshotFile]:
        found: list[SnapshotFile] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            found.extend(SnapshotFile(o["Key"], int(o["Size"])) for o in page.get("Contents", []))
        return sorted(found, key=lambda f: f.name)

    def read(self, file: SnapshotFile) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=file.name)["Body"].read()
        return body


class LegacyArchive(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Reads SpotLake's published snapshots. S3 reads use the run's AWS credentials (SpotLake's bucket is
    public; its objects still need s3:GetObject granted to the role)."""

    region_name: str = "us-west-2"
    endpoint_url: str | None = None
    # Where a zip fetched from S3 is kept while it is read; empty: the system temporary directory.
    scratch_dir: str = ""

    def _client(self) -> Any:
        import boto3  # lazy: a run that reads a local zip never pays for boto3

        return boto3.client("s3", region_name=self.region_name, endpoint_url=self.endpoint_url)

    @contextlib.contextmanager
    def open(self, location: str) -> Iterator[SnapshotSource]:
        """The files at ``location`` (module docstring), closed (and a downloaded zip removed) on exit."""
        if location.startswith("s3://"):
            parsed = urlparse(location)
            bucket, key = parsed.netloc, parsed.path.lstrip("/")
            if not key.endswith(".zip"):
                yield S3PrefixSource(self._client(), bucket, key)
                return
            with tempfile.TemporaryDirectory(dir=self.scratch_dir or None, prefix="spotlake-legacy-") as tmp:
                target = Path(tmp) / Path(key).name
                self._client().download_file(bucket, key, str(target))
                source = ZipSource(target)
                try:
                    yield source
                finally:
                    source.close()
            return
        path = Path(location).expanduser()
        if path.is_dir():
            yield DirectorySource(path)
            return
        if not path.is_file():
            raise FileNotFoundError(f"no SpotLake archive at {path} (a .zip, a directory or s3://…)")
        source = ZipSource(path)
        try:
            yield source
        finally:
            source.close()


def is_snapshot_name(name: str) -> bool:
    return _is_snapshot(name)


def is_synthetic_marker(name: str) -> bool:
    return name.rsplit("/", 1)[-1] == SYNTHETIC_MARKER
