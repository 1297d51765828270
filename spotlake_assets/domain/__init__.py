"""The pure domain: windows, the capacity ladder, the delta, validation at the boundary, sensor decisions
and summaries. No Dagster, no cloud SDK, no I/O, no environment variables (import-linter enforces the
imports)."""
