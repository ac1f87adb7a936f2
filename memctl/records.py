"""What every memctl HDF5 file records besides its data: units, the board, the
command line, the memctl version and the device file, so a file found on a
disk a year later still says what it holds and how it was made.

Every measurement file (characterize, iv, retention, endurance, form, read)
writes through `write_provenance` and `dataset`; `read_provenance` gives the
attributes back as a plain dict.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from enum import Enum
from pathlib import Path

import numpy as np

# The command line files record: the CLI sets it (`memctl ...` as typed, also when main() is called with
# an argument list); other programs record sys.argv.
cli_command: list[str] | None = None

# Units of BoardInfo's fields; a field not listed has none (counts, names).
BOARD_UNITS = {
    "v_read": "V",
    "dac_full_scale": "V",
    "dac_lsb": "V",
    "i_lsb": "A",
    "i_full_scale": "A",
    "heap_size": "B",
    "heap_free": "B",
    "heap_peak": "B",
    "max_payload": "B",
    "limits.v_pulse": "V",
    "limits.width": "s",
    "limits.v_read": "V",
    "limits.v_disturb": "V",
}


def flatten(record: object, prefix: str = "") -> dict[str, object]:
    """A dataclass (or dict) as flat name -> plain value pairs: nested records by dotted
    names, enums by the names the docs use, so HDF5 attributes and JSON hold no Python reprs."""
    items = dataclasses.asdict(record) if dataclasses.is_dataclass(record) else dict(record)
    out: dict[str, object] = {}
    for k, v in items.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        elif isinstance(v, Enum):
            out[name] = str(v)  # memctl's enums print as the docs name them: V/2, grounded, 1T1R
        else:
            out[name] = v
    return out


def write_provenance(
    f, *, kind: str, board: object | None = None, device: str | None = None, command: list[str] | None = None
) -> None:
    """File-level attributes: what the file is, when and by what it was made, on which board."""
    import memctl

    f.attrs["format"] = f"memctl-{kind}"
    f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    f.attrs["memctl_version"] = memctl.__version__
    import shlex

    f.attrs["command_line"] = shlex.join(command or cli_command or sys.argv)
    if device:
        f.attrs["device"] = device
        p = Path(device)
        if p.is_file():  # a device file: keep its text, the preset names are in memctl
            f.attrs["device_file"] = p.read_text()
    if board is not None:
        for k, v in flatten(board).items():
            f.attrs[f"board.{k}"] = v
            if k in BOARD_UNITS:
                f.attrs[f"board.{k}.unit"] = BOARD_UNITS[k]


def dataset(group, name: str, data: np.ndarray, unit: str, description: str = ""):
    """A dataset with its unit (and what it is) as attributes."""
    d = group.create_dataset(name, data=data)
    d.attrs["unit"] = unit
    if description:
        d.attrs["description"] = description
    return d


def read_provenance(path: str | Path, kind: str) -> dict:
    """The file's attributes, refusing a file that is not a memctl `kind` file with its path and what it is."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 file: {e}") from e
    if attrs.get("format") != f"memctl-{kind}":
        raise ValueError(f"{path} is not a memctl {kind} file (format {attrs.get('format')!r})")
    return attrs
