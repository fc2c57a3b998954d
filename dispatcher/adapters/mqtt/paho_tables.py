"""paho's MQTT 5 ``Properties`` with its lookup tables built once, not per packet.

paho builds a ``Properties`` object for every PUBLISH it reads (even one that carries
no properties) and for every PUBACK it hands to ``on_publish``. Its ``__init__``
rebuilds three tables each time (the type names, 27 property names and a dict of 27
tuples of lists), and ``unpack`` first clears the object with 27 ``hasattr`` calls.
In a burst of 10,000 presses that was a fifth of the event loop's busy time (py-spy,
docs/benchmarks.md): two objects per press, one for the event and one for the PUBACK
of its answer.

The tables are only ever read, so one copy serves every object. :func:`install` puts
:class:`SharedTableProperties` where paho's packet reader and client look the class
up; every other behaviour is paho's own (it is a subclass). It installs only when a
fresh paho object holds exactly the attributes this module knows of, so a paho
release that changes the class is left alone (and says so in the log) rather than
half-copied.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt._packet as paho_packet
import paho.mqtt.client as paho_client
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = structlog.get_logger(__name__)

# The attributes paho's __init__ sets; every other attribute is a property's value.
_TABLES = ("types", "names", "properties")
_OWN = frozenset({"packetType", *_TABLES})


def _tables() -> dict[str, Any] | None:
    """paho's tables, read off one object of its own; None if its shape is not known."""
    model = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if set(vars(model)) != _OWN:
        return None
    return {name: getattr(model, name) for name in _TABLES}


_SHARED = _tables()


class SharedTableProperties(Properties):
    """A ``Properties`` whose tables are the one shared copy (read only, as paho's
    own methods use them)."""

    def __init__(self, packetType: int) -> None:
        assert _SHARED is not None, "install() checks the tables first"
        object.__setattr__(self, "packetType", packetType)
        for name, table in _SHARED.items():
            object.__setattr__(self, name, table)

    def clear(self) -> None:
        # paho's clear tries every property name; the set ones are those in __dict__.
        for name in [n for n in vars(self) if n not in _OWN]:
            delattr(self, name)


def install() -> bool:
    """Use :class:`SharedTableProperties` in paho's packet reader and client (once per
    process; idempotent). False when paho's class is not the one this module knows."""
    if _SHARED is None:
        log.warning("paho_properties_unknown", detail="paho's Properties left as it is")
        return False
    paho_packet.Properties = SharedTableProperties  # type: ignore[attr-defined]
    paho_client.Properties = SharedTableProperties  # type: ignore[attr-defined]
    return True
