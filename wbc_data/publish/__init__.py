"""Publish the deduplicated, split manifest as a Hugging Face dataset: licence checks first, parquet shards in the
Hub layout, a dataset card, and an upload that sends only what changed (see :mod:`wbc_data.publish.run`)."""

from wbc_data.publish.licences import LicenceDecision, LicenceRefused
from wbc_data.publish.rows import PublishError
from wbc_data.publish.run import (
    BuiltFolder,
    PublishOptions,
    PublishPlan,
    PublishResult,
    build_folder,
    plan_publish,
    publish,
    upload,
)

__all__ = [
    "BuiltFolder",
    "LicenceDecision",
    "LicenceRefused",
    "PublishError",
    "PublishOptions",
    "PublishPlan",
    "PublishResult",
    "build_folder",
    "plan_publish",
    "publish",
    "upload",
]
