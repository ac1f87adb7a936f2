"""The chips backend (the reference board's chip drivers against chip-level
models) and the semantic backend drive the same physics: with one seed they
read, multiply and program identically, while the chips backend's traffic
really crosses the chip models."""

from __future__ import annotations

import numpy as np

import memctl
from memctl_emulator import EmulatedBoard


def _session(hal: str) -> tuple:
    with EmulatedBoard(seed=11, hal=hal, cell="1T1R") as emu, memctl.Board(emu.port, progress=False) as b:
        g0 = b.read_array()
        y = b.vmm(np.linspace(-0.1, 0.1, 32))
        res = b.program(np.full((3, 3), 60e-6), origin=(2, 5), tolerance=1e-6)
        client = emu.afe()
        truth = client.truth()[1]
        seen = client.stats()
        client.close()
        return b.info().hal, seen, g0, y, res.pulses, truth


def test_both_backends_give_the_same_results_for_the_same_seed():
    hal_e, seen_e, *semantic = _session("emulated")
    hal_b, seen_b, *board = _session("chips")
    assert hal_e.startswith("emulated:") and hal_b.startswith("chips:")
    for a, b in zip(semantic, board, strict=True):
        np.testing.assert_array_equal(a, b)
    # The chips backend's pulses and conversions are gate windows the chip models opened, set up over SPI;
    # the semantic backend never touches them.
    assert (seen_b.pulses, seen_b.conversions) == (seen_e.pulses, seen_e.conversions)
    assert seen_b.gate_windows == seen_b.pulses + seen_b.conversions and seen_b.chip_frames > seen_b.gate_windows
    assert (seen_e.gate_windows, seen_e.chip_frames) == (0, 0)
