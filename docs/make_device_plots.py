"""Regenerate the plots in docs/devices.md with memctl's own commands:
an emulated board per preset, then `memctl characterize` on it.

    python docs/make_device_plots.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from memctl.cli import main
from memctl_emulator import EmulatedBoard

IMG = Path(__file__).with_name("img")

# (preset, array rows/cols, output name, characterize arguments)
RUNS = [
    (
        "hfo2_tio2_bilayer",
        2,
        "hfo2_t_set",
        [
            "--t-set",
            "0.1",
            "0.4",
            "0.7",
            "1.0",
            "1.3",
            "--limits",
            "2.5",
            "2",
            "0.6",
            "--reset",
            "-2",
            "0.5",
            "20",
        ],
    ),
    (
        "hfo2_tio2_bilayer",
        2,
        "hfo2_v_anti",
        [
            "--v-anti",
            "-0.1",
            "-0.4",
            "-0.8",
            "-1.2",
            "--t-anti",
            "0.1",
            "--t-off",
            "0.1",
            "--limits",
            "2.5",
            "2",
            "0.6",
            "--reset",
            "-2",
            "0.5",
            "20",
        ],
    ),
    (
        "tio2_4terminal",
        1,
        "tio2_identical_pulses",
        [
            "--v-set",
            "1",
            "2",
            "3",
            "4",
            "--t-set",
            "2",
            "--v-read",
            "0.1",
            "--limits",
            "7",
            "2",
            "0.3",
            "--reset",
            "-6",
            "0.8",
            "10",
        ],
    ),
    (
        "perovskite_lognormal",
        2,
        "perovskite_trains",
        [
            "--v-set",
            "2.9",
            "3.0",
            "--t-set",
            "1e-3",
            "--v-read",
            "0.1",
            "--limits",
            "4",
            "1e-3",
            "0.3",
            "--reset",
            "-3",
            "1e-3",
            "20",
            "--devices",
            "0,0",
            "1,1",
        ],
    ),
]


def run() -> None:
    IMG.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for preset, n, name, args in RUNS:
            with EmulatedBoard(rows=n, cols=n, seed=1, device=preset) as emu:
                h5 = str(Path(tmp) / f"{name}.h5")
                rc = main(
                    [
                        "characterize",
                        "--port",
                        emu.port,
                        "--no-progress",
                        "--out",
                        h5,
                        "--plot",
                        str(IMG / f"{name}.png"),
                        *args,
                    ]
                )
                if rc:
                    raise SystemExit(f"characterize failed for {name}")


if __name__ == "__main__":
    run()
