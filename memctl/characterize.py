"""Characterization to HDF5 and a plot: what the predictor pipeline trains from.

Two modes, one file format (its `mode` attribute says which):
- "trains" (paper 004's protocol, `Sweep`): each curve is one device under n
  identical pulse periods (set pulse, anti-pulse, pause, read pulse, pause)
  for one combination of the swept parameters;
- "pulses" (`PulseSweep`): each curve is one device under a sequence of single
  pulses like those programming applies (amplitude, width and polarity drawn
  across the allowed ranges), each followed by a read, wandering over the
  whole conductance range; row N = 0 is the read before the first pulse.
The file keeps every pulse's parameters and read current.
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
from memctl.records import dataset, write_provenance

FORMAT = "memctl-characterize"
FORMAT_VERSION = 1
MODES = ("trains", "pulses")
UNITS = {
    "t_set": "s",
    "V_set": "V",
    "t_off": "s",
    "t_r": "s",
    "V_anti": "V",
    "t_anti": "s",
    "V_r": "V",
    "I_r": "A",
    "t": "s",
}
PLOT_COLUMN = {"v_set": "V_set", "v_anti": "V_anti", "v_read": "V_r", "t_read": "t_r"}  # sweep name -> column
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
class PulseSweep:
    """Single pulses like programming's, on each device in turn: each toward a
    goal drawn across `g_range` (the family's window, when known) and the
    range seen on the device so far, or, one pulse in four (TO_END), toward
    either end: the device wanders over the whole window a programming run
    targets, both ends included, instead of sitting where a random walk
    leaves it. Amplitude uniform in the polarity's range, width log-uniform
    in its range. Seeded. (Runs of pulses toward one goal covered the window
    too, but hardened devices such as hfo2_tio2_bilayer's and taught the model
    responses programming never meets: 1.2-1.9x the board time of a model
    fitted on single pulses.)"""

    devices: list[tuple[int, int]] = field(default_factory=lambda: [(0, 0)])
    pulses: int = 300  # per device
    v_set: tuple[float, float] = (0.6, 2.0)  # V, > 0
    v_reset: tuple[float, float] = (-0.6, -2.0)  # V, < 0
    width: tuple[float, float] = (1e-5, 1e-3)  # s
    v_read: float = 0.2
    t_read: float = 0.0  # integration time of each read (0: the board's default)
    seed: int = 0
    g_range: tuple[float, float] | None = None  # the family's conductance window, S

    TO_END = 0.25  # share of pulses toward an end of the window

    def validate(self, rows: int, cols: int) -> None:
        if not 1 <= self.pulses <= 100_000:
            raise ValueError("pulses must be 1..100000 per device")
        Sweep(devices=self.devices).validate(rows, cols)
        vals = np.array([*self.v_set, *self.v_reset, *self.width, self.v_read, self.t_read], float)
        if not np.all(np.isfinite(vals)):
            raise ValueError("pulse ranges need finite values")
        if self.g_range is not None and not (
            np.all(np.isfinite(self.g_range)) and 0 < self.g_range[0] < self.g_range[1]
        ):
            raise ValueError(f"g_range must be 0 < lo < hi siemens, got {self.g_range}")
        if not (0 < min(self.v_set) and max(self.v_reset) < 0 and 0 < min(self.width)):
            raise ValueError(
                f"need set amplitudes > 0 V, reset amplitudes < 0 V and widths > 0 s, got "
                f"{self.v_set}, {self.v_reset}, {self.width}"
            )


@dataclass(frozen=True)
class Coverage:
    """The read currents a characterization covered against its family's window
    (g_min..g_max at its read voltage), A: outside what it covered a model
    extrapolates."""

    lo: float
    hi: float
    family_lo: float
    family_hi: float

    @property
    def share(self) -> float:
        """Share of the family's window covered."""
        span = self.family_hi - self.family_lo
        return max(0.0, min(self.hi, self.family_hi) - max(self.lo, self.family_lo)) / span

    def gaps(self) -> list[str]:
        """The family's currents left uncovered, each as text with its values (empty: all covered)."""
        slack = 0.05 * (self.family_hi - self.family_lo)
        out = []
        if self.lo > self.family_lo + slack:
            out.append(f"{self.family_lo * 1e6:.3g}..{self.lo * 1e6:.3g} uA")
        if self.hi < self.family_hi - slack:
            out.append(f"{self.hi * 1e6:.3g}..{self.family_hi * 1e6:.3g} uA")
        return out

    def __str__(self) -> str:
        return (
            f"read currents {self.lo * 1e6:.3g}..{self.hi * 1e6:.3g} uA covered, "
            f"{self.share:.0%} of the family's {self.family_lo * 1e6:.3g}..{self.family_hi * 1e6:.3g} uA"
        )


def coverage(i_lo: float, i_hi: float, device: str) -> Coverage:
    """Coverage of read currents i_lo..i_hi (A) against a device family's window at its read voltage."""
    from memctl.devices import load_device

    d = load_device(device)
    return Coverage(i_lo, i_hi, d.g_min * d.v_read, d.g_max * d.v_read)


@dataclass
class Characterization:
    sweep: Sweep | PulseSweep
    params: list[dict[str, float]]  # one per curve, with row and col
    currents: np.ndarray  # curves x periods, A
    board: dict
    wall_time: float
    # "pulses" mode: each period's own pulse (curves x periods; V = t = 0: no pulse, the first read)
    v_set: np.ndarray | None = None
    t_set: np.ndarray | None = None

    @property
    def mode(self) -> str:
        return "trains" if self.v_set is None else "pulses"


def characterize(board: Board, sweep: Sweep | PulseSweep, *, progress: bool | None = None) -> Characterization:
    if isinstance(sweep, PulseSweep):
        return _characterize_pulses(board, sweep, progress)
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


def _characterize_pulses(board: Board, sweep: PulseSweep, progress: bool | None) -> Characterization:
    rows, cols = board.shape
    sweep.validate(rows, cols)
    rng = np.random.default_rng(sweep.seed)
    n = sweep.pulses + 1
    shape = (len(sweep.devices), n)
    currents, volts, widths = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    params = []
    start = time.monotonic()
    board.configure(v_read=sweep.v_read)
    with progress_bar("characterize", shape[0] * sweep.pulses, board.show_progress(progress)) as advance:
        for k, (r, c) in enumerate(sweep.devices):
            g = board.read(r, c)
            currents[k, 0] = g * sweep.v_read
            seen = [g, g] if sweep.g_range is None else [min(g, sweep.g_range[0]), max(g, sweep.g_range[1])]
            for i in range(1, n):
                if rng.random() < PulseSweep.TO_END:
                    pol = 1 if rng.random() < 0.5 else -1
                elif seen[1] > seen[0]:
                    pol = 1 if rng.uniform(*seen) > g else -1
                else:
                    pol = 1 if rng.random() < 0.5 else -1
                lo, hi = sweep.v_set if pol > 0 else sweep.v_reset
                v = lo + (hi - lo) * rng.random()
                w = float(np.exp(rng.uniform(*np.log(sweep.width))))
                volts[k, i] = board.pulse(r, c, v, w)
                widths[k, i] = w
                g = board.read(r, c)
                currents[k, i] = g * sweep.v_read
                seen = [min(seen[0], g), max(seen[1], g)]
                advance(1)
            params.append({"row": r, "col": c, "v_read": sweep.v_read, "t_read": sweep.t_read})
    info = asdict(board.info())
    return Characterization(sweep, params, currents, info, time.monotonic() - start, volts, widths)


def write_hdf5(path: str | Path, ch: Characterization, *, device: str | None = None) -> None:
    """/pulses: one row per pulse period (curve, N, the six paper-004 features,
    t_anti, V_r, the read current and t, the board time of the read since the
    curve began, from the firmware's pulse schedule); /curves: the same as
    curves x periods. Units are attributes (`<column>.unit`)."""
    n_curves, periods = ch.currents.shape
    names = ["curve", "N", "t_set", "V_set", "t_off", "t_r", "V_anti", "t_anti", "V_r", "I_r", "row", "col", "t"]
    table = np.zeros(
        n_curves * periods, dtype=[(k, "i4" if k in ("curve", "N", "row", "col") else "f8") for k in names]
    )
    first = 1 if ch.mode == "trains" else 0  # a pulses curve opens with the read before any pulse
    for i, p in enumerate(ch.params):
        s = slice(i * periods, (i + 1) * periods)
        table["curve"][s], table["N"][s] = i, np.arange(first, periods + first)
        if ch.v_set is None:
            table["t_set"][s], table["V_set"][s], table["t_off"][s] = p["t_set"], p["v_set"], p["t_off"]
            table["V_anti"][s], table["t_anti"][s] = p["v_anti"], p["t_anti"]
        else:
            table["t_set"][s], table["V_set"][s] = ch.t_set[i], ch.v_set[i]
        table["t_r"][s], table["V_r"][s] = p["t_read"], p["v_read"]
        table["row"][s], table["col"][s] = p["row"], p["col"]
        table["I_r"][s] = ch.currents[i]
        if ch.v_set is None:  # the firmware's period: set, anti, pause, read, pause
            period = p["t_set"] + p["t_anti"] + 2 * p["t_off"] + p["t_read"]
            table["t"][s] = np.arange(periods) * period + period - p["t_off"]
        else:  # pulses only: board time spent pulsing before each read
            table["t"][s] = np.cumsum(ch.t_set[i])
    with h5py.File(path, "w") as f:
        write_provenance(f, kind="characterize", board=ch.board, device=device)
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["mode"] = ch.mode
        f.attrs["wall_time_s"] = ch.wall_time
        d = f.create_dataset("pulses", data=table, compression="gzip")
        for k in names:
            if k in UNITS:
                d.attrs[f"{k}.unit"] = UNITS[k]
        g = f.create_group("curves")
        dataset(g, "read_current", ch.currents, "A", "read current after each pulse period, curves x periods")
        for k in ("row", "col", *SWEPT):
            if k in ch.params[0]:
                g.create_dataset(k, data=np.array([p[k] for p in ch.params]))


def read_hdf5(path: str | Path) -> tuple[np.ndarray, dict]:
    """(pulses table, attributes); refuses files that are not characterizations,
    naming the file and the problem. Files without a mode are "trains"."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ValueError(f"{path} is not a memctl characterization file (format {f.attrs.get('format')!r})")
            version = int(f.attrs.get("format_version", 0))
            if not 1 <= version <= FORMAT_VERSION:
                raise ValueError(f"{path} has format version {version}; this memctl reads 1..{FORMAT_VERSION}")
            attrs = dict(f.attrs)
            attrs.setdefault("mode", "trains")
            if attrs["mode"] not in MODES:
                raise ValueError(f"{path} has mode {attrs['mode']!r}; expected one of {', '.join(MODES)}")
            if "pulses" not in f:
                raise ValueError(f"{path} has no /pulses table")
            table = f["pulses"][()]
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 file: {e}") from e
    if len(table) == 0:
        raise ValueError(f"{path} holds no pulses")
    for k in ("t_set", "V_set", "I_r"):
        if k not in table.dtype.names:
            raise ValueError(f"{path}: the pulses table has no {k} column")
        bad = ~np.isfinite(table[k])
        if bad.any():
            raise ValueError(
                f"{path}: {int(bad.sum())} rows with a non-finite {k} (first at row {int(np.argmax(bad))})"
            )
    return table, attrs


def plot(path: str | Path, ch: Characterization) -> None:
    """Read current against period, one line per curve, colored by the swept value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if ch.mode == "pulses":
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        for p, cur in zip(ch.params, ch.currents, strict=True):
            ax.plot(cur * 1e6, lw=0.8, label=f"({p['row']},{p['col']})")
        ax.set_xlabel("pulse")
        ax.set_ylabel("read current I_r (µA)")
        ax.set_title("single pulses of random amplitude, width and polarity")
        ax.legend(fontsize=7, ncol=2 if len(ch.params) <= 16 else 4, title="device (row,col)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return
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
    # Many curves: a colour bar for the swept value instead of an unreadable legend.
    if len(ch.params) <= 8:
        ax.legend(fontsize=7, ncol=2)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(vals.min(), vals.min() + span))
    fig.colorbar(sm, ax=ax, label=f"{key} ({UNITS.get(PLOT_COLUMN.get(key, key), '')})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
