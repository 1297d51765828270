"""Storage: the lake (SpotLake's object-key layout on a local directory or an S3 bucket, Parquet only), its
errors, and the state files changed by compare-and-swap. Imports only `spotlake_assets.domain` below it."""
