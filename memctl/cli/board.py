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
    with _board(a) as b:
        if a.row is not None or a.col is not None:
            if a.row is None or a.col is None:
                raise SystemExit("give both --row and --col, or neither for the whole array")
            print(f"{b.read(a.row, a.col):.6e}")
            return 0
        g = b.read_array()
    if a.out:
        np.save(a.out, g)
        err_console.print(f"saved {g.shape} conductances (S) to {a.out}")
    else:
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
    r.add_argument("--out", help="save the array (S) to this .npy file")
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
