"""Control characters in the data files stop at the loader: a resident's name with an
escape sequence or a NUL in residents.csv is clean in the directory, and the voice
call's TwiML (through the public webhook route, on a real database) is valid XML."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from dispatcher.adapters.db import schema as db
from dispatcher.adapters.files.directory_files import load_directory
from dispatcher.adapters.twilio.phone_webhooks import TwilioWebhooks
from dispatcher.bootstrap import App
from dispatcher.entrypoints.http.app import create_app
from dispatcher.testing import FakeClock
from tests.support.app import DATA, built_app, event, settings_for

TOKEN = "primary-auth-token"
PUBLIC = "https://centre.example.org"
DEMO_OPERATOR = "+8613800138000"  # zh, on the hotline around the clock
# What a spreadsheet hides: ESC (a terminal colour), NUL, BEL, a vertical tab, a C1 CSI.
DIRTY_NAME = "张\x1b[31m桂\x00兰\x07\x0b\x9b2J"
CLEAN_NAME = "张[31m桂兰2J"
DIRTY_ADDRESS = "江滨区柳湖路88弄3号502室\x08\x1b]0;owned\x07"


@pytest.fixture
def dirty_data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(DATA, folder)
    residents = folder / "residents.csv"
    text = residents.read_text(encoding="utf-8")
    assert "r-0001,张桂兰," in text
    text = text.replace("r-0001,张桂兰,", f"r-0001,{DIRTY_NAME},", 1)
    text = text.replace("江滨区柳湖路88弄3号502室", DIRTY_ADDRESS, 1)
    residents.write_text(text, encoding="utf-8")
    return folder


def test_the_loader_strips_control_characters_from_names_and_addresses(dirty_data: Path) -> None:
    resident = load_directory(dirty_data).residents["r-0001"]
    assert resident.name == CLEAN_NAME
    assert resident.address == "江滨区柳湖路88弄3号502室]0;owned"


@pytest.fixture
async def dirty_app(
    tmp_path: Path, database_url: str, clock: FakeClock, dirty_data: Path
) -> AsyncIterator[App]:
    settings = settings_for(tmp_path, database={"url": database_url}, data={"dir": str(dirty_data)})
    built = await built_app(settings, clock)
    yield built
    await built.aclose()


async def test_a_dirty_name_in_the_data_files_ends_as_valid_twiml(dirty_app: App) -> None:
    app = dirty_app
    topic = "eldercall/v1/dev/dev-0001/event"
    ack = await app.intake.on_event("dev-0001", topic, event("e1", "emergency"))
    assert ack is not None and ack.call_id
    await app.escalator.run_due()  # the first step: the hotline, by SMS and by voice
    async with app.sessions() as s:
        rows = list(
            await s.execute(
                select(db.sms_outbox).where(
                    db.sms_outbox.c.call_id == ack.call_id,
                    db.sms_outbox.c.to_number == DEMO_OPERATOR,
                )
            )
        )
    assert rows and any(CLEAN_NAME in r.body for r in rows)  # the SMS too
    row = rows[0].id

    hooks = TwilioWebhooks(app.phone, (TOKEN,), PUBLIC)
    api = create_app(app.operations, app.clock, twilio=hooks)
    path = f"/twilio/voice/{row}"
    params = {
        "CallSid": "CA" + "3" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": "+8610000000000",
        "To": DEMO_OPERATOR,
        "CallStatus": "in-progress",
        "AnsweredBy": "human",
    }
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + path, params)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.7:8080") as client:
        response = await client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.text)  # raises on a character XML 1.0 forbids
    spoken = " ".join(say.text or "" for say in root.iter("Say"))
    assert CLEAN_NAME in spoken and "\x1b" not in response.text
