"""The lake: SpotLake's object-key layout on a local directory or an S3 bucket, Parquet only."""
