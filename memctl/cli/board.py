"""`memctl` commands for the board itself: INFO, reads, single pulses, safety limits."""

from __future__ import annotations

import argparse

import numpy as np
from rich.table import Table

from memctl.cli.common import _board, console, err_console, with_port


def cmd_info(a: argparse.Namespace) -> int:
    with _board(a) as b:
        info = b.info()
    t = Table(title=f"board on {a.port}")
    t.add_column("field")
    t.add_column("value")
    for k, v in vars(info).items():
        t.add_row(k, str(v))
    console.print(t)
    return 0


def cmd_read(a: argparse.Namespace) -> int:
    from memctl.instruments import read_map

    with _board(a) as b:
        if a.row is not None or a.col is not None:
            if a.row is None or a.col is None:
                raise SystemExit("give both --row and --col, or neither for the whole array")
            if a.out or a.plot:
                raise SystemExit("--out and --plot keep the whole array: leave out --row and --col")
            print(f"{b.read(a.row, a.col):.6e}")
            return 0
        m = read_map(b)
    g = m.conductance
    if a.plot:
        m.plot(a.plot)
        err_console.print(f"plotted {g.shape} conductances to {a.plot}")
    if a.out and a.out.lower().endswith((".h5", ".hdf5")):
        m.write_hdf5(a.out)
        err_console.print(f"saved {g.shape} conductances (S) to {a.out}")
    elif a.out:
        np.save(a.out, g)
        err_console.print(f"saved {g.shape} conductances (S) to {a.out}")
    elif not a.plot:
        with np.printoptions(precision=2, linewidth=200, suppress=True):
            print(g * 1e6, "(uS)")
    return 0


def cmd_pulse(a: argparse.Namespace) -> int:
    with _board(a) as b:
        v = b.pulse(a.row, a.col, a.volts, a.width)
    print(f"applied {v:.4f} V for {a.width:g} s on ({a.row}, {a.col})")
    return 0


def cmd_set_limits(a: argparse.Namespace) -> int:
    with _board(a) as b:
        lim = b.set_limits(a.v_pulse, a.width, a.v_read)
    print(f"limits: |pulse| <= {lim.v_pulse:g} V, width <= {lim.width:g} s, |read| <= {lim.v_read:g} V")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    with_port(sub.add_parser("info", help="firmware, array and limits")).set_defaults(fn=cmd_info)

    r = with_port(sub.add_parser("read", help="read one device or the whole array"))
    r.add_argument("--row", type=int)
    r.add_argument("--col", type=int)
    r.add_argument("--out", help="save the array (S) to this .npy file, or .h5/.hdf5 (with units and the board)")
    r.add_argument("--plot", metavar="FILE.png", help="draw the array's conductance as a heat map")
    r.set_defaults(fn=cmd_read)

    p = with_port(sub.add_parser("pulse", help="one pulse on one device (V/2 biasing)"))
    p.add_argument("row", type=int)
    p.add_argument("col", type=int)
    p.add_argument("volts", type=float)
    p.add_argument("width", type=float, help="seconds")
    p.set_defaults(fn=cmd_pulse)

    sl = with_port(sub.add_parser("set-limits", help="safety limits the firmware enforces"))
    sl.add_argument("v_pulse", type=float, help="max |pulse| V")
    sl.add_argument("width", type=float, help="max pulse width, s")
    sl.add_argument("v_read", type=float, help="max |read| V")
    sl.set_defaults(fn=cmd_set_limits)
