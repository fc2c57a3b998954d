"""What the live queue's script (``queue.js``) says beside its colours and keys, for
the operators' queue and the wall screen alike: the words of the amber and red waiting
times (colour is never the only sign), from the catalogues' ``[console.keys]``."""

from __future__ import annotations

from collections.abc import Callable

KEYS = "console.keys"


def queue_texts(t: Callable[..., str]) -> dict[str, str]:
    """The queue script's texts of ``[console.keys]``, in the page's language."""
    return {key: t(f"{KEYS}.{key}") for key in ("wait_amber", "wait_red")}
