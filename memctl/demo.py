"""`memctl demo`: the whole loop on an emulated board, in one command."""

from __future__ import annotations

import time

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from memctl.board import Board, ProgramResult
from memctl_emulator import EmulatedBoard


def run_demo(size: int = 8, seed: int = 0, tolerance: float = 1e-6, console: Console | None = None) -> ProgramResult:
    """Program a size x size weight map with write-verify, read it back, run a VMM."""
    con = console or Console()
    rng = np.random.default_rng(seed)
    targets = rng.uniform(15e-6, 90e-6, (size, size))  # inside the 10-100 uS range of paper 003
    t0 = time.monotonic()
    with EmulatedBoard(seed=seed) as emu, Board(emu.port, progress=True) as board:
        info = board.info()
        con.print(
            f"[bold]memctl demo[/] board {info.rows}x{info.cols} on {emu.port} "
            f"(firmware {info.firmware}, {info.hal}, heap {info.heap_size // 1024} KB), "
            f"started in {time.monotonic() - t0:.2f} s"
        )
        result = board.program(targets, tolerance=tolerance, max_pulses=200)
        readback = board.read_array()[:size, :size]
        x = np.zeros(info.rows)
        x[:size] = rng.choice([-0.2, 0.2], size)  # +-0.2 V inputs, as in paper 003
        currents = board.vmm(x)[:size]
        expected = readback.T @ x[:size]
    _report(con, result, readback, currents, expected, tolerance)
    return result


def _report(con: Console, r: ProgramResult, readback: np.ndarray, vmm: np.ndarray, expected: np.ndarray, tol: float):
    us = 1e6
    for title, cells in (
        ("error after write-verify, uS", [[f"{e * us:+.2f}" for e in row] for row in r.error]),
        ("pulses used", [[str(n) for n in row] for row in r.pulses]),
    ):
        grid = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
        grid.add_column("", justify="right", style="dim")
        for j in range(r.targets.shape[1]):
            grid.add_column(f"c{j}", justify="right")
        for i, row in enumerate(cells):
            grid.add_row(f"r{i}", *row)
        con.print(grid)

    summary = Table(title="summary")
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    err = np.abs(r.error)
    rb = np.abs(readback - r.targets)
    summary.add_row("devices programmed", str(r.targets.size))
    summary.add_row("within tolerance", f"{int(r.ok.sum())} / {r.targets.size} (tol {tol * us:.2f} uS)")
    summary.add_row("error |final - target| mean / max", f"{err.mean() * us:.3f} / {err.max() * us:.3f} uS")
    summary.add_row("read-back error mean / max", f"{rb.mean() * us:.3f} / {rb.max() * us:.3f} uS")
    summary.add_row("pulses mean / max / total", f"{r.pulses.mean():.1f} / {r.pulses.max()} / {r.pulses.sum()}")
    summary.add_row("board time (simulated)", f"{r.board_time * 1e3:.1f} ms")
    summary.add_row("wall time programming", f"{r.wall_time:.2f} s")
    dev = np.abs(vmm - expected)
    summary.add_row("VMM |I - G.V| max", f"{dev.max() * 1e9:.1f} nA (of {np.abs(expected).max() * 1e6:.1f} uA)")
    con.print(summary)
