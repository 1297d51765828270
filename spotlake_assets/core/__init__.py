"""Provider-independent pieces: windows, partitions, run metrics, the shared merge/delta factory."""
