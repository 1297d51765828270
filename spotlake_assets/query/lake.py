"""Read-only lake access for the query command, through pyarrow filesystems (a local directory or an S3
bucket). DuckDB's ``httpfs`` extension would have to be downloaded at run time; pyarrow's S3 client ships
in its wheel, and its datasets hand DuckDB streaming scans with filter pushdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from spotlake_assets.settings import InvalidSetting, load_settings
from spotlake_assets.storage.errors import LakeKeyNotFound

DEFAULT_S3_REGION = "us-west-2"


class LakeLocationError(ValueError):
    """A lake location the command cannot use."""


class ArrowLake:
    """The lake at ``base`` on ``filesystem``; keys follow `spotlake_assets.storage.keys`."""

    def __init__(self, filesystem: pafs.FileSystem, base: str, display: str) -> None:
        self.filesystem = filesystem
        self.base = base.rstrip("/")
        self.display = display.rstrip("/")

    @classmethod
    def open(cls, location: str, *, endpoint_url: str | None = None, region: str | None = None) -> ArrowLake:
        """A local path or ``s3://bucket[/prefix]``. ``endpoint_url`` points S3 at another server (moto,
        MinIO); credentials come from the usual AWS environment variables and files."""
        if location.startswith("s3://"):
            parsed = urlparse(location)
            if not parsed.netloc:
                raise LakeLocationError(f"{location!r} names no bucket (expected s3://bucket[/prefix])")
            options: dict[str, object] = {"region": region or DEFAULT_S3_REGION}
            if endpoint_url:
                endpoint = urlparse(endpoint_url)
                options["endpoint_override"] = endpoint.netloc or endpoint.path
                options["scheme"] = endpoint.scheme or "https"
            filesystem = pafs.S3FileSystem(**options)
            base = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
            return cls(filesystem, base, f"s3://{base}")
        root = Path(location).expanduser().resolve()
        if not root.is_dir():
            raise LakeLocationError(f"no lake directory at {root}")
        return cls(pafs.LocalFileSystem(), root.as_posix(), root.as_posix())

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def location(self, key: str) -> str:
        return f"{self.display}/{key}"

    def read_bytes(self, key: str) -> bytes:
        try:
            with self.filesystem.open_input_stream(self._path(key)) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            raise LakeKeyNotFound(self.location(key)) from None

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (hidden and temporary files excluded), sorted."""
        directory = prefix if prefix.endswith("/") else prefix.rsplit("/", 1)[0] + "/"
        selector = pafs.FileSelector(self._path(directory).rstrip("/"), recursive=True, allow_not_found=True)
        skip = len(self.base) + 1
        keys = [
            info.path[skip:]
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File and not info.base_name.startswith(".")
        ]
        return sorted(k for k in keys if k.startswith(prefix))

    def dataset(self, keys: Sequence[str]) -> ds.Dataset:
        """The files as one dataset over the union of their columns: pyarrow would otherwise take the first
        file's schema and drop a column the older files lack (history from before a column was added)."""
        paths = [self._path(k) for k in keys]
        dataset = ds.dataset(paths, format="parquet", filesystem=self.filesystem)
        schemas = [fragment.physical_schema for fragment in dataset.get_fragments()]
        if all(schema.equals(schemas[0]) for schema in schemas[1:]):
            return dataset
        unified = pa.unify_schemas(schemas, promote_options="permissive")
        return ds.dataset(paths, schema=unified, format="parquet", filesystem=self.filesystem)


def default_location(environ: Mapping[str, str] | None = None) -> str:
    """Where the current environment's lake is, as the one resolver (`spotlake_assets.environment`) says:
    an unknown `SPOTLAKE_ENV` or a bad variable raises its `InvalidSetting`, never a quiet local fallback."""
    settings = load_settings(environ)
    try:
        return settings.lake_location()
    except InvalidSetting as exc:
        raise LakeLocationError(f"{exc}: set it or pass --lake s3://bucket") from None
