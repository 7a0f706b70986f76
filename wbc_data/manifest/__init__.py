"""The manifest stage: merge per-source manifests into the unified one, check a workspace's files, explain a
source's label map, and the summary tables and report of what was seen, used and rejected; ``run`` decides which
of these jobs one `wbc-data manifest` command does."""
