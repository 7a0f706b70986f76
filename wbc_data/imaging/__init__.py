"""Image decoding and per-image signatures (hashes, thumbnails), shared by ingest and dedup."""
