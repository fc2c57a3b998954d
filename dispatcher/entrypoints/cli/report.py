"""``eldercall report``: answer times against the 60 s / 180 s targets, as tables.

Registered by ``dispatcher.entrypoints.cli.main.build_parser``; uses the commands' shared
session and formatting helpers in ``common``.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from dispatcher.core.reports import AnswerTimes, Figures
from dispatcher.entrypoints.cli import common


def add_report_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], api: argparse.ArgumentParser
) -> None:
    report = sub.add_parser(
        "report", parents=[api], help="answer times against the 60 s / 180 s targets"
    )
    report.add_argument(
        "--since",
        required=True,
        metavar="TIME",
        help="calls opened from (included): 2026-11-01, '2026-11-01 08:00' or with an "
        "offset (local times are in the daemon's data time zone)",
    )
    report.add_argument("--until", metavar="TIME", help="to (excluded), as --since; default now")
    report.add_argument("--json", action="store_true", help="print JSON instead of tables")
    report.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    since = _parse_period_end("--since", args.since)
    until = _parse_period_end("--until", args.until) if args.until else None
    with common.Session(args) as s:
        report = s.client.answer_times(since, until)
        if args.json:
            common.print_json(report.model_dump(mode="json"))
            return 0
        print("\n".join(_report_lines(report)))
    return 0


_FIGURE_HEADS = ["CALLS", "ANSWERED", "UNANSWERED", "<=60s", "60s TARGET", "<=180s"]
_FIGURE_HEADS += ["180s TARGET", "MEDIAN", "P90"]


def _report_lines(report: AnswerTimes) -> list[str]:
    zone = common.zone(report.timezone)

    def local(when: datetime) -> str:
        return when.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    targets = ", ".join(
        f"{t.required_pct:g}% within {t.within_s} s" for t in report.overall.targets
    )
    lines = [
        f"Answer times of the calls opened {local(report.since)} to {local(report.until)} "
        f"({report.timezone}), as of {local(report.now)}",
        f"Targets: {targets}. A call counts from its opening to its first answer; "
        "an unanswered call counts as missed once older than the target.",
    ]

    def section(title: str, heads: list[str], rows: list[list[str]]) -> None:
        lines.append("")
        lines.append(title)
        if not rows:
            lines.append("  (no calls)")
            return
        table = common.table([heads + _FIGURE_HEADS, *rows])
        lines.extend("  " + line for line in table.splitlines())

    section("Residents' calls", [""], [["all", *_figure_cells(report.overall)]])
    section("By level", ["LEVEL"], [[g.key, *_figure_cells(g)] for g in report.by_level])
    section(
        "By operator",
        ["NAME", "ID", "LEVEL"],
        [[g.name, g.key, g.level, *_figure_cells(g)] for g in report.by_operator],
    )
    section("By kind", ["KIND"], [[g.key, *_figure_cells(g)] for g in report.by_kind])
    section("By channel", ["CHANNEL"], [[g.key, *_figure_cells(g)] for g in report.by_channel])
    tech = report.technical
    section(
        "Technical alerts (apart: not residents' calls)",
        [""],
        [["all", *_figure_cells(tech)]] if tech.calls else [],
    )
    return lines


def _figure_cells(f: Figures) -> list[str]:
    cells = [str(f.calls), str(f.answered), str(f.unanswered)]
    for t in f.targets:
        share = f"{t.within}/{t.within + t.missed}"
        if t.pct is not None:
            share += f" {t.pct:.1f}%"
        if t.pending:
            share += f" (+{t.pending} pending)"
        verdict = "-" if t.met is None else ("met" if t.met else "MISSED")
        cells += [share, verdict]
    cells += [common.seconds(f.median_s), common.seconds(f.p90_s)]
    return cells


def _parse_period_end(option: str, text: str) -> datetime:
    """An ISO 8601 date or time; a naive one is left for the daemon to place in its
    data time zone."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise common.UsageError(
            f"{option}: cannot read {text!r}: give 2026-11-01, '2026-11-01 08:00' "
            "or 2026-11-01T08:00+08:00"
        ) from None
