"""The AWS provider: workload, SPS, interruption frequency, prices, merge, delta."""
