"""A data folder for the fleet's tests: the example data, with five more residents in
one building (柳湖路88弄3号, with r-0001), a maintenance technician on the rota and
two device models."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.app import DATA

BUILDING = "江滨区柳湖路88弄3号"
# r-0001 (dev-0001) lives in it already; these five too.
NEIGHBOURS = [f"dev-09{n:02d}" for n in range(1, 6)]
TECHNICIAN_PHONE = "+8613700000901"


def fleet_data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(DATA, folder)
    with (folder / "residents.csv").open("a", encoding="utf-8") as f:
        for n, device in enumerate(NEIGHBOURS, start=1):
            f.write(
                f"r-09{n:02d},邻居{n},1940-01-0{n},{BUILDING}{n}01室,c-lh,{device},,,,,"
                f"3号,,{n}01,,,,,,,,\n"
            )
    with (folder / "staff.csv").open("a", encoding="utf-8") as f:
        f.write(f"tech-wu,吴师傅,{TECHNICIAN_PHONE},d-jb,staff,zh,\n")
    with (folder / "rota.toml").open("a", encoding="utf-8") as f:
        f.write(
            '\n[[schedule]]\narea = "maintenance"\n\n[[schedule.rule]]\n'
            'days = "mon-fri"\nstart = "08:00"\nend = "18:00"\nstaff = "tech-wu"\n'
        )
    (folder / "devices.csv").write_text(
        "# device_id,model\ndevice_id,model\ndev-0001,ys-200\ndev-0002,old-100\n",
        encoding="utf-8",
    )
    return folder
