"""The supervisor watchdog's setting in policies.toml: per kind and per community, over
the built-in one, and refused with file:line and a clear reason when it is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.adapters.files.directory_files import DataFileError, load_directory
from dispatcher.adapters.files.policies import POLICIES, load_policies
from dispatcher.config import ConfigError, load_settings
from dispatcher.core.directory import Directory
from dispatcher.core.escalation import EMERGENCY, SERVICE, Watchdog
from tests.support.app import DATA

STEPS = 'steps = [{ delay_s = 0, targets = ["hotline"] }]\n'


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory(DATA, "Asia/Shanghai")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / POLICIES
    path.write_text(text, encoding="utf-8")
    return path


def test_the_built_in_watchdogs_and_the_shipped_file_agree(directory: Directory) -> None:
    book = load_policies(DATA / POLICIES, directory)
    assert book["emergency"].watchdog == Watchdog(120, 180, 3) == book["fall"].watchdog
    assert book["service"].watchdog == SERVICE.watchdog
    assert book["technical"].watchdog is None


def test_a_kind_and_a_community_set_their_own(tmp_path: Path, directory: Directory) -> None:
    text = (
        f"[emergency]\n{STEPS}[emergency.watchdog]\nuntaken_after_s = 90\nrepeat = 1\n"
        f"[service]\n{STEPS}watchdog = false\n"
        f"[community.c-lh.emergency]\n{STEPS}[community.c-lh.emergency.watchdog]\n"
        "untaken_after_s = 60\n"
    )
    book = load_policies(write(tmp_path, text), directory)
    # What the table leaves out is the kind's built-in value (repeat_every_s 180).
    assert book.for_call("emergency", "c-qs").watchdog == Watchdog(90, 180, 1)
    assert book.for_call("fall", None).watchdog == Watchdog(90, 180, 1)
    assert book.for_call("service", None).watchdog is None
    # A community's table is over the file's own policy for the kind.
    assert book.for_call("emergency", "c-lh").watchdog == Watchdog(60, 180, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"[emergency]\n{STEPS}[emergency.watchdog]\nuntaken_after_s = 0\n",
            ":3: [emergency.watchdog] untaken_after_s must be a whole number >= 1, not 0",
        ),
        (
            f'[emergency]\n{STEPS}[emergency.watchdog]\nrepeat_every_s = "3 min"\n',
            ":3: [emergency.watchdog] repeat_every_s must be a whole number >= 1, not '3 min'",
        ),
        (
            f"[emergency]\n{STEPS}[emergency.watchdog]\nrepeat = -1\n",
            ":3: [emergency.watchdog] repeat must be a whole number >= 0, not -1",
        ),
        (
            f"[emergency]\n{STEPS}[emergency.watchdog]\nrepeat = true\n",
            "[emergency.watchdog] repeat must be a whole number >= 0, not True",
        ),
        (
            f"[emergency]\n{STEPS}[emergency.watchdog]\nafter_s = 120\n",
            ":3: [emergency.watchdog] unknown key after_s (known: repeat, repeat_every_s, "
            "untaken_after_s)",
        ),
        (
            f"[service]\n{STEPS}watchdog = 120\n",
            "[service.watchdog] must be a table, or false for none",
        ),
        (
            "[watchdog]\nuntaken_after_s = 120\n",
            ":1: [watchdog] the watchdog is set per call kind: [emergency.watchdog]",
        ),
    ],
)
def test_a_bad_watchdog_setting_is_refused_with_its_line(
    tmp_path: Path, directory: Directory, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataFileError) as caught:
        load_policies(path, directory)
    message = str(caught.value)
    assert expected in message and str(path) in message


def test_the_configurations_policies_keep_the_files_watchdog() -> None:
    policy = {"repeat_every_s": 600, "steps": [{"delay_s": 0, "targets": ["hotline"]}]}
    settings = load_settings(None, escalation={"policies": {"emergency": policy}})
    assert settings.escalation.resolved_policies()["emergency"].watchdog == EMERGENCY.watchdog
    with pytest.raises(ConfigError, match="unknown key watchdog"):
        load_settings(
            None,
            escalation={"policies": {"emergency": {**policy, "watchdog": {"repeat": 1}}}},
        )
