"""`memctl` commands for the board itself: INFO, reads, single pulses, safety limits."""

from __future__ import annotations

import argparse

import numpy as np
from rich.table import Table

from memctl.cli.common import _board, apply_device, apply_settings, console, err_console, with_port


def _value(v: object, unit: str) -> str:
    if isinstance(v, float):
        return f"{v:.4g} {unit}".strip()
    return f"{v} {unit}".strip() if unit else str(v)


def cmd_info(a: argparse.Namespace) -> int:
    from memctl.records import BOARD_UNITS, flatten

    with _board(a) as b:
        info = b.info()
    fields = flatten(info)
    if a.json:
        import json

        print(json.dumps({"port": a.port, "info": fields, "units": BOARD_UNITS}, indent=1))
        return 0
    t = Table(title=f"board on {a.port}")
    t.add_column("field")
    t.add_column("value")
    for k, v in fields.items():
        t.add_row(k, _value(v, BOARD_UNITS.get(k, "")))
    t.add_row("g_lsb (finest conductance step)", _value(info.g_lsb, "S"))
    console.print(t)
    return 0


def cmd_ports(a: argparse.Namespace) -> int:
    """Serial ports, and which answer as memctl boards (an INFO request each)."""
    import glob
    import os
    import tempfile

    from serial.tools import list_ports

    from memctl.board import Board
    from memctl.errors import MemctlError

    found = [(p.device, p.description or "") for p in list_ports.comports()]
    emulated = sorted(glob.glob(os.path.join(tempfile.gettempdir(), "memctl-emu-*", "ttyMEMCTL*")))
    found += [(p, "memctl emulate") for p in emulated]
    rows = []
    for port, desc in found:
        row = {"port": port, "description": desc, "memctl": None}
        if a.probe:
            try:
                with Board(port, timeout=a.timeout, retries=1, progress=False) as b:
                    i = b.info()
                row.update(memctl=True, firmware=i.firmware, shape=[i.rows, i.cols], hal=i.hal, image=i.image)
            except (MemctlError, OSError, ValueError):
                row["memctl"] = False
        rows.append(row)
    if a.json:
        import json

        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        console.print("no serial ports found (an emulated board: memctl emulate)")
        return 0
    t = Table(title="serial ports")
    for col in ("port", "description", "memctl board"):
        t.add_column(col)
    for r in rows:
        what = {None: "not probed", False: "no"}.get(r["memctl"]) or (
            f"yes: firmware {r['firmware']}, {r['shape'][0]}x{r['shape'][1]}, {r['hal']}"
        )
        t.add_row(r["port"], r["description"], what)
    console.print(t)
    return 0


def cmd_config(a: argparse.Namespace) -> int:
    with _board(a) as b:
        b.configure(v_read=a.v_read, bias=a.bias, read_mode=a.read_mode)
        i = b.info()
    print(f"read voltage {i.v_read:.4g} V, bias {i.bias_scheme}, read mode {i.read_mode}")
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
    given = [x for x in (a.v_pulse, a.width, a.v_read) if x is not None]
    if sum((len(given) > 0, bool(a.settings), bool(a.device))) != 1 or len(given) not in (0, 3):
        raise SystemExit("give V_PULSE WIDTH V_READ, or --settings FILE, or --device FAMILY (one of them)")
    with _board(a) as b:
        if a.settings:
            apply_settings(b, a.settings)
        elif a.device:
            apply_device(b, a.device)
        else:
            b.set_limits(a.v_pulse, a.width, a.v_read, a.v_disturb)
        lim = b.limits()
    disturb = f"{lim.v_disturb:g} V (passive rows share pulses)" if lim.v_disturb else "none (one device at a time)"
    print(
        f"limits: |pulse| <= {lim.v_pulse:g} V, width <= {lim.width:g} s, |read| <= {lim.v_read:g} V, disturb {disturb}"
    )
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    inf = with_port(sub.add_parser("info", help="firmware, array, limits and ranges, with units"))
    inf.add_argument("--json", action="store_true", help="print the fields (and their units) as JSON")
    inf.set_defaults(fn=cmd_info)

    po = sub.add_parser(
        "ports",
        help="list serial ports (and running emulated boards) and say which are memctl boards",
        description="Each port is sent one INFO request (at 115200 baud) unless --no-probe: a device that is "
        "not a memctl board sees a few bytes it will not understand.",
    )
    po.add_argument("--no-probe", dest="probe", action="store_false", help="list only, send nothing")
    po.add_argument(
        "--timeout", type=float, default=0.5, help="seconds to wait for each port's answer (default: %(default)s)"
    )
    po.add_argument("--json", action="store_true", help="print the list as JSON")
    po.set_defaults(fn=cmd_ports)

    co = with_port(sub.add_parser("config", help="read voltage, pulse biasing and read mode (kept in flash)"))
    co.add_argument("--v-read", type=float, help="read voltage, V (within the read limit)")
    co.add_argument("--bias", choices=["V/2", "V/3"], help="pulse biasing of half-selected lines (passive arrays)")
    co.add_argument(
        "--read-mode",
        choices=["grounded", "floating"],
        help="unselected lines at 0 V (grounded) or floating (sneak paths add to reads)",
    )
    co.set_defaults(fn=cmd_config)

    r = with_port(sub.add_parser("read", help="read one device or the whole array"))
    r.add_argument("--row", type=int, help="read one device: its row (with --col)")
    r.add_argument("--col", type=int, help="read one device: its column (with --row)")
    r.add_argument("--out", help="save the array (S) to this .npy file, or .h5/.hdf5 (with units and the board)")
    r.add_argument("--plot", metavar="FILE.png", help="draw the array's conductance as a heat map")
    r.set_defaults(fn=cmd_read)

    p = with_port(sub.add_parser("pulse", help="one pulse on one device (V/2 biasing)"))
    p.add_argument("row", type=int, help="device row")
    p.add_argument("col", type=int, help="device column")
    p.add_argument("volts", type=float, help="amplitude, V (negative: reset); within the safety limit")
    p.add_argument("width", type=float, help="seconds")
    p.set_defaults(fn=cmd_pulse)

    sl = with_port(sub.add_parser("set-limits", help="safety limits the firmware enforces (kept in flash)"))
    sl.add_argument("v_pulse", type=float, nargs="?", help="max |pulse| V")
    sl.add_argument("width", type=float, nargs="?", help="max pulse width, s")
    sl.add_argument("v_read", type=float, nargs="?", help="max |read| V")
    sl.add_argument(
        "--v-disturb",
        type=float,
        default=0.0,
        help="with V_PULSE WIDTH V_READ: max |V| a device not being programmed may see (below its switching "
        "threshold); lets a passive array pulse a row's devices together. 0: none, one device at a time",
    )
    sl.add_argument("--settings", help="instead: the limits and read voltage a `memctl tune` settings file records")
    sl.add_argument("--device", help="instead: a device family's limits and read voltage (preset or file)")
    sl.set_defaults(fn=cmd_set_limits)
