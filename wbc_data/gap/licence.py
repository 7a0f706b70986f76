"""What a licence string allows, coarsely: may the rows be re-published, may they be used commercially.

Free-text licences vary ("CC BY 4.0", "CC BY-NC-SA 4.0", "TCIA terms", "research use only"), so this maps
the common families and answers "check terms" for anything it does not recognise: never a guessed "yes".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

YES, NO, CHECK = "yes", "no", "check terms"

_OPEN = re.compile(r"\b(cc[\s-]?by(?![\s-]?nc)|cc0|public domain|mit|apache|bsd)\b", re.IGNORECASE)
_NC = re.compile(r"\bnc\b|non[\s-]?commercial", re.IGNORECASE)
_CLOSED = re.compile(r"no redistribution|research use only|by request|not redistribut", re.IGNORECASE)


@dataclass(frozen=True)
class Terms:
    publish: str
    commercial: str


RANK = {YES: 0, CHECK: 1, NO: 2}
"""Strictness: several parts of a licence get the most restrictive answer."""


def terms(licence: str | None) -> Terms:
    """Coarse reading of a licence string (ND/SA obligations are the user's to honour when publishing).

    A string naming several parts ("CC BY 4.0 (PBC part); TCIA terms for the rest") gets the most
    restrictive answer of its parts."""
    parts = [p for p in re.split(r"[;\n]", licence or "") if p.strip()]
    if len(parts) > 1:
        read = [_one(p) for p in parts]
        return Terms(
            max((t.publish for t in read), key=RANK.__getitem__),
            max((t.commercial for t in read), key=RANK.__getitem__),
        )
    return _one(licence)


def _one(licence: str | None) -> Terms:
    text = (licence or "").strip()
    if not text:
        return Terms(CHECK, CHECK)
    if _CLOSED.search(text):
        return Terms(NO, NO)
    if _NC.search(text):
        return Terms(YES, NO)
    if _OPEN.search(text):
        return Terms(YES, YES)
    return Terms(CHECK, CHECK)
