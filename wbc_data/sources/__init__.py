"""Source adapters, one module per dataset; each defines ``ADAPTER``. Definitions live in ``manifests/``."""
