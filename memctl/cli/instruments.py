"""`memctl` instrument routines: I-V sweeps, retention, endurance, forming (HDF5 + PNG each).

Defaults follow the board's limits after `--device` put the family's on it,
so a default never asks for more than the board allows.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from memctl.cli.common import _board, _pair, apply_device, console, with_port


def _save(a: argparse.Namespace, result, what: str) -> None:
    result.write_hdf5(a.out, device=a.device)
    png = a.plot or str(Path(a.out).with_suffix(".png"))
    result.plot(png)
    console.print(f"{what} -> {a.out}, plot {png} ({result.wall_time:.1f} s)", highlight=False)


def _family(a: argparse.Namespace):
    from memctl.devices import load_device

    return load_device(a.device) if a.device else None


def cmd_iv(a: argparse.Namespace) -> int:
    from memctl.instruments import iv_sweep

    with _board(a) as b:
        if a.device:
            apply_device(b, a.device)
        lim = b.limits()
        d = _family(a)
        v_max = lim.v_pulse if a.v_max is None else a.v_max
        v_min = v_max if a.v_min is None else a.v_min
        width = a.width if a.width is not None else min(d.pulse_width, lim.width) if d else lim.width / 10
        iv = iv_sweep(b, a.row, a.col, v_max=v_max, v_min=v_min, width=width, steps=a.steps, cycles=a.cycles)
    _save(a, iv, f"I-V of ({a.row}, {a.col}): {len(iv.voltage)} steps to +{v_max:g} / -{v_min:g} V")
    return 0


def cmd_retention(a: argparse.Namespace) -> int:
    from memctl.instruments import retention

    if not (a.start > 0 and a.stop > a.start and a.points >= 2):
        raise ValueError(f"need 0 < --start < --stop and --points >= 2, got {a.start:g}, {a.stop:g}, {a.points}")
    times = np.geomspace(a.start, a.stop, a.points)
    with _board(a) as b:
        if a.device:
            apply_device(b, a.device)
        ret = retention(
            b,
            [_pair(x) for x in a.devices],
            times,
            prepare=tuple(a.pulse) if a.pulse else None,
            v_read=a.v_read,
            t_read=a.t_read,
        )
    moved = np.abs(ret.conductance[-1] - ret.conductance[0]).max()
    _save(a, ret, f"{len(ret.devices)} devices x {a.points} reads, {a.start:g}..{a.stop:g} s, |dG| <= {moved:.3g} S")
    return 0


def cmd_endurance(a: argparse.Namespace) -> int:
    from memctl.instruments import endurance

    with _board(a) as b:
        if a.device:
            apply_device(b, a.device)
        lim = b.limits()
        end = endurance(
            b,
            [_pair(x) for x in a.devices],
            a.cycles,
            v_set=0.75 * lim.v_pulse if a.v_set is None else a.v_set,
            v_reset=-0.75 * lim.v_pulse if a.v_reset is None else a.v_reset,
            width=lim.width if a.width is None else a.width,
            reset_width=a.reset_width,
        )
    w = end.window
    _save(a, end, f"{a.cycles} cycles on {len(end.devices)} devices, window {w.min():.3g}..{w.max():.3g} S")
    return 0


def cmd_form(a: argparse.Namespace) -> int:
    from memctl.instruments import form_array

    with _board(a) as b:
        if a.device:
            apply_device(b, a.device)
        lim = b.limits()
        d = _family(a)
        v_start = a.v_start
        if v_start is None:  # from below the family's forming voltage (its spread), else half the limit
            v_start = min(0.8 * d.v_form, lim.v_pulse) if d and d.v_form else 0.5 * lim.v_pulse
        threshold = a.threshold
        if threshold is None:  # between pristine and the lowest formed state, else memctl.tuning.form's
            threshold = 5e-6
            if d:
                threshold = math.sqrt(d.g_pristine * d.g_min) if d.g_pristine else 0.5 * d.g_min
        f = form_array(
            b,
            [_pair(x) for x in a.devices] if a.devices else None,
            v_start=v_start,
            v_stop=a.v_stop,
            threshold=threshold,
            step=a.step,
            width=min(1e-3, lim.width) if a.width is None else a.width,
        )
    tried = int((f.status >= 0).sum())
    _save(
        a,
        f,
        f"{tried} devices: {int(f.formed.sum())} formed, {int((f.status == 1).sum())} conducting already, "
        f"{int(f.unformable.sum())} unformable",
    )
    return 0


def _outputs(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument(
        "--device",
        help="preset, generated:SEED or device file: its safety limits and read voltage are put on the board "
        "first, and the defaults follow from them",
    )
    p.add_argument("--out", required=True, help="HDF5 file to write")
    p.add_argument("--plot", help="PNG file to write (default: the --out name with .png)")
    return p


def add_parsers(sub: argparse._SubParsersAction) -> None:
    iv = _outputs(with_port(sub.add_parser("iv", help="pulsed I-V curve of one device: 0 -> +V -> 0 -> -V -> 0")))
    iv.add_argument("--row", type=int, default=0, help="device row (default: %(default)s)")
    iv.add_argument("--col", type=int, default=0, help="device column (default: %(default)s)")
    iv.add_argument("--v-max", type=float, help="positive peak, V (default: the board's pulse limit)")
    iv.add_argument("--v-min", type=float, help="magnitude of the negative peak, V (default: --v-max)")
    iv.add_argument("--steps", type=int, default=20, help="steps per quarter branch (default: %(default)s)")
    iv.add_argument(
        "--width",
        type=float,
        help="pulse width per step, s (default: the --device's typical width, else a tenth of the width limit)",
    )
    iv.add_argument("--cycles", type=int, default=1, help="sweeps (default: %(default)s)")
    iv.set_defaults(fn=cmd_iv)

    rt = _outputs(with_port(sub.add_parser("retention", help="reads at log-spaced board times (relaxation)")))
    rt.add_argument("--devices", nargs="+", default=["0,0"], metavar="ROW,COL", help="devices (default: 0,0)")
    rt.add_argument("--start", type=float, default=1e-3, help="first read, s after t = 0 (default: %(default)s)")
    rt.add_argument("--stop", type=float, default=1000.0, help="last read, s after t = 0 (default: %(default)s)")
    rt.add_argument("--points", type=int, default=19, help="log-spaced read times (default: %(default)s)")
    rt.add_argument(
        "--pulse",
        type=float,
        nargs=2,
        metavar=("V", "WIDTH"),
        help="one pulse on each device before t = 0, to program the state to watch (default: none)",
    )
    rt.add_argument("--v-read", type=float, help="read voltage, V (default: the board's)")
    rt.add_argument("--t-read", type=float, default=1e-4, help="read integration time, s (default: %(default)s)")
    rt.set_defaults(fn=cmd_retention)

    en = _outputs(with_port(sub.add_parser("endurance", help="set/reset cycles and the on/off window per cycle")))
    en.add_argument("--devices", nargs="+", default=["0,0"], metavar="ROW,COL", help="devices (default: 0,0)")
    en.add_argument("--cycles", type=int, default=100, help="set/reset cycles per device (default: %(default)s)")
    en.add_argument("--v-set", type=float, help="set pulse, V > 0 (default: 75 %% of the pulse limit)")
    en.add_argument("--v-reset", type=float, help="reset pulse, V < 0 (default: -75 %% of the pulse limit)")
    en.add_argument("--width", type=float, help="set pulse width, s (default: the width limit)")
    en.add_argument("--reset-width", type=float, help="reset pulse width, s (default: --width)")
    en.set_defaults(fn=cmd_endurance)

    fo = _outputs(with_port(sub.add_parser("form", help="automated forming (paper 003) with forming voltages")))
    fo.add_argument("--devices", nargs="+", metavar="ROW,COL", help="devices to form (default: the whole array)")
    fo.add_argument(
        "--v-start",
        type=float,
        help="first ramp voltage, V (default: 80 %% of the --device's forming voltage, else half the pulse limit)",
    )
    fo.add_argument("--v-stop", type=float, help="last ramp voltage, V (default: the board's pulse limit)")
    fo.add_argument("--step", type=float, default=0.05, help="ramp step, V (default: %(default)s)")
    fo.add_argument("--width", type=float, help="ramp pulse width, s (default: 1e-3 or the width limit if lower)")
    fo.add_argument(
        "--threshold",
        type=float,
        help="formed when it reads above this, S (default: between the --device's pristine and lowest state, "
        "else 5e-6)",
    )
    fo.set_defaults(fn=cmd_form)
