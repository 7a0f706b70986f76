"""Duplicate and leakage detection: exact copies (file / decoded pixels) and near copies (recompressed, resized,
colour-shifted, flipped or rotated), clustered, with one kept representative per cluster.

Kept apart so a faster index can replace a slower one without touching the rest: ``participants`` (which rows
take part) -> ``signature`` / ``extract`` / ``store`` (per-image signatures, cached) -> ``dihedral`` / ``index`` /
``neighbours`` / ``pairs`` / ``relations`` (candidate search) -> ``register`` / ``confirm`` / ``verify``
(registration of candidates) -> ``linkage`` / ``cluster`` (grouping) -> ``policy`` (keep/drop) -> ``leakage``
(against an evaluation set) -> ``report``; ``run`` wires them.

Other stages use dedup through ``run`` (a whole dedup stage) and ``copies`` (its copy test on any images: encode,
then find which query images are copies of which reference images, with the recovered transform), never its other
modules.
"""
