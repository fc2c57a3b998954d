"""A small synchronous client of the operator REST API, for the ``eldercall`` CLI.

Every failure becomes an ``ApiError`` whose message is one line a person can act on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from dispatcher.core.calls import Outcome
from dispatcher.core.fleet import FleetReport
from dispatcher.core.reports import AnswerTimes
from dispatcher.services.read_models import CallView, OnDutyView, OverrideView

API_PREFIX = "/api/v1"

T = TypeVar("T")


class ApiError(Exception):
    """The API could not be reached, refused the request, or answered an error."""

    def __init__(self, message: str, status: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.data = data  # the answer's JSON, if any (an import's 422 lists its errors)


class OnCall(BaseModel):
    at: datetime
    on_duty: list[OnDutyView]


_CALL = TypeAdapter(CallView)
_CALLS = TypeAdapter(list[CallView])
_ONCALL = TypeAdapter(OnCall)
_ANSWER_TIMES = TypeAdapter(AnswerTimes)
_OVERRIDE = TypeAdapter(OverrideView)
_OVERRIDES = TypeAdapter(list[OverrideView])
_FLEET = TypeAdapter(FleetReport)


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        channel: str = "cli",
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            headers={"Authorization": f"Bearer {token}", "X-Eldercall-Channel": channel},
            timeout=timeout,
            transport=transport,
            # An operator's machine may have an HTTP(S)_PROXY meant for the internet;
            # the dispatcher is local.
            trust_env=False,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ operations

    def health(self) -> bool:
        return self._request("GET", "/health").get("status") == "ok"

    def list_calls(self, state: str = "active") -> list[CallView]:
        data = self._request("GET", "/calls", params={"state": state})
        return self._parse(_CALLS, data.get("calls"))

    def get_call(self, call_id: str) -> CallView:
        return self._parse(_CALL, self._request("GET", f"/calls/{_segment(call_id)}"))

    def acknowledge(self, call_id: str, note: str = "") -> CallView:
        data = self._request("POST", f"/calls/{_segment(call_id)}/ack", json={"note": note})
        return self._parse(_CALL, data)

    def resolve(self, call_id: str, outcome: Outcome | str, note: str = "") -> CallView:
        body = {"outcome": str(outcome), "note": note}
        data = self._request("POST", f"/calls/{_segment(call_id)}/resolve", json=body)
        return self._parse(_CALL, data)

    def on_duty(self, community: str | None = None, at: datetime | None = None) -> OnCall:
        params: dict[str, str] = {}
        if community:
            params["community"] = community
        if at is not None:
            params["at"] = at.isoformat()
        return self._parse(_ONCALL, self._request("GET", "/oncall", params=params))

    def answer_times(self, since: datetime, until: datetime | None = None) -> AnswerTimes:
        """A naive ``since`` or ``until`` is in the daemon's data time zone."""
        params = {"since": since.isoformat()}
        if until is not None:
            params["until"] = until.isoformat()
        data = self._request("GET", "/reports/answer-times", params=params)
        return self._parse(_ANSWER_TIMES, data)

    def fleet_report(self) -> FleetReport:
        return self._parse(_FLEET, self._request("GET", "/fleet/report"))

    def test_mode(self, device_id: str, minutes: int | None, *, end: bool = False) -> Any:
        """Start (or ``end``) the device's test mode; the answer's ``until``."""
        path = f"/fleet/devices/{_segment(device_id)}/test-mode"
        if end:
            return self._request("DELETE", path).get("until")
        body = {"minutes": minutes} if minutes else {}
        return self._request("POST", path, json=body).get("until")

    def my_calendars(self) -> dict[str, Any]:
        """The caller's calendar feed URLs: ``shifts`` and ``schedules`` (area_id, name, url)."""
        return self._request("GET", "/me/calendars")

    def list_overrides(self, include_past: bool = False) -> list[OverrideView]:
        params = {"include_past": "true"} if include_past else {}
        data = self._request("GET", "/rota/overrides", params=params)
        return self._parse(_OVERRIDES, data.get("overrides"))

    def create_override(self, body: dict[str, Any]) -> OverrideView:
        return self._parse(_OVERRIDE, self._request("POST", "/rota/overrides", json=body))

    def delete_override(self, override_id: str) -> OverrideView:
        path = f"/rota/overrides/{_segment(override_id)}"
        return self._parse(_OVERRIDE, self._request("DELETE", path))

    def registry(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A request to the registry's routes (``eldercall residents|devices|staff``):
        its JSON answer; ``path`` is under ``/api/v1`` with its ids quoted already."""
        return self._request(method, path, **kwargs)

    # ------------------------------------------------------------ plumbing

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ApiError(
                f"cannot reach the Eldercall API at {self.base_url} (is the daemon running?)"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ApiError(f"the Eldercall API at {self.base_url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise ApiError(
                f"talking to the Eldercall API at {self.base_url} failed: {exc}"
            ) from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code == 401:
            raise ApiError("the API token was refused", 401)
        if response.status_code == 403:
            error = data.get("error") if isinstance(data, dict) else None
            raise ApiError(str(error or "not allowed for this API token"), 403)
        if response.is_error:
            error = data.get("error") if isinstance(data, dict) else None
            if response.status_code in (404, 409, 422) and error:
                raise ApiError(str(error), response.status_code, data)
            text = str(error) if error else (response.text.strip()[:200] or response.reason_phrase)
            raise ApiError(
                f"the Eldercall API answered {response.status_code}: {text}", response.status_code
            )
        if not isinstance(data, dict):
            raise ApiError(
                f"{self.base_url} answered something that is not the Eldercall API "
                f"(HTTP {response.status_code}, not a JSON object)"
            )
        return data

    def _parse(self, adapter: TypeAdapter[T], data: Any) -> T:
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            raise ApiError(
                f"unexpected answer from the Eldercall API at {self.base_url}: "
                f"{exc.error_count()} field(s) do not match"
            ) from exc


def _segment(call_id: str) -> str:
    """A call id as one URL path segment (a slash or '?' must not change the route)."""
    return quote(call_id, safe="")
