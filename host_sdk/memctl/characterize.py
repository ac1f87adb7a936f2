"""Pulse-train characterization (paper 004's protocol) to HDF5 and a plot.

Each curve is one device under n identical pulse periods (set pulse,
anti-pulse, pause, read pulse, pause) for one combination of the swept
parameters. The file keeps every pulse's parameters and read current, which
is what the predictor pipeline trains from.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from memctl.board import Board
from memctl.progress import progress_bar

FORMAT = "memctl-characterize"
FORMAT_VERSION = 1
SWEPT = ("v_set", "t_set", "v_anti", "t_anti", "t_off", "v_read", "t_read")


@dataclass
class Sweep:
    """Values to sweep (Cartesian product) and the fixed protocol around them.
    Defaults are paper 004 Table I, set 1."""

    devices: list[tuple[int, int]] = field(default_factory=lambda: [(0, 0)])
    periods: int = 100
    v_set: list[float] = field(default_factory=lambda: [2.0])
    t_set: list[float] = field(default_factory=lambda: [0.1])
    v_anti: list[float] = field(default_factory=lambda: [0.0])
    t_anti: list[float] = field(default_factory=lambda: [0.0])
    t_off: list[float] = field(default_factory=lambda: [0.0])
    v_read: list[float] = field(default_factory=lambda: [0.5])
    t_read: list[float] = field(default_factory=lambda: [0.5e-3])
    # Bring the device back before each curve: (volts, width, count); None = no reset.
    reset: tuple[float, float, int] | None = None

    def combos(self) -> list[dict[str, float]]:
        return [dict(zip(SWEPT, vals, strict=True)) for vals in itertools.product(*(getattr(self, k) for k in SWEPT))]

    def validate(self, rows: int, cols: int) -> None:
        if not 1 <= self.periods <= 100_000:
            raise ValueError("periods must be 1..100000")
        if not self.devices:
            raise ValueError("give at least one device")
        for r, c in self.devices:
            if not (0 <= r < rows and 0 <= c < cols):
                raise ValueError(f"device ({r}, {c}) outside the {rows}x{cols} array")
        for k in SWEPT:
            vals = np.asarray(getattr(self, k), float)
            if vals.size == 0 or not np.all(np.isfinite(vals)):
                raise ValueError(f"{k} needs finite values")


@dataclass
class Characterization:
    sweep: Sweep
    params: list[dict[str, float]]  # one per curve, with row and col
    currents: np.ndarray  # curves x periods, A
    board: dict
    wall_time: float


def characterize(board: Board, sweep: Sweep, *, progress: bool | None = None) -> Characterization:
    rows, cols = board.shape
    sweep.validate(rows, cols)
    combos = sweep.combos()
    params, curves = [], []
    start = time.monotonic()
    total = len(combos) * len(sweep.devices)
    with progress_bar("characterize", total, board.show_progress(progress)) as advance:
        for combo in combos:
            for r, c in sweep.devices:
                if sweep.reset is not None:
                    v, w, n = sweep.reset
                    for _ in range(int(n)):
                        board.pulse(r, c, v, w)
                curves.append(board.pulse_train(r, c, sweep.periods, **combo))
                params.append({"row": r, "col": c, **combo})
                advance(1)
    return Characterization(sweep, params, np.array(curves), asdict(board.info()), time.monotonic() - start)


def write_hdf5(path: str | Path, ch: Characterization) -> None:
    """/pulses: one row per pulse period (curve, N, the six paper-004 features,
    t_anti, V_r and the read current); /curves: the same as curves x periods."""
    n_curves, periods = ch.currents.shape
    names = ["curve", "N", "t_set", "V_set", "t_off", "t_r", "V_anti", "t_anti", "V_r", "I_r", "row", "col"]
    table = np.zeros(
        n_curves * periods, dtype=[(k, "i4" if k in ("curve", "N", "row", "col") else "f8") for k in names]
    )
    for i, p in enumerate(ch.params):
        s = slice(i * periods, (i + 1) * periods)
        table["curve"][s], table["N"][s] = i, np.arange(1, periods + 1)
        table["t_set"][s], table["V_set"][s], table["t_off"][s] = p["t_set"], p["v_set"], p["t_off"]
        table["t_r"][s], table["V_anti"][s], table["t_anti"][s] = p["t_read"], p["v_anti"], p["t_anti"]
        table["V_r"][s], table["row"][s], table["col"][s] = p["v_read"], p["row"], p["col"]
        table["I_r"][s] = ch.currents[i]
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        f.attrs["wall_time_s"] = ch.wall_time
        for k, v in ch.board.items():
            f.attrs[f"board.{k}"] = str(v) if isinstance(v, dict) else v
        f.create_dataset("pulses", data=table, compression="gzip")
        g = f.create_group("curves")
        g.create_dataset("read_current", data=ch.currents)
        for k in ("row", "col", *SWEPT):
            g.create_dataset(k, data=np.array([p[k] for p in ch.params]))


def read_hdf5(path: str | Path) -> tuple[np.ndarray, dict]:
    """(pulses table, attributes); refuses files that are not characterizations."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ValueError(f"{path} is not a memctl characterization file")
            if int(f.attrs.get("format_version", 0)) > FORMAT_VERSION:
                raise ValueError(f"{path} has a newer format version than this memctl reads")
            return f["pulses"][()], dict(f.attrs)
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 file: {e}") from e


def plot(path: str | Path, ch: Characterization) -> None:
    """Read current against period, one line per curve, colored by the swept value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    varied = [k for k in SWEPT if len(getattr(ch.sweep, k)) > 1] or ["t_set"]
    key = varied[0]
    vals = np.array([p[key] for p in ch.params])
    span = (vals.max() - vals.min()) or 1.0
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    cmap = plt.get_cmap("viridis")
    n = np.arange(1, ch.currents.shape[1] + 1)
    for p, cur, v in zip(ch.params, ch.currents, vals, strict=True):
        ax.plot(n, cur * 1e6, color=cmap((v - vals.min()) / span), lw=1.2, label=f"{key}={v:g} ({p['row']},{p['col']})")
    ax.set_xlabel("pulse period N")
    ax.set_ylabel("read current I_r (µA)")
    ax.set_title(f"pulse trains, varying {key}")
    if len(ch.params) <= 16:
        ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
