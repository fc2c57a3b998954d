"""Mosquitto's password file and ACL, written from the provisioned accounts, and the
broker told to read them again (SIGHUP) without a restart.

Password lines are Mosquitto 2's PBKDF2-SHA512 format, as ``mosquitto_passwd`` writes
them: ``user:$7$<iterations>$<base64 salt>$<base64 hash>`` (12-byte salt, 64-byte
hash). Written here rather than by ``mosquitto_passwd -b``, which would put every
device's secret on a command line (``ps`` shows it). 101 iterations is Mosquitto's own
default: a device's secret is 32 random bytes, which no iteration count makes safer,
and 100,000 devices reconnecting after a broker restart must not cost minutes of CPU.

The ACL is one set of ``pattern`` lines for every device (``%u``: the username, which
is the device's id) and the dispatcher's own ``user`` block, under the configured
topic root. Every file is written whole, to a temporary file then renamed, keeping the
old file's mode and owner (Mosquitto reads it as the ``mosquitto`` user on reload).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import signal
import tempfile
from pathlib import Path

from dispatcher.services.provisioning import Accounts, hashes

ITERATIONS = 101
SALT_BYTES = 12


def password_hash(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The part of a password-file line after ``user:``."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def password_text(hashes: dict[str, str]) -> str:
    """The password file: one ``user:hash`` line per account, sorted."""
    return "".join(f"{user}:{hashes[user]}\n" for user in sorted(hashes))


def acl_text(topic_root: str, dispatcher_username: str) -> str:
    root = topic_root.rstrip("/")
    return f"""# Eldercall topic ACL for Mosquitto (acl_file), written by `eldercall devices`
# for the topic root {root}. Do not edit: it is written again at each provisioning.

# The dispatcher (its MQTT username): every device's events and status in, answers
# and commands out, and its own retained status.
user {dispatcher_username}
topic read {root}/dev/+/event
topic read {root}/dev/+/status
topic write {root}/dev/+/ack
topic write {root}/dev/+/cmd
topic readwrite {root}/centre/status

# Every device (username = device id): it publishes only its own event and status
# (its Last Will included) and reads only its own ack and cmd, and the centre's
# status. %u (the username, which the broker checked), never %c (the client id, which
# a client chooses). A device id has no '+', '#' or '/' (^[A-Za-z0-9_-]{{1,64}}$), so
# %u can never widen to another device's topics.
pattern write {root}/dev/%u/event
pattern write {root}/dev/%u/status
pattern read {root}/dev/%u/ack
pattern read {root}/dev/%u/cmd
pattern read {root}/centre/status
"""


def write_atomically(path: Path, text: str, mode: int = 0o640) -> None:
    """``path`` holds ``text`` whole or is untouched; an existing file's mode and owner
    are kept (the broker's user must still be able to read it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, (old.st_mode & 0o777) if old else mode)
        if old is not None:
            # Not ours to give when not root: the mode is kept all the same.
            with contextlib.suppress(PermissionError):
                os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ReloadFailed(Exception):
    pass


def reload_broker(pid_file: Path) -> int:
    """SIGHUP to the Mosquitto whose pid ``pid_file`` holds: it reads its password file
    and ACL again, and disconnects a client whose account is gone. Returns the pid."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ReloadFailed(f"cannot read the broker's pid from {pid_file}: {exc}") from None
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise ReloadFailed(f"cannot signal the broker (pid {pid}): {exc.strerror}") from None
    return pid


PASSWD = "passwd"
ACL = "acl"


class MosquittoFiles:
    """The broker's password file and ACL in ``state_dir``, and its reload."""

    def __init__(
        self, state_dir: Path, topic_root: str, dispatcher_username: str, pid_file: Path | None
    ) -> None:
        self.passwd = state_dir / PASSWD
        self.acl = state_dir / ACL
        self._root = topic_root
        self._dispatcher = dispatcher_username
        self._pid_file = pid_file

    def write(self, accounts: Accounts) -> None:
        write_atomically(self.passwd, password_text(hashes(accounts, self._dispatcher)))
        write_atomically(self.acl, acl_text(self._root, self._dispatcher))

    def reload(self) -> str:
        if self._pid_file is None:
            return "broker not signalled ([broker] pid_file unset): reload it (SIGHUP) yourself"
        if not self._pid_file.exists():
            # Not running (or not yet): it reads these files when it starts.
            return f"broker not running (no {self._pid_file}): it reads the files at its start"
        pid = reload_broker(self._pid_file)
        return f"broker (pid {pid}) told to reload (SIGHUP)"
