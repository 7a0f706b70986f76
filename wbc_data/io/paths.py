"""File names as they go into the manifest: always valid UTF-8, reversibly so.

Linux file names are bytes; a dataset unpacked from an old archive can hold names that are not
UTF-8. Python hands those over with surrogate escapes, which Parquet cannot store. We store a
readable escaped form and, in ``extra``, the exact bytes as hex so that later stages can reopen it.
"""

from __future__ import annotations

import os


def is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display_name(name: str) -> str:
    """UTF-8-safe form of a (possibly surrogate-escaped) file name, e.g. ``caf\\xe9.jpg``."""
    if is_utf8(name):
        return name
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def name_bytes_hex(name: str) -> str:
    return os.fsencode(name).hex()


def from_bytes_hex(value: str) -> str:
    """The original file name (surrogate-escaped str) from :func:`name_bytes_hex`."""
    return os.fsdecode(bytes.fromhex(value))
