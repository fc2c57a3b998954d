"""config/data/policies.toml: per kind and per community, validated, with file:line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.adapters.files.directory_files import DataFileError, load_directory
from dispatcher.adapters.files.policies import POLICIES, load_policies
from dispatcher.config import ConfigError, load_settings
from dispatcher.core.directory import Directory
from dispatcher.core.escalation import DEFAULT_POLICIES, EMERGENCY, AckTimeout, Step
from tests.support.app import DATA

GOOD = """\
# Emergencies (and falls): hotline, then the community's primary by SMS and voice.
[emergency]
repeat_every_s = 120
repeat = 2
steps = [
  { delay_s = 0, targets = ["hotline"] },
  { delay_s = 60, targets = ["hotline", "on_duty:community:primary"], channels = ["sms", "voice"] },
]

[emergency.ack_timeout]
after_s = 600
repeat_every_s = 300
steps = [
  { delay_s = 0, targets = ["acknowledger"] },
  { delay_s = 120, targets = ["street_supervisor"] },
]

[technical]
ack_timeout = false
steps = [{ delay_s = 0, targets = ["person:zhao-min"] }]

[community.c-lh.service]
repeat_every_s = 600
steps = [
  { delay_s = 0, targets = ["on_duty:community"] },
  { delay_s = 300, targets = ["emergency_contacts:1", "hotline"] },
]
"""


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory(DATA, "Asia/Shanghai")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / POLICIES
    path.write_text(text, encoding="utf-8")
    return path


def test_absent_file_means_the_built_in_policies(tmp_path: Path, directory: Directory) -> None:
    book = load_policies(tmp_path / POLICIES, directory)
    assert book.defaults == DEFAULT_POLICIES and book.by_community == {}
    assert book.for_call("fall", "c-lh") == EMERGENCY


def test_a_good_file_per_kind_and_per_community(tmp_path: Path, directory: Directory) -> None:
    book = load_policies(write(tmp_path, GOOD), directory)
    emergency = book.for_call("emergency", "c-qs")
    assert emergency.repeat == 2 and emergency.repeat_every_s == 120
    assert emergency.steps[1] == Step(
        60, ("hotline", "on_duty:community:primary"), ("sms", "voice")
    )
    assert emergency.ack_timeout == AckTimeout(
        600, (Step(0, ("acknowledger",)), Step(120, ("street_supervisor",))), 300
    )
    assert book.for_call("fall", None) == emergency  # a fall follows the emergency policy
    assert book.for_call("technical", None).ack_timeout is None
    # c-lh has its own service policy; other communities and kinds keep the default.
    assert book.for_call("service", "c-lh").steps[0].targets == ("on_duty:community",)
    assert book.for_call("service", "c-qs") == DEFAULT_POLICIES["service"]
    assert book.for_call("emergency", "c-lh") == emergency
    # Omitted ack_timeout: the built-in one for that kind.
    assert book.for_call("service", "c-lh").ack_timeout == DEFAULT_POLICIES["service"].ack_timeout


def test_the_shipped_example_file_loads(directory: Directory) -> None:
    # It restates the built-in policies, which apply when it is absent.
    assert load_policies(DATA / POLICIES, directory).defaults == DEFAULT_POLICIES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[emergency]\nsteps = [{ delay_s = 0, targets = ["hotlin"] }]\n',
            ":2: [emergency.steps] step 1: unknown target 'hotlin'",
        ),
        (
            '\n[service]\nsteps = [{ delay_s = 0, targets = ["person:nobody"] }]\n',
            ":3: [service.steps] step 1: target 'person:nobody': no staff 'nobody' in staff.csv",
        ),
        (
            '[emergency]\nsteps = [{ delay_s = -5, targets = ["hotline"] }]\n',
            "step 1: delay_s must be a whole number >= 0",
        ),
        (
            '[emergency]\nrepeat_every_s = 60\nsteps = [\n { delay_s = 60, targets = ["hotline"] },'
            '\n { delay_s = 0, targets = ["community"] },\n]\n',
            ":3: [emergency.steps] step 2: delay_s 0 comes before step 1's 60",
        ),
        (
            '[community.c-nowhere.emergency]\nsteps = [{ delay_s = 0, targets = ["hotline"] }]\n',
            ":1: [community.c-nowhere] 'c-nowhere' is not a community in areas.csv",
        ),
        (
            '[community.s-hx.emergency]\nsteps = [{ delay_s = 0, targets = ["hotline"] }]\n',
            "'s-hx' is not a community",
        ),
        (
            '[emergency]\nsteps = [{ delay_s = 0, targets = ["on_duty:city"] }]\n',
            "the level must be one of community, street, district",
        ),
        (
            '[emergency]\nsteps = [{ delay_s = 0, targets = ["rotation:nights"] }]\n',
            "target 'rotation:nights': no rotation 'nights' in the rota",
        ),
        (
            '[emergency]\nsteps = [{ delay_s = 0, targets = ["hotline"], channels = ["fax"] }]\n',
            "unknown channel 'fax'",
        ),
        ('[emergency]\nrepeat = -1\nsteps = [{ delay_s = 0, targets = ["hotline"] }]\n', "repeat"),
        ("[emergency]\nsteps = []\n", "a policy needs a list of at least one step"),
        ('[emergncy]\nsteps = [{ delay_s = 0, targets = ["hotline"] }]\n', "unknown call kind"),
        (
            '[emergency]\nstep = [{ delay_s = 0, targets = ["hotline"] }]\n',
            "unknown key step",
        ),
        (
            '[emergency]\nsteps = [{ delay_s = 0, targets = ["hotline"] }]\n'
            "[emergency.ack_timeout]\nafter_s = 0\nrepeat_every_s = 60\n"
            'steps = [{ delay_s = 0, targets = ["acknowledger"] }]\n',
            ":3: [emergency.ack_timeout] after_s must be a whole number >= 1",
        ),
        ("[emergency\n", ":1: not valid TOML"),
        (
            '[service]\nsteps = [{ delay_s = 0, targets = ["acknowledger"] }]\n',
            "target 'acknowledger' is only for the steps of an ack_timeout",
        ),
    ],
)
def test_problems_are_reported_with_file_and_line(
    tmp_path: Path, directory: Directory, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataFileError) as caught:
        load_policies(path, directory, rotation_ids={"days"})
    message = str(caught.value)
    assert expected in message and str(path) in message


def test_every_problem_is_reported_at_once(tmp_path: Path, directory: Directory) -> None:
    text = (
        '[emergency]\nsteps = [{ delay_s = 0, targets = ["nobody"] }]\n'
        '[service]\nsteps = [{ delay_s = 0, targets = ["person:ghost"] }]\n'
    )
    with pytest.raises(DataFileError) as caught:
        load_policies(write(tmp_path, text), directory)
    assert len(caught.value.problems) == 2


def test_a_rotation_target_is_checked_only_against_known_rotations(
    tmp_path: Path, directory: Directory
) -> None:
    text = '[emergency]\nsteps = [{ delay_s = 0, targets = ["rotation:days", "hotline"] }]\n'
    book = load_policies(write(tmp_path, text), directory, rotation_ids={"days"})
    assert book["emergency"].steps[0].targets == ("rotation:days", "hotline")


def test_configuration_policies_still_work_and_check_their_targets(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        escalation={
            "policies": {
                "emergency": {
                    "repeat_every_s": 600,
                    "steps": [
                        {"delay_s": 0, "targets": ["hotline"]},
                        {"delay_s": 30, "targets": ["street_supervisor", "person:sun-li"]},
                    ],
                }
            }
        },
    )
    emergency = settings.escalation.resolved_policies()["emergency"]
    assert emergency.steps[1].targets == ("street_supervisor", "person:sun-li")
    assert emergency.ack_timeout == EMERGENCY.ack_timeout
    with pytest.raises(ConfigError, match="unknown target"):
        load_settings(
            None,
            escalation={
                "policies": {
                    "service": {"repeat_every_s": 60, "steps": [{"delay_s": 0, "targets": ["x"]}]}
                }
            },
        )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            '[escalation.policies.emergency]\nsteps = [{ delay_s = 0, targets = ["hotlin"] }]\n',
            "[escalation.policies.emergency.steps] step 1: unknown target 'hotlin'",
        ),
        (
            "[escalation.policies.fall]\nrepeat_every_s = 60\nsteps = [\n"
            ' { delay_s = 60, targets = ["hotline"] },\n'
            ' { delay_s = 0, targets = ["community"] },\n]\n',
            "step 2: delay_s 0 comes before step 1's 60; steps must be in order",
        ),
        (
            "[escalation.policies.service]\nrepeat_every_s = 0\n"
            'steps = [{ delay_s = 0, targets = ["hotline"] }]\n',
            "[escalation.policies.service] repeat_every_s must be a whole number >= 1, not 0",
        ),
        (
            '[escalation.policies.emergncy]\nsteps = [{ delay_s = 0, targets = ["hotline"] }]\n',
            "[escalation.policies.emergncy] unknown call kind",
        ),
        (
            '[escalation.policies.emergency]\nsteps = [{ delay_s = 0, targets = ["hotline"] }]\n'
            "[escalation.policies.emergency.ack_timeout]\nafter_s = 60\nrepeat_every_s = 60\n"
            'steps = [{ delay_s = 0, targets = ["acknowledger"] }]\n',
            "[escalation.policies.emergency] unknown key ack_timeout",
        ),
    ],
)
def test_the_configuration_refuses_a_policy_in_the_files_words(
    tmp_path: Path, policy: str, expected: str
) -> None:
    config = tmp_path / "eldercall.toml"
    config.write_text(policy, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert expected in str(caught.value) and str(config) in str(caught.value)
