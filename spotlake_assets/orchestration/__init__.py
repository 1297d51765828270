"""The Dagster layer shared by providers: the provider contract and its builder (`provider`), the merge →
delta → sinks factory, reporting and checks, partitions, automation (schedules, lake sensor), freshness,
alerts, run health and monitoring.
Imports only downward: sinks, storage, domain."""
