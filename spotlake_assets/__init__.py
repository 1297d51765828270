"""SpotLake Assets: Dagster assets collecting cloud Spot-instance availability."""
