"""The fields of the registry's records, checked the same wherever they come from: a
line of the data folder's CSV files (``dispatcher.adapters.files.directory_files``) or
a request to the API (``dispatcher.entrypoints.http.registry``).

Each validator raises ``ValueError`` with a message that reads after the field's
name, e.g. "phone" + " '138' is not an E.164 number like +8613800138000"; the
``Annotated`` types below put them on pydantic fields. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, time
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from devices.protocol import DEVICE_ID_RE
from devices.text import clean_text
from dispatcher.core.directory import KeyResident, Level, Role

# Ids of areas, staff and residents: they appear in URLs, logs and CLI arguments.
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
# Bearer tokens: long enough not to be guessed, no spaces so they survive a header.
TOKEN_RE = re.compile(r"^[\x21-\x7e]{16,128}$")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
LANGUAGES = ("zh", "en")
SEXES = ("", "F", "M")
MAX_TEXT = 2000  # a name, an address, a note: what fits a screen and a column


def required(value: str) -> str:
    if not value:
        raise ValueError("is empty")
    return value


def printable(value: Any) -> Any:
    return clean_text(value).strip() if isinstance(value, str) else value


def ident(value: str) -> str:
    if not ID_RE.fullmatch(required(value)):
        raise ValueError(
            f"{value!r} is not a valid id (lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit, at most 64)"
        )
    return value


def device_id(value: str) -> str:
    if not DEVICE_ID_RE.fullmatch(required(value)):
        raise ValueError(f"{value!r} is not a valid device id (1-64 of A-Z a-z 0-9 _ -)")
    return value


def phone(value: str) -> str:
    if not E164_RE.fullmatch(required(value)):
        raise ValueError(f"{value!r} is not an E.164 number like +8613800138000")
    return value


def token(value: str) -> str:
    # Never echo the value: it is a secret.
    if not TOKEN_RE.fullmatch(value):
        raise ValueError("must be 16-128 printable ASCII characters without spaces")
    return value


def a_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not DATE_RE.fullmatch(required(value)):
        raise ValueError(f"{value!r} is not a date like 1941-05-30")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a real date") from None


def start_time(value: str) -> time:
    if not TIME_RE.fullmatch(required(value)):
        raise ValueError(f"{value!r} is not a time HH:MM between 00:00 and 23:59")
    return time.fromisoformat(value)


def end_time(value: str) -> time:
    # 24:00 is midnight at the end of the day; as a shift end it means the same as
    # 00:00 does (end <= start runs to the next day), and reads better in the file.
    if value == "24:00":
        return time(0, 0)
    if not TIME_RE.fullmatch(required(value)):
        raise ValueError(f"{value!r} is not a time HH:MM between 00:00 and 24:00")
    return time.fromisoformat(value)


def order(value: Any) -> int:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not re.fullmatch(r"[1-9][0-9]?", required(text)):
        raise ValueError(f"{value!r} is not a number from 1 to 99")
    return int(text)


def choice(options: Iterable[str]) -> Callable[[Any], str]:
    allowed = tuple(options)

    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return str(value)

    return check


def language(value: str) -> str:
    # Blank means the default catalogue.
    return choice(LANGUAGES)(value or "zh")


def id_card(value: str) -> str:
    # 18 characters: 17 digits and a check digit (0-9 or X). Blank: not recorded.
    if value and not re.fullmatch(r"[0-9]{17}[0-9Xx]", value):
        raise ValueError("is not an 18-character ID-card number (17 digits and 0-9 or X)")
    return value.upper()


def yes_no(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("", "no", "n", "0", "false"):
        return False
    if value in ("yes", "y", "1", "true"):
        return True
    raise ValueError(f"{value!r} is not yes or no")


def optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapped(value: Any) -> Any:
        return None if value in ("", None) else check(value)

    return wrapped


def max_text(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise ValueError(f"is {len(value)} characters long; at most {MAX_TEXT}")
    return value


Ident = Annotated[str, AfterValidator(ident)]
OptIdent = Annotated[str | None, BeforeValidator(optional(ident))]
DeviceId = Annotated[str, AfterValidator(device_id)]
# Names, addresses, notes: shown in TwiML, SMS, iCalendar and on terminals, so they
# come in without control characters (an invisible one breaks the voice call's XML).
Text = Annotated[
    str, BeforeValidator(printable), AfterValidator(required), AfterValidator(max_text)
]
OptText = Annotated[str, BeforeValidator(printable), AfterValidator(max_text)]
Phone = Annotated[str, AfterValidator(phone)]
OptPhone = Annotated[str | None, BeforeValidator(optional(phone))]
Language = Annotated[str, AfterValidator(language)]
Token = Annotated[str | None, BeforeValidator(optional(token))]
ADate = Annotated[date, BeforeValidator(a_date)]
OptDate = Annotated[date | None, BeforeValidator(optional(a_date))]
Sex = Annotated[str, AfterValidator(choice(SEXES))]
IdCard = Annotated[str, AfterValidator(id_card)]
LevelField = Annotated[Level, BeforeValidator(choice(Level))]
RoleField = Annotated[Role, BeforeValidator(choice(Role))]
KeyResidentField = Annotated[KeyResident, BeforeValidator(choice(k.value for k in KeyResident))]
Order = Annotated[int, BeforeValidator(order)]
YesNo = Annotated[bool, BeforeValidator(yes_no)]
