"""Instrument routines (what ArC ONE/TWO users reach for first), each a
dataclass result that writes HDF5 (memctl.records: units, board, command
line), reads it back and plots a PNG:

- `iv_sweep`: a pulsed I-V curve tracer, 0 -> +V_max -> 0 -> -V_min -> 0;
- `retention`: reads at log-spaced board times, waiting in pulse-train pauses;
- `endurance`: set/reset cycles and the on/off window per cycle;
- `form_array`: automated forming (paper 003) with each device's forming voltage;
- `read_map`: the whole array's conductance as a map.

Every routine checks its devices, numbers and the board's safety limits before
the first pulse and raises ValueError with the values and what to change.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from memctl.board import Board, Limits
from memctl.progress import progress_bar
from memctl.records import dataset, flatten, read_provenance, write_provenance

FORMAT_VERSION = 1
MAX_PAUSE = 60.0  # s: the firmware's cap on a pulse train's pause and read time (controller.MAX_PAUSE)
# Retention waits in pulse trains, whose set pulse the firmware requires (0 < width <= limit). 0 V is
# within every limit and biases no line, so the least intrusive legal pulse is 0 V for 1 us.
NULL_PULSE_WIDTH = 1e-6
FORM_STATUS = {0: "formed", 1: "conducting already", 2: "unformable", -1: "not tried"}
RAISE_LIMITS = "raise the board's limits (memctl set-limits V_PULSE WIDTH V_READ, or --device FAMILY for its limits)"


# -- records: dataclass fields <-> HDF5 ---------------------------------------


def _data(unit: str, description: str) -> Any:
    """A field written as a dataset (with its unit and description)."""
    return field(metadata={"unit": unit, "description": description})


def _param(unit: str = "") -> Any:
    """A scalar field written as a file attribute (with `<name>.unit`)."""
    return field(metadata={"param": True, "unit": unit})


def _plain(v: object) -> object:
    return v.item() if isinstance(v, np.generic) else v


@dataclass(kw_only=True)
class _Record:
    """Write/read/plot plumbing shared by the results: subclasses declare data
    fields (`_data`) and parameters (`_param`); board and wall time come last."""

    KIND: ClassVar[str] = ""
    board: dict = field(default_factory=dict)  # the board's info, flat (memctl.records.flatten)
    wall_time: float = 0.0  # host seconds the measurement took
    attrs: dict = field(default_factory=dict, compare=False, repr=False)  # the file's attributes, once written/read

    DERIVED: ClassVar[dict[str, tuple[str, str]]] = {}  # name -> (unit, description) of computed datasets

    @classmethod
    def units(cls) -> dict[str, str]:
        """Dataset name -> unit, as written (derived datasets included)."""
        out = {f.name: f.metadata["unit"] for f in fields(cls) if "description" in f.metadata}
        return out | {k: u for k, (u, _) in cls.DERIVED.items()}

    def write_hdf5(self, path: str | Path, *, device: str | None = None, command: list[str] | None = None) -> None:
        """Datasets with units, parameters and provenance as attributes; `command` (default sys.argv) is the
        command line recorded."""
        import h5py

        with h5py.File(path, "w") as f:
            write_provenance(f, kind=self.KIND, board=self.board, device=device, command=command)
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["wall_time"], f.attrs["wall_time.unit"] = self.wall_time, "s"
            for fl in fields(self):
                m, v = fl.metadata, getattr(self, fl.name)
                if "description" in m:
                    dataset(f, fl.name, np.asarray(v), m["unit"], m["description"])
                elif "param" in m:
                    f.attrs[fl.name] = v
                    if m["unit"]:
                        f.attrs[f"{fl.name}.unit"] = m["unit"]
            for name, (unit, description) in self.DERIVED.items():
                dataset(f, name, getattr(self, name), unit, description)
        self.attrs = read_provenance(path, self.KIND)

    @classmethod
    def read_hdf5(cls, path: str | Path):
        """The result a file holds, refusing (with the path and the problem) other files, versions or units."""
        import h5py

        attrs = read_provenance(path, cls.KIND)
        version = int(attrs.get("format_version", 0))
        if version != FORMAT_VERSION:
            raise ValueError(f"{path} has format version {version}; this memctl reads {FORMAT_VERSION}")
        kw: dict[str, object] = {}
        with h5py.File(path, "r") as f:
            for fl in fields(cls):
                m = fl.metadata
                if "description" in m:
                    if fl.name not in f:
                        raise ValueError(f"{path} has no /{fl.name} dataset")
                    unit = f[fl.name].attrs.get("unit")
                    if unit != m["unit"]:
                        raise ValueError(f"{path}: /{fl.name} is in {unit!r}, expected {m['unit']!r}")
                    kw[fl.name] = f[fl.name][()]
                elif "param" in m:
                    if fl.name not in attrs:
                        raise ValueError(f"{path} has no {fl.name} attribute")
                    kw[fl.name] = _plain(attrs[fl.name])
        board = {k[6:]: _plain(v) for k, v in attrs.items() if k.startswith("board.") and not k.endswith(".unit")}
        return cls(**kw, board=board, wall_time=float(attrs["wall_time"]), attrs=attrs)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid_axes(ax, rows: int, cols: int) -> None:
    """An array map's axes: whole rows and columns, row 0 at the top."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("column")
    ax.set_ylabel("row")


