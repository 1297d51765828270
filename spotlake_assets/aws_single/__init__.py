"""Single-account mode (issue 14): adaptive SPS collection within one account's daily configuration
budget, a daily top-K report, AMI and architecture lookup, and Spot launch-time measurement."""
