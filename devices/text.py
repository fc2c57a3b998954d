"""Text that came from outside (data files, devices), made safe to show anywhere.

A control character in a resident's name is invisible in a spreadsheet but breaks
the voice call's TwiML (XML 1.0 forbids most of them), lands in an SMS, an
iCalendar feed, or moves the cursor of the operator's terminal (ANSI escape
sequences start with ESC). One function, applied where text comes in and again as a
last guard where it goes to a terminal, so that every later use can trust it.

It lives with the device protocol, which cleans what devices send, so that the
protocol package stands alone (it imports nothing of the dispatcher); the dispatcher's
data-file loader and command line use it too.
"""

from __future__ import annotations

import re

# C0 and C1 controls (ESC, NUL, BEL, DEL, CSI ...), lone UTF-16 surrogates (not
# encodable as UTF-8) and the two non-characters XML 1.0 forbids.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Line breaks and tabs, which XML allows but a one-line field must not carry.
_BREAKS = re.compile("[\t\n\r\u2028\u2029\x85]")


def clean_text(text: str, *, keep_lines: bool = False) -> str:
    """``text`` without control characters.

    Tabs and line breaks become spaces unless ``keep_lines`` (then tabs and ``\\n``
    stay and ``\\r\\n`` becomes ``\\n``); every other control, lone surrogate or XML
    non-character is dropped. Pure and idempotent.
    """
    if keep_lines:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return _UNSAFE.sub("", text.replace("\u2028", "\n").replace("\u2029", "\n"))
    return _UNSAFE.sub("", _BREAKS.sub(" ", text))
