"""Where deltas go: Timestream (compatible with SpotLake's tables), the open Parquet history and its daily
compaction, and point-in-time reconstruction from that history. Every writer here is idempotent."""
