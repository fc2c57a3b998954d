"""Free loopback ports and unique MQTT client ids, so that no test binds or connects to a
default port (HTTP 8080, MQTT 1883) or takes the daemon's default client id."""

from __future__ import annotations

import socket
import uuid


def free_port() -> int:
    """A loopback port nobody listens on at this moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_client_id(prefix: str = "test-dispatcher") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def isolated_endpoints_toml() -> str:
    """``[mqtt]`` and ``[http]`` tables for a configuration file that a test hands to
    ``eldercall run``: should the daemon start after all, it reaches no real broker, binds no
    default port and takes no other client's session."""
    return (
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{free_port()}"\n'
        f'client_id = "{unique_client_id()}"\n'
        f'[http]\nlisten = "127.0.0.1:{free_port()}"\n'
    )
