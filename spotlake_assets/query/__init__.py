"""The `spotlake query` command: DuckDB over the latest state and the Parquet history."""
