"""Azure provider: Spot Placement Scores, retail prices, eviction rates, merge and delta
(docs/data-contracts.md#azure-columns)."""
