"""The importer's resources of each environment (``legacy_archive``), for the one resolver.

Every environment reads SpotLake's published archive the same way: a zip, a directory or an S3 prefix named
in the run config. Only where S3 is (the deploy region, and the endpoint a local S3 stand-in sets) varies.
"""

from __future__ import annotations

from typing import Any

from spotlake_assets.legacy.sources import LegacyArchive
from spotlake_assets.settings import Settings


def legacy_resources(settings: Settings) -> dict[str, Any]:
    return {
        "legacy_archive": LegacyArchive(region_name=settings.region, endpoint_url=settings.s3_endpoint_url)
    }
