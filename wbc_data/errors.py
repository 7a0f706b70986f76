"""The errors a user can cause (bad path, bad label map, bad manifest...): the CLI prints them as one line."""

from __future__ import annotations

from wbc_data.labelmap import LabelMapError
from wbc_data.manifest import ManifestError
from wbc_data.merge import MergeError
from wbc_data.sources.definition import SourceError
from wbc_data.taxonomy import TaxonomyError


class UserError(ValueError):
    """Base for new user-facing errors; existing module errors are listed in USER_ERRORS."""


class DedupError(UserError):
    """Bad dedup input: a policy file, an --against path or a threshold that cannot be used."""


def _ingest_interrupted() -> type[Exception]:
    from wbc_data.ingest.engine import IngestInterrupted

    return IngestInterrupted


USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    LabelMapError,
    ManifestError,
    MergeError,
    SourceError,
    TaxonomyError,
    _ingest_interrupted(),
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
)
