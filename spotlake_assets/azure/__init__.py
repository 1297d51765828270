"""Azure provider: Spot Placement Scores, retail prices, eviction rates, merge and delta (DESIGN §1-§2)."""
