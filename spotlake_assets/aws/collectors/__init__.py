"""AWS collectors: each is get (through the `AwsApi` resource) → transform (pure) → frame for the lake."""
