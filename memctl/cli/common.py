"""What every command group shares: the console, opening boards, arguments."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console

from memctl.board import Board, Limits

console = Console()

# Exit codes (docs/cli.md): 0 done; 2 refused or failed (bad input, board error: the message says which);
# 3 done but not all well (devices outside tolerance, a deployment that fails verification);
# 130 interrupted (Ctrl-C; partial results saved and the resume command printed).
EXIT_OK = 0
EXIT_ERROR = 2
EXIT_NOT_ALL_OK = 3
EXIT_INTERRUPTED = 130


err_console = Console(stderr=True)


def resume_command(a: argparse.Namespace, option: str, value: str) -> str:
    """The command line that was run, with `option value` set: what to type to carry on."""
    import shlex

    args = list(getattr(a, "argv", None) or [])
    if option in args:
        i = args.index(option)
        del args[i : i + 2]
    return shlex.join(["memctl", *args, option, value])


def _board(a: argparse.Namespace) -> Board:
    return Board(a.port, baudrate=a.baud, timeout=a.timeout, progress=None if a.progress else False)


def _boards(a: argparse.Namespace) -> list[Board]:
    """--port plus any --more-ports, in order (a deployment's board indices)."""
    boards = [_board(a)]
    try:
        for port in getattr(a, "more_ports", None) or []:
            boards.append(Board(port, baudrate=a.baud, timeout=a.timeout, progress=None if a.progress else False))
    except BaseException:
        for b in boards:
            b.close()
        raise
    return boards


def _pair(text: str) -> tuple[int, int]:
    try:
        r, c = (int(x) for x in text.split(","))
    except ValueError:
        raise SystemExit(f"device {text!r} must be ROW,COL") from None
    return r, c


def _load_array(path: str, ndim: int | None) -> np.ndarray:
    p = Path(path)
    if not p.exists():
        raise SystemExit(f"no such file: {path}")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        # numpy's own message advises allow_pickle: never the way for a conductance map.
        raise SystemExit(f"{path} is not a readable .npy array (write it with numpy.save)") from None
    if ndim is not None and arr.ndim != ndim:
        raise SystemExit(f"{path}: expected a {ndim}-D array, got shape {arr.shape}")
    return arr


def with_port(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of every command that talks to a board."""
    p.add_argument("--port", required=True, help="serial port or pyserial URL of the board")
    p.add_argument("--baud", type=int, default=115200, help="serial baud rate (emulated boards follow it)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds of silence before a retry")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    return p


def apply_device(board: Board, device: str) -> None:
    """Put a device family's safety limits and read voltage on the board (`--device`), refusing with values
    what the board cannot do, before anything is pulsed."""
    from memctl.tuning import settings_for

    s = settings_for(device)
    put_limits(board, s.limits, s.v_read, device, "program without --device and set --limits yourself")


def apply_settings(board: Board, path: str) -> None:
    """A `memctl tune` settings file's limits and read voltage on the board (`--settings`)."""
    from memctl.tune import TunedSettings

    ts = TunedSettings.load(path)
    if ts.limits is None:
        return  # a file from before limits were recorded: the board's own stay
    put_limits(board, Limits(**ts.limits), ts.v_read or ts.limits["v_read"], path, "tune again on this board")


def put_limits(board: Board, lim: Limits, v_read: float, source: str, otherwise: str) -> None:
    from memctl.tuning import apply_limits

    info = board.info()
    for what, need in (("pulse", lim.v_pulse), ("read", lim.v_read)):
        if need > info.dac_full_scale:
            raise SystemExit(
                f"{source} needs {what} voltages up to {need:g} V; this board's DAC reaches "
                f"+-{info.dac_full_scale:g} V (choose a board for this device, or {otherwise})"
            )
    apply_limits(board, lim, v_read)
    console.print(
        f"{source}: limits +-{lim.v_pulse:g} V, {lim.width:g} s, read +-{lim.v_read:g} V, "
        f"disturb {lim.v_disturb:g} V; V_read {v_read:g} V",
        highlight=False,
    )
