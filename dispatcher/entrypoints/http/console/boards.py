"""The console's board (``/console/board``) and the command centre's wall screen
(``/console/wall``): the service's ``BoardView`` rendered, nothing decided here. Both
refresh their board panel by themselves (``board.js`` fetches ``/console/board/panel``);
the wall's queue is the live queue's own stream and script, without its buttons."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from dispatcher.entrypoints.http.console import auth, chart, keys
from dispatcher.entrypoints.http.console.pages import HEARTBEAT_S, _render, language, translator
from dispatcher.services.accounts import SignedIn
from dispatcher.services.boards import Boards, BoardView
from dispatcher.services.live_queue import LiveQueue

router = APIRouter(prefix=auth.CONSOLE, include_in_schema=False)

# How often the board panel fetches itself again: the rota moves by the minute, the
# figures by the call; the queue beside it on the wall is live.
REFRESH_S = 30
SECTION = "console.board."


def _boards(request: Request) -> Boards:
    boards: Boards = request.state.boards
    return boards


def _context(request: Request, board: BoardView, lang: str, signed_in: SignedIn) -> dict[str, Any]:
    t = translator(lang)
    zone = ZoneInfo(board.timezone)

    def b(key: str, **values: object) -> str:
        text: str = t(SECTION + key, **values)
        return text

    def local(when: datetime | None, fmt: str = "%H:%M") -> str:
        return when.astimezone(zone).strftime(fmt) if when else "-"

    def until(when: datetime | None) -> str:
        if when is None:
            return b("beyond_horizon")
        same_day = when.astimezone(zone).date() == board.at.astimezone(zone).date()
        return local(when) if same_day else local(when, "%m-%d %H:%M")

    def ago(when: datetime | None) -> str:
        if when is None:
            return "-"
        s = max(0, int((board.at - when).total_seconds()))
        if s >= 86400:
            return b("ago_days", n=s // 86400)
        if s >= 3600:
            return b("ago_hours", n=s // 3600)
        return b("ago_minutes", n=s // 60)

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}%"

    return {
        "me": signed_in,
        "board": board,
        "b": b,
        "local": local,
        "until": until,
        "ago": ago,
        "pct": pct,
        "chart": chart.answer_chart(board.today, board.week, b("not_answered")),
        "bin_label": lambda x: chart.bin_label(x, b("not_answered")),
        "share": chart.share,
        "refresh_s": REFRESH_S,
    }


@router.get("/board", response_class=HTMLResponse)
async def board_page(request: Request) -> Response:
    signed_in = await auth.current(request)
    lang = language(request, signed_in)
    board = await _boards(request).board(signed_in.staff)
    return _render(request, "board.html", lang, **_context(request, board, lang, signed_in))


@router.get("/board/panel", response_class=HTMLResponse)
async def board_panel(request: Request, view: str = "board") -> Response:
    """The board's panel alone, for the pages to refresh themselves with."""
    signed_in = await auth.current(request)
    lang = language(request, signed_in)
    board = await _boards(request).board(signed_in.staff)
    template = "_board_wall.html" if view == "wall" else "_board_panel.html"
    response = _render(request, template, lang, **_context(request, board, lang, signed_in))
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/wall", response_class=HTMLResponse)
async def wall_page(request: Request) -> Response:
    """Large type on a dark background, the live queue beside the board; no forms."""
    signed_in = await auth.current(request)
    lang = language(request, signed_in)
    t = translator(lang)
    queue: LiveQueue = request.state.live_queue
    snapshot = await queue.snapshot(signed_in.staff)
    board = await _boards(request).board(signed_in.staff)
    page_texts = {
        key: t(key)
        for key in ("taken", "unknown_device", "live", "not_live", "empty", "queue_title")
    }
    for key in ("take", "open", "mute", "muted", "sound_blocked"):
        page_texts[key] = t(key)
    page_texts["waiting"] = t("waiting", n="{n}")
    page_texts["alarm_title"] = t("alarm_title", n="{n}")
    page_texts["unattended"] = t("unattended", s=snapshot.untaken_flag_s)
    page_texts.update(keys.queue_texts(t))
    for kind in ("emergency", "fall", "service", "technical"):
        page_texts[f"kind_{kind}"] = t(f"kind.{kind}")
    for state in ("open", "acknowledged", "responder_on_site", "cancelled", "resolved"):
        page_texts[f"state_{state}"] = t(f"state_{state}")
    config = {
        "readonly": True,  # the wall takes nothing and rings nothing: no forms
        "csrf": "",
        "me": signed_in.staff.id,
        "texts": page_texts,
        "snapshot": snapshot.model_dump(mode="json"),
        "events": f"{auth.CONSOLE}/events",
        "queue": f"{auth.CONSOLE}/queue.json",
        "login": f"{auth.CONSOLE}/login",
        "heartbeat_s": HEARTBEAT_S,
    }
    return _render(
        request,
        "wall.html",
        lang,
        config=json.dumps(config, ensure_ascii=False).replace("<", "\\u003c"),
        **_context(request, board, lang, signed_in),
    )
