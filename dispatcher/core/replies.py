"""Reading an SMS reply such as ``7A``: the per-phone call number and what to do.

Pure. People type on phones in every way: ``7a``, `` 7 A ``, ``７Ａ`` from a Chinese
input method in full-width mode, ``7A.`` with the full stop a keyboard adds. Unicode
NFKC folds the full-width forms to ASCII; spaces, invisible format characters and
trailing punctuation are dropped before matching.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    ACKNOWLEDGE = "A"
    ESCALATE = "E"  # "I cannot go": the next step at once
    CLOSE = "C"  # a service request is done


@dataclass(frozen=True)
class Reply:
    number: int  # the call's reply number for this phone (dispatcher.adapters.db.reply_codes)
    action: Action


_REPLY = re.compile(r"(\d{1,6})([AEC])")
# Ends of sentences a phone's keyboard may add ("7A." / "7A。" / "7A!"), after NFKC.
_TRAILING = ".。｡!?,;~、"


def parse(body: str) -> Reply | None:
    """The reply in ``body``, or None when it is not ``<number><A|E|C>``."""
    text = unicodedata.normalize("NFKC", body).upper()
    text = "".join(ch for ch in text if not ch.isspace() and unicodedata.category(ch) != "Cf")
    text = text.rstrip(_TRAILING)
    match = _REPLY.fullmatch(text)
    if match is None:
        return None
    return Reply(number=int(match.group(1)), action=Action(match.group(2)))
