"""Where deltas go: Timestream (compatible with SpotLake's tables), the open Parquet history and its daily
compaction, and the latest state. Every writer here is idempotent."""
