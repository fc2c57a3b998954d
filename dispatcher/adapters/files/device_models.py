"""``devices.csv`` (optional, in the data folder): each device's model, for the
heartbeat interval of its model (``[devices.models.<model>]``).

Columns: ``device_id,model``. Read once, when an empty registry is seeded from the data
folder: from then on a device's model is a field of its record in the registry.
"""

from __future__ import annotations

import re
from pathlib import Path

from dispatcher.adapters.files.directory_files import DataFileError, read_rows

DEVICES = "devices.csv"
_DEVICE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class DeviceModels:
    """The model of each device, from a mapping (the file's, or a test's)."""

    def __init__(self, models: dict[str, str] | None = None) -> None:
        self._models = dict(models or {})

    def model_of(self, device_id: str) -> str | None:
        return self._models.get(device_id)

    def as_dict(self) -> dict[str, str]:
        return dict(self._models)

    def __len__(self) -> int:
        return len(self._models)


def load_device_models(folder: Path) -> DeviceModels:
    """The data folder's devices.csv; none at all is no model for any device."""
    path = folder / DEVICES
    if not path.exists():
        return DeviceModels()
    problems: list[str] = []
    models: dict[str, str] = {}
    for row in read_rows(path, ("device_id", "model")):
        device, model = row.values["device_id"], row.values["model"]
        if not _DEVICE_RE.fullmatch(device):
            problems.append(f"{row.where}: device_id {device!r} is not a device id")
        elif not _MODEL_RE.fullmatch(model):
            problems.append(f"{row.where}: model {model!r} is not a model name")
        elif device in models:
            problems.append(f"{row.where}: device {device!r} is listed twice")
        else:
            models[device] = model
    if problems:
        raise DataFileError(problems)
    return DeviceModels(models)
