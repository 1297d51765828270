"""Fixtures of the sink tests."""

from __future__ import annotations

from spotlake_assets_tests.sinks.support import boto_env

__all__ = ["boto_env"]
