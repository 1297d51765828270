"""Azure collectors: get (through `AzureApi`) → transform (pure) → a frame the asset writes."""
