"""The providers of the platform, in one list: the code location (`definitions`) builds each one, and the
resolver (`environment`) asks each one for its resources. Adding a provider is one line here."""

from __future__ import annotations

from spotlake_assets.aws.definitions import PROVIDER_SPEC as AWS
from spotlake_assets.azure.definitions import PROVIDER_SPEC as AZURE
from spotlake_assets.orchestration.provider import ProviderSpec

PROVIDERS: tuple[ProviderSpec, ...] = (AWS, AZURE)
