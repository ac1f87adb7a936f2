"""Where a network's weights go: differential mapping, tiling over boards,
the defect pre-scan, and hardware-aware placement around stuck devices.

Each weight matrix W (outputs x inputs) becomes a differential pair per
output (paper 003): one column holds G+, its partner G-, with
G+ - G- = W / scale and both in [g_lo, g_hi]; the bias is one more input row.
Paper 003 found 1-2.5 % of devices unformable and stuck; placing the tile's
rows and output pairs so that stuck devices land where their fixed
conductance does the least harm, and letting the partner device absorb what
it can, keeps them from spoiling weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from memctl.algorithms import Algorithm
from memctl.board import Board
from memctl.onnx_mlp import DeployError, Layer
from memctl_shared import wire


def map_layer(layer: Layer, g_lo: float, g_hi: float) -> tuple[np.ndarray, float]:
    """Targets (inputs+1) x (2 outputs) for a differential mapping, and the scale."""
    w = np.hstack([layer.weight, layer.bias[:, None]]).T  # (inputs + 1) x outputs
    span = g_hi - g_lo
    peak = float(np.abs(w).max()) or 1.0
    scale = peak / span
    d = w / scale  # G+ - G-, within +-span
    t = np.empty((w.shape[0], 2 * w.shape[1]))
    t[:, 0::2] = np.where(d > 0, g_lo + d, g_lo)
    t[:, 1::2] = np.where(d < 0, g_lo - d, g_lo)
    return t, scale


def quantize_levels(g: np.ndarray, g_lo: float, g_hi: float, levels: int) -> np.ndarray:
    """Round conductances to `levels` evenly spaced values in [g_lo, g_hi]
    (the device's level count, e.g. paper 001's 32/128/512)."""
    if levels < 2:
        raise DeployError("levels must be at least 2")
    step = (g_hi - g_lo) / (levels - 1)
    return g_lo + np.clip(np.round((g - g_lo) / step), 0, levels - 1) * step


@dataclass
class TileSpec:
    """One block of a layer's mapped matrix and the column band it gets."""

    layer: int
    board: int
    band: tuple[int, int]  # physical columns [start, stop) on the board
    inputs: tuple[int, int]  # rows [start, stop) of the mapped matrix (bias = last)
    outputs: tuple[int, int]
    scale: float
    targets: np.ndarray  # logical: [i, 2j] = G+, [i, 2j+1] = G-


