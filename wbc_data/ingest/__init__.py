"""The ingest engine: one engine runs every source adapter."""