def _save(fig, path: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")  # "tight": legends placed outside the axes stay in
    _pyplot().close(fig)


# -- checks before anything is pulsed -----------------------------------------


def _finite(what: str, *values: float) -> None:
    if not all(isinstance(v, int | float | np.number) and math.isfinite(v) for v in values):
        raise ValueError(f"{what} must be finite numbers, got {', '.join(repr(v) for v in values)}")


def _devices(board: Board, devices: Sequence[tuple[int, int]]) -> np.ndarray:
    rows, cols = board.shape
    out = np.array([(int(r), int(c)) for r, c in devices], dtype=np.int64).reshape(-1, 2)
    if len(out) == 0:
        raise ValueError("give at least one device (ROW,COL)")
    bad = [(int(r), int(c)) for r, c in out if not (0 <= r < rows and 0 <= c < cols)]
    if bad:
        raise ValueError(f"device(s) {bad} outside the {rows}x{cols} array (rows 0..{rows - 1}, cols 0..{cols - 1})")
    return out


def _pulse_ok(lim: Limits, what: str, volts: float, width: float) -> None:
    """Refuse, with the values, a pulse the firmware would refuse part-way through a routine."""
    _finite(what, volts, width)
    if not abs(volts) <= lim.v_pulse:
        raise ValueError(
            f"{what}: {volts:g} V is beyond the board's pulse limit +-{lim.v_pulse:g} V; lower it or {RAISE_LIMITS}"
        )
    if not 0 < width <= lim.width:
        raise ValueError(
            f"{what}: width {width:g} s is outside the board's 0..{lim.width:g} s; shorten it or {RAISE_LIMITS}"
        )


def _read_ok(lim: Limits, v_read: float, t_read: float) -> None:
    _finite("read voltage and time", v_read, t_read)
    if not 0 < abs(v_read) <= lim.v_read:
        raise ValueError(f"read voltage {v_read:g} V is outside the board's read limit 0..+-{lim.v_read:g} V")
    if not 0 < t_read <= MAX_PAUSE:
        raise ValueError(f"read time {t_read:g} s must be in (0, {MAX_PAUSE:g}] s (the firmware's cap)")


# -- I-V sweep -----------------------------------------------------------------


def sweep_voltages(v_max: float, v_min: float, steps: int, cycles: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(voltage per step, branch per step) of 0 -> +v_max -> 0 -> -v_min -> 0 in `steps` equal steps per
    quarter; branches 0: rising positive, 1: falling positive, 2: falling negative, 3: rising negative."""
    q = np.arange(1, steps + 1) / steps
    back = np.r_[q[::-1][1:], 0.0]
    volts = np.r_[v_max * q, v_max * back, -v_min * q, -v_min * back]
    branch = np.repeat(np.arange(4), steps)
    return np.tile(volts, cycles), np.tile(branch, cycles)


@dataclass
class IVCurve(_Record):
    """A pulsed I-V curve of one device: each step one pulse at the step's
    voltage, then a read at V_read (the board samples no current during a
    pulse, so the current at V is estimated from the read)."""

    KIND: ClassVar[str] = "iv"
    DERIVED: ClassVar[dict[str, tuple[str, str]]] = {
        "current": (
            "A",
            "estimated current at the step voltage: conductance read at V_read after the step times the applied "
            "voltage (the board samples no current during a pulse); exact for an ohmic device, below the true "
            "current beyond V_read for a superlinear (sinh) one",
        )
    }
    voltage: np.ndarray = _data("V", "step amplitude asked for (0 V steps are reads without a pulse)")
    applied: np.ndarray = _data("V", "amplitude the board applied (DAC-quantized), 0 for 0 V steps")
    conductance: np.ndarray = _data("S", "conductance read at V_read after each step")
    branch: np.ndarray = _data("1", "0: 0 -> +V_max, 1: +V_max -> 0, 2: 0 -> -V_min, 3: -V_min -> 0")
    cycle: np.ndarray = _data("1", "sweep cycle of each step, from 0")
    row: int = _param()
    col: int = _param()
    v_max: float = _param("V")
    v_min: float = _param("V")  # magnitude of the negative peak
    steps: int = _param()  # per quarter branch
    width: float = _param("s")
    v_read: float = _param("V")
    g_initial: float = _param("S")  # read before the first pulse

    @property
    def current(self) -> np.ndarray:
        return self.conductance * self.applied

    def plot(self, path: str | Path) -> None:
        """Estimated current and conductance against the applied voltage, one colour per branch."""
        plt = _pyplot()
        fig, (ai, ag) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=110)
        names = ("0 → +V", "+V → 0", "0 → −V", "−V → 0")
        for b, name in enumerate(names):
            s = self.branch == b
            if s.any():
                ai.plot(self.applied[s], self.current[s] * 1e6, ".-", lw=0.8, label=name)
                ag.plot(self.applied[s], self.conductance[s] * 1e6, ".-", lw=0.8, label=name)
        ai.set_xlabel("applied voltage (V)")
        ai.set_ylabel("estimated current G·V (µA)")
        ag.set_xlabel("applied voltage (V)")
        ag.set_ylabel(f"conductance at V_read = {self.v_read:.3g} V (µS)")
        for ax in (ai, ag):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, title="branch")
        fig.suptitle(f"pulsed I-V of ({self.row}, {self.col}), {self.width:g} s per step")
        _save(fig, path)


def iv_sweep(
    board: Board,
    row: int,
    col: int,
    *,
    v_max: float,
    v_min: float,
    width: float,
    steps: int = 20,
    cycles: int = 1,
    progress: bool | None = None,
) -> IVCurve:
    """Trace 0 -> +v_max -> 0 -> -v_min -> 0 (v_min is the negative peak's
    magnitude) in `steps` steps per quarter, `cycles` times: one pulse of
    `width` then one read per step. The board's limits are the compliance:
    a sweep beyond them is refused before the first pulse."""
    dev = _devices(board, [(row, col)])[0]
    _finite("v_max, v_min", v_max, v_min)
    if v_max < 0 or v_min < 0 or v_max == v_min == 0:
        raise ValueError(f"v_max and v_min are peak magnitudes >= 0 V, not both 0; got {v_max:g}, {v_min:g}")
    if not (1 <= steps <= 10_000 and 1 <= cycles <= 10_000):
        raise ValueError(f"steps and cycles must be 1..10000, got {steps}, {cycles}")
    lim = board.limits()
    _pulse_ok(lim, "I-V sweep +V_max", v_max, width)
    _pulse_ok(lim, "I-V sweep -V_min", -v_min, width)
    volts, branch = sweep_voltages(v_max, v_min, steps, cycles)
    applied, g = np.zeros(len(volts)), np.zeros(len(volts))
    r, c = int(dev[0]), int(dev[1])
    start = time.monotonic()
    info = board.info()
    g0 = board.read(r, c)
    with progress_bar("I-V sweep", len(volts), board.show_progress(progress)) as advance:
        for k, v in enumerate(volts):
            if v != 0:  # a 0 V step is the read alone: nothing to apply
                applied[k] = board.pulse(r, c, float(v), width)
            g[k] = board.read(r, c)
            advance(1)
    return IVCurve(
        voltage=volts,
        applied=applied,
        conductance=g,
        branch=branch,
        cycle=np.repeat(np.arange(cycles), 4 * steps),
        row=r,
        col=c,
        v_max=float(v_max),
        v_min=float(v_min),
        steps=int(steps),
        width=float(width),
        v_read=float(info.v_read),
        g_initial=float(g0),
        board=flatten(info),
        wall_time=time.monotonic() - start,
    )


# -- retention -----------------------------------------------------------------


@dataclass
class Retention(_Record):
    """Reads of some devices at chosen board times after t = 0 (the end of
    the optional preparation pulses, else the start)."""

    KIND: ClassVar[str] = "retention"
    devices: np.ndarray = _data("1", "(row, col) of each device")
    target_time: np.ndarray = _data("s", "board time each round of reads was scheduled for, since t = 0")
    time: np.ndarray = _data(
        "s",
        "board time at the start of each read (points x devices) since t = 0, from the firmware's schedule: "
        "pauses, 1 us 0 V pulses and read integrations (auto-ranging may add an integration per read; on a real "
        "board each request's round trip adds too)",
    )
    conductance: np.ndarray = _data("S", "read current / V_read, points x devices")
    v_read: float = _param("V")
    t_read: float = _param("s")  # integration time of each read
    max_pause: float = _param("s")  # longest single pause of a wait
    prepare_v: float = _param("V")  # NaN: no preparation pulse
    prepare_width: float = _param("s")

    def plot(self, path: str | Path) -> None:
        """Conductance against board time (log), one line per device."""
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        for k, (r, c) in enumerate(self.devices):
            ax.plot(self.time[:, k], self.conductance[:, k] * 1e6, "o-", ms=3, lw=1, label=f"({r},{c})")
        ax.set_xscale("log")
        ax.set_xlabel("board time since t = 0 (s)")
        ax.set_ylabel(f"conductance at V_read = {self.v_read:.3g} V (µS)")
        ax.set_title("retention")
        ax.legend(fontsize=7, title="device (row,col)", ncol=2 if len(self.devices) > 8 else 1)
        ax.grid(alpha=0.3, which="both")
        _save(fig, path)


@contextmanager
def _patient(board: Board, seconds: float) -> Iterator[None]:
    """A request that makes the board busy for `seconds` (a real board sleeps
    them) must not be resent for silence meanwhile: extend the link's timeout."""
    link = getattr(board, "link", None)
    if link is None:
        yield
        return
    old = link.timeout
    link.timeout = old + seconds
    try:
        yield
    finally:
        link.timeout = old


def _wait(board: Board, row: int, col: int, dt: float, v_read: float, t_read: float, max_pause: float) -> float:
    """Let `dt` of board time pass in pulse-train periods (0 V pulse, pause, read, pause) of at most
    2 max_pause each; returns the time that passed (short of dt by less than one minimal period)."""
    period = NULL_PULSE_WIDTH + t_read
    passed = 0.0
    while dt - passed >= period:
        t_off = min(max_pause, (dt - passed - period) / 2)
        with _patient(board, 2 * t_off + period):
            board.pulse_train(row, col, 1, v_set=0.0, t_set=NULL_PULSE_WIDTH, t_off=t_off, v_read=v_read, t_read=t_read)
        passed += 2 * t_off + period
    return passed


def retention(
    board: Board,
    devices: Sequence[tuple[int, int]],
    times: Sequence[float] | np.ndarray,
    *,
    prepare: tuple[float, float] | None = None,
    v_read: float | None = None,
    t_read: float = 1e-4,
    max_pause: float = MAX_PAUSE,
    progress: bool | None = None,
) -> Retention:
    """Read `devices` at board `times` (s, increasing) after t = 0. Time
    passes in pulse-train pauses (the firmware allows 0..60 s each; longer
    waits are several periods) whose set pulse is 0 V for 1 us: legal under
    any limit, and it moves nothing. Reads are pulse-train reads too, so
    their integration time (`t_read`) and so the schedule are known.
    `prepare` = (V, width): one pulse on each device before t = 0."""
    devs = _devices(board, devices)
    t = np.asarray(times, dtype=np.float64).ravel()
    if t.size == 0 or not np.all(np.isfinite(t)) or (t <= 0).any() or (np.diff(t) <= 0).any():
        raise ValueError(f"times must be finite, > 0 s and increasing, got {t}")
    info = board.info()
    lim = info.limits
    v = info.v_read if v_read is None else v_read
    _read_ok(lim, v, t_read)
    _finite("max_pause", max_pause)
    if not 0 < max_pause <= MAX_PAUSE:
        raise ValueError(f"max_pause must be in (0, {MAX_PAUSE:g}] s, got {max_pause:g}")
    _pulse_ok(lim, "retention's 0 V waiting pulse", 0.0, NULL_PULSE_WIDTH)
    if prepare is not None:
        _pulse_ok(lim, "preparation pulse", *prepare)
    g, when = np.zeros((t.size, len(devs))), np.zeros((t.size, len(devs)))
    start = time.monotonic()
    if prepare is not None:
        for r, c in devs:
            board.pulse(int(r), int(c), float(prepare[0]), float(prepare[1]))
    now = 0.0
    r0, c0 = int(devs[0][0]), int(devs[0][1])
    with progress_bar("retention", t.size, board.show_progress(progress)) as advance:
        for j, target in enumerate(t):
            now += _wait(board, r0, c0, target - now, v, t_read, max_pause)
            for k, (r, c) in enumerate(devs):
                when[j, k] = now + NULL_PULSE_WIDTH  # the read starts after the 0 V pulse
                i = board.pulse_train(
                    int(r), int(c), 1, v_set=0.0, t_set=NULL_PULSE_WIDTH, t_off=0.0, v_read=v, t_read=t_read
                )
                g[j, k] = i[0] / v
                now += NULL_PULSE_WIDTH + t_read
            advance(1)
    return Retention(
        devices=devs,
        target_time=t,
        time=when,
        conductance=g,
        v_read=float(v),
        t_read=float(t_read),
        max_pause=float(max_pause),
        prepare_v=float("nan") if prepare is None else float(prepare[0]),
        prepare_width=float("nan") if prepare is None else float(prepare[1]),
        board=flatten(info),
        wall_time=time.monotonic() - start,
    )


# -- endurance -----------------------------------------------------------------


@dataclass
class Endurance(_Record):
    """Set/reset cycles: per cycle and device the conductance after the set
    pulse (G_on) and after the reset pulse (G_off)."""

    KIND: ClassVar[str] = "endurance"
    DERIVED: ClassVar[dict[str, tuple[str, str]]] = {
        "window": ("S", "G_on - G_off per cycle, cycles x devices"),
        "ratio": ("1", "G_on / G_off per cycle, cycles x devices"),
    }
    devices: np.ndarray = _data("1", "(row, col) of each device")
    g_on: np.ndarray = _data("S", "conductance read after each set pulse, cycles x devices")
    g_off: np.ndarray = _data("S", "conductance read after each reset pulse, cycles x devices")
    v_set: float = _param("V")
    v_reset: float = _param("V")
    width: float = _param("s")  # set pulse width
    reset_width: float = _param("s")
    v_set_applied: float = _param("V")  # DAC-quantized
    v_reset_applied: float = _param("V")
    v_read: float = _param("V")

    @property
    def window(self) -> np.ndarray:
        return self.g_on - self.g_off

    @property
    def ratio(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.g_on / self.g_off

    def plot(self, path: str | Path) -> None:
        """G_on and G_off, and the window, against cycle (log), one colour per device."""
        plt = _pyplot()
        fig, (ag, aw) = plt.subplots(2, 1, figsize=(7, 6), dpi=110, sharex=True)
        n = np.arange(1, len(self.g_on) + 1)
        for k, (r, c) in enumerate(self.devices):
            line = ag.plot(n, self.g_on[:, k] * 1e6, lw=1, label=f"({r},{c}) G_on")[0]
            ag.plot(n, self.g_off[:, k] * 1e6, "--", lw=1, color=line.get_color(), label=f"({r},{c}) G_off")
            aw.plot(n, self.window[:, k] * 1e6, lw=1, color=line.get_color(), label=f"({r},{c})")
        ag.set_ylabel(f"conductance at V_read = {self.v_read:.3g} V (µS)")
        ag.set_title(
            f"endurance: set {self.v_set:g} V / {self.width:g} s, reset {self.v_reset:g} V / {self.reset_width:g} s"
        )
        aw.set_xscale("log")
        aw.set_xlabel("cycle")
        aw.set_ylabel("window G_on − G_off (µS)")
        for ax in (ag, aw):
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7, ncol=2)
        _save(fig, path)


def endurance(
    board: Board,
    devices: Sequence[tuple[int, int]],
    cycles: int,
    *,
    v_set: float,
    v_reset: float,
    width: float,
    reset_width: float | None = None,
    progress: bool | None = None,
) -> Endurance:
    """`cycles` times on each device in turn: set pulse (v_set > 0, width),
    read; reset pulse (v_reset < 0, reset_width, default width), read."""
    devs = _devices(board, devices)
    if not 1 <= cycles <= 10_000_000:
        raise ValueError(f"cycles must be 1..10000000, got {cycles}")
    rw = width if reset_width is None else reset_width
    lim = board.limits()
    _pulse_ok(lim, "set pulse", v_set, width)
    _pulse_ok(lim, "reset pulse", v_reset, rw)
    if not (v_set > 0 > v_reset):
        raise ValueError(f"the set pulse must be > 0 V and the reset pulse < 0 V, got {v_set:g} V, {v_reset:g} V")
    info = board.info()
    on, off = np.zeros((cycles, len(devs))), np.zeros((cycles, len(devs)))
    up = down = 0.0  # the applied (DAC-quantized) amplitudes
    start = time.monotonic()
    with progress_bar("endurance", cycles * len(devs), board.show_progress(progress)) as advance:
        for k, (r, c) in enumerate(devs):
            r, c = int(r), int(c)
            for n in range(cycles):
                up = board.pulse(r, c, v_set, width)
                on[n, k] = board.read(r, c)
                down = board.pulse(r, c, v_reset, rw)
                off[n, k] = board.read(r, c)
                advance(1)
    return Endurance(
        devices=devs,
        g_on=on,
        g_off=off,
        v_set=float(v_set),
        v_reset=float(v_reset),
        width=float(width),
        reset_width=float(rw),
        v_set_applied=float(up),
        v_reset_applied=float(down),
        v_read=float(info.v_read),
        board=flatten(info),
        wall_time=time.monotonic() - start,
    )


# -- forming -------------------------------------------------------------------


@dataclass
class Forming(_Record):
    """Per device of the array: how forming went (FORM_STATUS), the voltage
    that formed it, the pulses it took and its conductance afterwards."""

    KIND: ClassVar[str] = "form"
    status: np.ndarray = _data("1", "0 formed by the ramp, 1 conducting already (no pulse), 2 unformable, -1 not tried")
    voltage: np.ndarray = _data("V", "applied amplitude of the pulse that formed the device; NaN where none did")
    pulses: np.ndarray = _data("1", "forming pulses applied to the device")
    conductance: np.ndarray = _data("S", "conductance read after forming (NaN: not tried)")
    v_start: float = _param("V")
    v_stop: float = _param("V")
    step: float = _param("V")
    width: float = _param("s")
    threshold: float = _param("S")  # a device reading above it counts as formed
    v_read: float = _param("V")

    @property
    def formed(self) -> np.ndarray:
        return self.status == 0

    @property
    def unformable(self) -> np.ndarray:
        return self.status == 2

    def plot(self, path: str | Path) -> None:
        """The array: forming voltage as colour, markers for unformable and already conducting devices."""
        plt = _pyplot()
        rows, cols = self.status.shape
        fig, ax = plt.subplots(figsize=(min(12, 3.5 + 0.3 * cols), min(10, 2.5 + 0.3 * rows)), dpi=110)
        im = ax.imshow(
            np.ma.masked_invalid(self.voltage), cmap="viridis", vmin=self.v_start, vmax=self.v_stop, origin="upper"
        )
        fig.colorbar(im, ax=ax, label="forming voltage (V)")
        for code, marker, color in ((2, "x", "red"), (1, "o", "0.5")):
            rr, cc = np.nonzero(self.status == code)
            ax.scatter(cc, rr, marker=marker, c=color, s=40, label=f"{FORM_STATUS[code]} ({len(rr)})")
        _grid_axes(ax, rows, cols)
        ax.set_title(f"forming: {int(self.formed.sum())} formed, {int(self.unformable.sum())} unformable")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
        _save(fig, path)


def form_array(
    board: Board,
    devices: Sequence[tuple[int, int]] | None = None,
    *,
    v_start: float,
    v_stop: float | None = None,
    threshold: float = 5e-6,
    step: float = 0.05,
    width: float = 1e-3,
    progress: bool | None = None,
) -> Forming:
    """Automated forming after paper 003 (Merrikh Bayat et al., Nat. Commun.
    9, 2331 (2018), Methods "Automated forming procedure"): devices one at a
    time; a device already reading above `threshold` needs no forming, the
    others get a voltage ramp from v_start in `step`s up to v_stop (default
    the board's pulse limit: larger stress could damage the array, as the
    paper notes) until they read above `threshold`. Devices the ramp does not
    form are unformable (1-2.5 % in paper 003). `devices` default: the whole
    array (memctl.tuning.form: the whole array, returning what conducts)."""
    rows, cols = board.shape
    devs = _devices(board, [(r, c) for r in range(rows) for c in range(cols)] if devices is None else devices)
    lim = board.limits()
    stop = lim.v_pulse if v_stop is None else v_stop
    _finite("v_start, step, threshold", v_start, step, threshold)
    if not 0 < v_start <= stop:
        raise ValueError(f"need 0 < v_start <= v_stop, got {v_start:g} V and {stop:g} V")
    _pulse_ok(lim, "forming ramp's top", stop, width)
    if not (step > 0 and threshold > 0):
        raise ValueError(f"step ({step:g} V) and threshold ({threshold:g} S) must be > 0")
    ramp = np.r_[np.arange(v_start, stop, step), stop]
    if len(ramp) > 10_000:
        raise ValueError(f"a ramp of {len(ramp)} steps: take a larger step than {step:g} V")
    info = board.info()
    status = np.full((rows, cols), -1, np.int64)
    voltage, g = np.full((rows, cols), np.nan), np.full((rows, cols), np.nan)
    pulses = np.zeros((rows, cols), np.int64)
    start = time.monotonic()
    with progress_bar("form", len(devs), board.show_progress(progress)) as advance:
        for r, c in devs:
            r, c = int(r), int(c)
            g[r, c] = board.read(r, c)
            if g[r, c] > threshold:
                status[r, c] = 1  # pre-formed (paper 003: by annealing) or stuck conducting: no pulse
            else:
                status[r, c] = 2
                for v in ramp:
                    applied = board.pulse(r, c, float(v), width)
                    pulses[r, c] += 1
                    g[r, c] = board.read(r, c)
                    if g[r, c] > threshold:
                        status[r, c], voltage[r, c] = 0, applied
                        break
            advance(1)
    return Forming(
        status=status,
        voltage=voltage,
        pulses=pulses,
        conductance=g,
        v_start=float(v_start),
        v_stop=float(stop),
        step=float(step),
        width=float(width),
        threshold=float(threshold),
        v_read=float(info.v_read),
        board=flatten(info),
        wall_time=time.monotonic() - start,
    )


# -- array read ----------------------------------------------------------------


@dataclass
class ConductanceMap(_Record):
    """Every device's conductance (memctl read)."""

    KIND: ClassVar[str] = "read"
    conductance: np.ndarray = _data("S", "conductance of every device at V_read, rows x cols")
    v_read: float = _param("V")

    def plot(self, path: str | Path) -> None:
        """Heat map with a colour bar in µS."""
        plt = _pyplot()
        rows, cols = self.conductance.shape
        fig, ax = plt.subplots(figsize=(min(12, 3.5 + 0.25 * cols), min(10, 2.5 + 0.22 * rows)), dpi=110)
        im = ax.imshow(self.conductance * 1e6, cmap="viridis", origin="upper", aspect="auto")
        fig.colorbar(im, ax=ax, label="conductance (µS)")
        _grid_axes(ax, rows, cols)
        ax.set_title(f"{rows}x{cols} array read at {self.v_read:.3g} V")
        _save(fig, path)


def read_map(board: Board, *, progress: bool | None = None) -> ConductanceMap:
    """Read the whole array into a ConductanceMap."""
    info = board.info()
    start = time.monotonic()
    g = board.read_array(progress=progress)
    return ConductanceMap(
        conductance=g, v_read=float(info.v_read), board=flatten(info), wall_time=time.monotonic() - start
    )
