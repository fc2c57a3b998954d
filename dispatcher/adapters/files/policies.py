"""Escalation policies from the data folder's ``policies.toml``, per call kind and
optionally per community.

The file is kept by hand, so every problem is reported as ``file:line: problem``
(the line of the table it is in; the checks are ``dispatcher.core.policy_reader``'s,
the same as for the configuration's ``[escalation.policies]``) and nothing is half
loaded: either every policy is valid or
:class:`~dispatcher.adapters.files.directory_files.DataFileError` lists what is
wrong. An absent file means the built-in policies (``dispatcher.core.escalation``).

Format (all keys but ``steps`` optional)::

    [emergency]                  # also used for falls, unless [fall] is given
    repeat_every_s = 180         # the last step again at this interval ...
    repeat = 10                  # ... this many times (omitted: for ever), then the
                                 # hotline and the district's supervisors, for ever
    steps = [
      { delay_s = 0,   targets = ["hotline"] },
      { delay_s = 60,  targets = ["hotline", "on_duty:community:primary"] },
      { delay_s = 180, targets = ["hotline", "street_supervisor", "emergency_contacts:1"],
        channels = ["sms", "voice"] },
    ]
    [emergency.ack_timeout]      # omitted: the built-in one; ack_timeout = false: none
    after_s = 2700
    repeat_every_s = 900
    steps = [{ delay_s = 0, targets = ["acknowledger"] },
             { delay_s = 300, targets = ["street_supervisor"] }]
    [emergency.watchdog]         # omitted: the built-in one; watchdog = false: none
    untaken_after_s = 120        # nobody has taken it this long after it opened:
    repeat_every_s = 180         # the shift supervisor is paged, again at this interval
    repeat = 3                   # this many more times at most

    [community.c-lh.emergency]   # this community's own policy for emergencies (and falls)
    ...

Targets: ``hotline``, ``community``, ``street_supervisor``, ``district_supervisors``,
``emergency_contacts`` (all, in order) or ``emergency_contacts:<n>`` (the first n),
``person:<staff id>``, ``rotation:<rotation id>``,
``on_duty:<community|street|district>[:<primary|backup>]`` (exactly that level of
the resident's chain, no falling back: a step that finds nobody is skipped at
once), ``acknowledger`` (the acknowledgement timeout's: who holds the call).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path

from dispatcher.adapters.files.directory_files import DataFileError
from dispatcher.core.directory import Directory, Level
from dispatcher.core.escalation import DEFAULT_POLICIES, Policy
from dispatcher.core.policy_book import PolicyBook
from dispatcher.core.policy_reader import PolicyReader

POLICIES = "policies.toml"


class _Problems:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.split("\n")
        self.found: list[str] = []

    def add(self, table: tuple[str, ...], problem: str) -> None:
        line = self._line_of(table)
        where = f"{self.path}:{line}" if line else str(self.path)
        self.found.append(f"{where}: [{'.'.join(table)}] {problem}")

    def _line_of(self, table: tuple[str, ...]) -> int | None:
        """The line of ``[a.b]`` or, for a key of an inline table, ``b = `` under ``[a]``."""
        key = r"\s*\.\s*".join(rf"[\"']?{re.escape(k)}[\"']?" for k in table)
        header = re.compile(rf"^\s*\[\[?\s*{key}\s*\]\]?\s*(#.*)?$")
        within = re.compile(rf"^\s*\[\[?\s*{key}\s*\.")  # [a.b.c] when [a.b] is asked
        for pattern in (header, within):
            for number, line in enumerate(self.lines, start=1):
                if pattern.match(line):
                    return number
        if len(table) > 1:
            parent = self._line_of(table[:-1])
            if parent:
                leaf = re.compile(rf"^\s*[\"']?{re.escape(table[-1])}[\"']?\s*=")
                for number in range(parent, len(self.lines)):
                    if leaf.match(self.lines[number]):
                        return number + 1
            return parent
        return None


def load_policies(
    path: Path,
    directory: Directory,
    *,
    base: Mapping[str, Policy] = DEFAULT_POLICIES,
    rotation_ids: Collection[str] | None = None,
) -> PolicyBook:
    """The policies of ``path``, over ``base``; ``base`` alone when the file is absent.

    ``rotation_ids``: the rota's rotations, to check ``rotation:`` targets against
    (None: not checked here; an unknown one then names nobody when it fires).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return PolicyBook(dict(base))
    except OSError as exc:
        raise DataFileError([f"{path}: cannot read it: {exc.strerror}"]) from None
    try:
        text = raw.decode("utf-8-sig")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataFileError([f"{path}:{line}: not UTF-8 text ({exc.reason})"]) from None
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        place = f"{path}:{found.group(1)}" if found else str(path)
        raise DataFileError([f"{place}: not valid TOML ({exc})"]) from None

    problems = _Problems(path, text)
    reader = PolicyReader(problems.add, directory, rotation_ids)
    defaults = dict(base)
    defaults.update(reader.kinds(data, (), base))
    by_community: dict[str, dict[str, Policy]] = {}
    communities = data.get("community", {})
    if not isinstance(communities, dict):
        problems.add(("community",), "must be a table of communities")
        communities = {}
    for community_id, section in communities.items():
        area = directory.areas.get(community_id)
        where = ("community", community_id)
        if area is None or area.level is not Level.COMMUNITY:
            problems.add(where, f"{community_id!r} is not a community in areas.csv")
            continue
        if not isinstance(section, dict):
            problems.add(where, "must be a table of policies by call kind")
            continue
        by_community[community_id] = reader.kinds(section, where, defaults)
    if problems.found:
        raise DataFileError(problems.found)
    return PolicyBook(defaults, by_community)
