"""paho's Properties with shared tables: packets read exactly as paho reads them."""

from __future__ import annotations

import paho.mqtt._packet as paho_packet
import paho.mqtt.client as paho_client
import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties

from dispatcher.adapters.mqtt import paho_tables
from dispatcher.adapters.mqtt.paho_tables import SharedTableProperties


def _publish_body(props: Properties | None) -> bytes:
    """A PUBLISH's variable header and payload (after the fixed header), at QoS 1."""
    topic = b"eldercall/v1/dev/d-1/event"
    packed = props.pack() if props is not None else b"\x00"  # type: ignore[no-untyped-call]
    return len(topic).to_bytes(2, "big") + topic + (7).to_bytes(2, "big") + packed + b'{"a":1}'


def _with_properties() -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.MessageExpiryInterval = 30
    props.ContentType = "application/json"
    props.UserProperty = ("site", "B3")
    props.UserProperty = ("unit", "2")
    return props


def _decoded(body: bytes) -> paho_packet.PublishPacket:
    header = 0x32  # PUBLISH, QoS 1
    return paho_packet.decode_publish(header, body, MQTTProtocolVersion.MQTTv5)


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> None:
    # Installed for this test only: the modules' own class comes back after it.
    monkeypatch.setattr(paho_packet, "Properties", paho_packet.Properties)
    monkeypatch.setattr(paho_client, "Properties", paho_client.Properties)
    assert paho_tables.install()


@pytest.mark.parametrize("props", [None, _with_properties()], ids=["none", "several"])
def test_a_publish_reads_the_same_with_the_shared_tables(
    props: Properties | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _publish_body(props)
    monkeypatch.setattr(paho_packet, "Properties", Properties)
    stock = _decoded(body)
    monkeypatch.setattr(paho_packet, "Properties", SharedTableProperties)
    ours = _decoded(body)

    assert type(ours.properties) is SharedTableProperties
    assert ours.properties.json() == stock.properties.json()  # type: ignore[union-attr]
    assert (ours.topic, ours.mid, ours.payload) == (stock.topic, stock.mid, stock.payload)
    if props is not None:
        assert ours.properties.json()["UserProperty"] == [("site", "B3"), ("unit", "2")]  # type: ignore[union-attr]


def test_objects_share_tables_but_never_values() -> None:
    a = SharedTableProperties(PacketTypes.PUBLISH)
    b = SharedTableProperties(PacketTypes.PUBACK)
    assert a.names is b.names and a.properties is b.properties and a.types is b.types

    a.MessageExpiryInterval = 5
    assert not hasattr(b, "MessageExpiryInterval")
    assert b.isEmpty() and not a.isEmpty()  # type: ignore[no-untyped-call]
    with pytest.raises(MQTTException, match="does not apply"):
        b.MessageExpiryInterval = 5  # paho's own checks still apply
    a.clear()
    assert a.isEmpty()  # type: ignore[no-untyped-call]
    assert a.packetType == PacketTypes.PUBLISH
    # The tables are as a fresh paho object builds them, untouched by use.
    assert a.names == Properties(PacketTypes.PUBLISH).names  # type: ignore[no-untyped-call]


@pytest.mark.usefixtures("shared")
def test_install_reaches_the_reader_and_the_client() -> None:
    assert paho_packet.Properties is SharedTableProperties  # type: ignore[attr-defined]
    assert paho_client.Properties is SharedTableProperties
    assert isinstance(_decoded(_publish_body(None)).properties, Properties)


def test_a_paho_whose_class_changed_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paho_tables, "_SHARED", None)  # what _tables() says of an unknown shape
    monkeypatch.setattr(paho_packet, "Properties", Properties)
    assert not paho_tables.install()
    assert paho_packet.Properties is Properties


def test_an_unknown_shape_is_recognised(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Properties.__init__

    def more(self: Properties, packet_type: int) -> None:
        original(self, packet_type)  # type: ignore[no-untyped-call]
        object.__setattr__(self, "cache", {})  # a table a later paho might add

    monkeypatch.setattr(Properties, "__init__", more)
    assert paho_tables._tables() is None