def plan_tiles(layers: list[Layer], shapes: list[tuple[int, int]], g_range: tuple[float, float]) -> list[TileSpec]:
    """Split every layer into tiles and give each a column band, board after
    board. Row blocks are as tall as the smallest board; their partial sums
    add up. Raises DeployError, before any pulse, when the model does not fit."""
    block = min(r for r, _ in shapes)
    mapped = [map_layer(layer, *g_range) for layer in layers]
    need = sum(t.shape[1] * -(-t.shape[0] // block) for t, _ in mapped)
    have = sum(c - c % 2 for _, c in shapes)
    if need > have:
        raise DeployError(
            f"the model needs {need} columns of {block}-row tiles; {len(shapes)} board(s) {shapes} offer {have}: "
            "give more boards (ports) or a smaller model"
        )
    free = [0] * len(shapes)
    tiles = []
    for k, (t, scale) in enumerate(mapped):
        n_in, n_out = t.shape[0], t.shape[1] // 2
        for r0 in range(0, n_in, block):
            r1 = min(n_in, r0 + block)
            o0 = 0
            while o0 < n_out:
                bi = next(i for i, (_, c) in enumerate(shapes) if c - free[i] >= 2)
                o1 = min(n_out, o0 + (shapes[bi][1] - free[bi]) // 2)
                band = (free[bi], free[bi] + 2 * (o1 - o0))
                tiles.append(TileSpec(k, bi, band, (r0, r1), (o0, o1), scale, t[r0:r1, 2 * o0 : 2 * o1]))
                free[bi] = band[1]
                o0 = o1
    return tiles


@dataclass
class Scan:
    """A board's defect map: devices that did not reach a mid-range probe
    target (stuck, unreachable, out of pulses) and the conductance each has."""

    g: np.ndarray
    defect: np.ndarray


def prescan(
    board: Board,
    g_range: tuple[float, float],
    columns: tuple[int, int] | None = None,
    *,
    algorithm: Algorithm | None = None,
    max_pulses: int = 40,
    progress: bool | None = None,
    journal: dict | None = None,
    on_block: Callable[[dict], None] | None = None,
    block: int = 8,
) -> Scan:
    """Program every device of the used columns to 30 % and then to 70 % of
    g_range at a 10 % tolerance (paper 003 found its stuck devices by trying
    to tune them) and flag those that missed either: a stuck device can sit
    inside one window by chance, never inside both. Columns outside `columns`
    are reported as not defective and are left alone.

    The scan goes `block` columns at a time; `journal` (a dict with g, defect
    and the columns done) is updated after each block and handed to
    `on_block`, which saves it: an interrupted scan resumes from its journal."""
    rows, cols = board.shape
    c0, c1 = columns or (0, cols)
    g_lo, g_hi = g_range
    span = g_hi - g_lo
    j = journal if journal is not None else {}
    if "g" not in j:
        j.update(g=np.full((rows, cols), np.nan).tolist(), defect=np.zeros((rows, cols), bool).tolist(), done=[])
    g, defect = np.array(j["g"], float), np.array(j["defect"], bool)
    for b0 in range(c0, c1, block):
        b1 = min(b0 + block, c1)
        if b0 in j["done"]:
            continue
        for share in (0.3, 0.7):
            probe = np.full((rows, b1 - b0), g_lo + share * span)
            res = board.program(
                probe,
                tolerance=0.1 * span,
                max_pulses=max_pulses,
                origin=(0, b0),
                algorithm=algorithm,
                progress=progress,
                label=f"pre-scan columns {b0}-{b1 - 1} at {share:.0%} of the range",
            )
            defect[:, b0:b1] |= res.status != wire.S_OK
            g[:, b0:b1] = res.final
        j.update(g=np.nan_to_num(g).tolist(), defect=defect.tolist(), done=[*j["done"], b0])
        if on_block is not None:
            on_block(j)
    return Scan(g, defect)


def _pair_error(d, sp, sm, fp, fm, g_lo, g_hi):
    """|achieved - wanted| of G+ - G- = d when G+ (G-) is fixed at sp (sm)
    where fp (fm) is set; a free partner takes the best value it can reach.
    Returns (error, G+, G-)."""
    plus = np.where(fp, sp, np.where(fm, np.clip(sm + d, g_lo, g_hi), g_lo + np.maximum(d, 0)))
    minus = np.where(fm, sm, np.where(fp, np.clip(sp - d, g_lo, g_hi), g_lo + np.maximum(-d, 0)))
    return np.abs((plus - minus) - d), plus, minus


def place_aware(tile: TileSpec, scan: Scan, g_range: tuple[float, float], rounds: int = 3):
    """Physical rows, columns and compensated targets for one tile.

    Rows may be any of the board's rows; output pairs are permuted within
    the tile's band and each pair may swap its G+ and G- columns. Rows and
    pairs are assigned in turn with the Hungarian method (scipy's
    linear_sum_assignment) on the summed pair error. Returns (rows, cols,
    targets, fixed) with targets in the tile's logical layout and `fixed`
    marking devices left alone (defects, kept at their conductance)."""
    g_lo, g_hi = g_range
    t = tile.targets
    d = t[:, 0::2] - t[:, 1::2]  # (n_r, n_o)
    n_r, n_o = d.shape
    b0, b1 = tile.band
    g = np.nan_to_num(scan.g[:, b0:b1], nan=g_lo)
    f = scan.defect[:, b0:b1]
    # Physical pair q, orientation o: G+ on column 2q+o, G- on 2q+1-o.
    sp = np.stack([g[:, 0::2], g[:, 1::2]], -1)  # (R, n_o pairs, orientation)
    sm = np.stack([g[:, 1::2], g[:, 0::2]], -1)
    fp = np.stack([f[:, 0::2], f[:, 1::2]], -1)
    fm = np.stack([f[:, 1::2], f[:, 0::2]], -1)
    rows = np.arange(n_r)
    pairs, orient = np.arange(n_o), np.zeros(n_o, int)
    if f.any():
        for _ in range(rounds):
            # rows: cost[i, p] = sum_j err(d[i, j] on row p, pair q(j), orientation o(j))
            e, _, _ = _pair_error(
                d[:, None, :],
                sp[None, :, pairs, orient],
                sm[None, :, pairs, orient],
                fp[None, :, pairs, orient],
                fm[None, :, pairs, orient],
                g_lo,
                g_hi,
            )
            _, rows = linear_sum_assignment(e.sum(-1))
            # pairs: cost[j, q] = min over orientation of sum_i err(d[i, j] on row p(i), pair q)
            e, _, _ = _pair_error(
                d[:, :, None, None],
                sp[rows][:, None],
                sm[rows][:, None],
                fp[rows][:, None],
                fm[rows][:, None],
                g_lo,
                g_hi,
            )
            e = e.sum(0)  # (n_o logical, n_o physical, 2)
            _, pairs = linear_sum_assignment(e.min(-1))
            orient = e[np.arange(n_o), pairs].argmin(-1)
    _, plus, minus = _pair_error(
        d,
        sp[rows][:, pairs, orient],
        sm[rows][:, pairs, orient],
        fp[rows][:, pairs, orient],
        fm[rows][:, pairs, orient],
        g_lo,
        g_hi,
    )
    targets = np.empty_like(t)
    targets[:, 0::2], targets[:, 1::2] = plus, minus
    cols = np.empty(2 * n_o, int)
    cols[0::2] = b0 + 2 * pairs + orient
    cols[1::2] = b0 + 2 * pairs + 1 - orient
    fixed = np.empty_like(t, bool)
    fixed[:, 0::2], fixed[:, 1::2] = fp[rows][:, pairs, orient], fm[rows][:, pairs, orient]
    return rows, cols, targets, fixed


def place_oblivious(tile: TileSpec):
    """Rows from the top, columns in band order; every device programmed."""
    n_r, n_c = tile.targets.shape
    return np.arange(n_r), np.arange(tile.band[0], tile.band[0] + n_c), tile.targets.copy(), np.zeros((n_r, n_c), bool)
