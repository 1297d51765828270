"""Import of SpotLake's published history (issue 15): a month of SpotLake snapshots from a zip, a directory
or an S3 prefix becomes our history windows and daily compaction, as if the live pipeline had collected it.

Modules: `layouts` (SpotLake's columns → ours, per provider), `parsing` (one file's bytes → a frame),
`sources` (where a month's files are, read one at a time), `importer` (per-day import with a checkpoint in
the lake), `synthetic` (a month in SpotLake's exact layout, for tests and the benchmark), `assets`.
"""
