"""The one botocore client configuration every boto3 client here is built with (S3 lake, EC2/Pricing/SPS,
Timestream, Secrets Manager, DynamoDB).

Throttling and transient errors are botocore's to retry (a retry mode, a bounded number of attempts), so no
code here loops on an AWS call; connect and read timeouts keep a dead endpoint from hanging a run. Resources
that expose ``retry_mode`` / ``max_attempts`` / timeouts as config pass them through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, cast

# Run-time modules (pandas, numpy, cloud SDKs) are imported where used: loading the definitions skips them.
if TYPE_CHECKING:
    from botocore.config import Config

RETRY_MODES = frozenset({"legacy", "standard", "adaptive"})
# adaptive = standard's retries plus client-side rate limiting when AWS throttles: right for the collectors'
# bursts of parallel calls.
DEFAULT_RETRY_MODE = "adaptive"
# Counting the first attempt, as AWS_MAX_ATTEMPTS does.
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 60.0


def client_config(
    *,
    retry_mode: str = DEFAULT_RETRY_MODE,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    read_timeout: float = DEFAULT_READ_TIMEOUT_S,
    max_pool_connections: int | None = None,
) -> Config:
    """A botocore `Config`; ``max_attempts`` counts the first attempt. ValueError for an unknown retry mode
    (a typo in a resource's config fails when its client is built, not as botocore's obscure error)."""
    from botocore.config import Config

    if retry_mode not in RETRY_MODES:
        raise ValueError(f"retry_mode {retry_mode!r} is not one of {sorted(RETRY_MODES)}")
    mode = cast(Literal["legacy", "standard", "adaptive"], retry_mode)
    return Config(
        # total_max_attempts counts the first attempt; botocore's "max_attempts" key would count retries only
        # (one more call than configured).
        retries={"total_max_attempts": max_attempts, "mode": mode},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # botocore's default pool size when not asked for more.
        max_pool_connections=max_pool_connections or 10,
    )
