"""Feedforward-pulse programming (paper 001) on the host side: calibrating
the board's V_w(G) table, multilevel segmentation of an FFP trace into
planned pulse groups, and the paper's nonlinearity and skipped-level metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

from memctl.algorithms import FFP, FFPTable
from memctl.board import Board

# Paper 001, for comparison (n -> value): nu_p, nu_d (eqs. 2-3) and skipped levels at CPD 80 %.
PAPER_NU_P = {512: 1.91e-5, 128: 3.10e-4, 32: 4.95e-3}
PAPER_NU_D = {512: 1.93e-5, 128: 3.10e-4, 32: 4.91e-3}
PAPER_SKIPPED = {32: (0, 0), 512: (117, 8)}  # (potentiation, depression)


def calibrate(
    board: Board, row: int, col: int, ffp: FFP, g_lo: float, g_hi: float, bins: int = 32, sweeps: int = 3
) -> FFPTable:
    """Fill the board's V_w(G) table by continuous FFP sweeps up and down the
    range (paper 001 Fig. 3b), learning on every event."""
    board.set_ffp_table(FFPTable.empty(g_lo, g_hi, bins))
    for _ in range(sweeps):
        board.ffp_trace(row, col, +1, ffp)
        board.ffp_trace(row, col, -1, ffp)
    return board.ffp_table()


@dataclass
class Segmentation:
    """n levels planned from one FFP trace (paper 001 Methods)."""

    targets: np.ndarray  # normalized target levels, in programming order
    achieved: np.ndarray  # the trace's normalized value at each level's event
    groups: list[np.ndarray]  # write voltages that move level j to j+1 (empty: unoccupied)
    r_min: float
    r_max: float

    def normalize(self, r: np.ndarray) -> np.ndarray:
        return (np.asarray(r) - self.r_min) / (self.r_max - self.r_min)


def segment(r_trace: np.ndarray, v_trace: np.ndarray, n: int) -> Segmentation:
    """r_trace: resistance before each event plus the final one (len(v) + 1).
    Normalize to 0..1, place n targets evenly from start to end, take for each
    the nearest event m_j, and group the events m_j..m_{j+1} into one step."""
    r = np.asarray(r_trace, float)
    if len(r) != len(v_trace) + 1 or n < 2:
        raise ValueError("need one more resistance than voltages, and n >= 2")
    r_min, r_max = r.min(), r.max()
    x = (r - r_min) / (r_max - r_min)
    targets = np.linspace(x[0], x[-1], n)
    m = np.array([int(np.argmin(np.abs(x - t))) for t in targets])
    m = np.maximum.accumulate(m)  # events stay in trace order
    groups = [np.asarray(v_trace[m[j] : m[j + 1]]) for j in range(n - 1)]
    return Segmentation(targets, x[m], groups, r_min, r_max)


def run_planned(board: Board, row: int, col: int, seg: Segmentation, width: float) -> np.ndarray:
    """Open loop: apply every pulse group in turn, reading the resistance at
    each level. Returns the normalized value reached at each of the n levels."""
    out = [1.0 / board.read(row, col)]
    for group in seg.groups:
        for v in group:
            board.pulse(row, col, float(v), width)
        out.append(1.0 / board.read(row, col))
    return seg.normalize(np.array(out))


def _eq2(nj: np.ndarray, nu: float, n: float) -> np.ndarray:
    """Paper 001 eq. (2): (R_p - r_min)/(r_max - r_min) = (1 - e^{nu(nj - n)}) / (1 - e^{-nu n})."""
    return np.expm1(nu * (nj - n)) / np.expm1(-nu * n)


def _eq3(nj: np.ndarray, nu: float, n: float) -> np.ndarray:
    """Paper 001 eq. (3): (R_d - r_min)/(r_max - r_min) = (1 - e^{nu nj}) / (1 - e^{nu n})."""
    return np.expm1(nu * nj) / np.expm1(nu * n)


def fit_nu(y: np.ndarray, potentiation: bool) -> float:
    """Nonlinearity nu of a normalized level sequence (eq. 2 or 3); 0 = linear."""
    n = len(y) - 1
    nj = np.arange(n + 1, dtype=float)
    f = _eq2 if potentiation else _eq3
    best = None
    for sign in (1.0, -1.0):  # eq. 2/3 hold for either curvature
        try:
            p, _ = curve_fit(
                lambda x, nu: f(x, nu, n), nj, y, p0=[sign * 1e-3], bounds=sorted([sign * 1e-9, sign * 1.0])
            )
        except (RuntimeError, ValueError):
            continue
        err = float(((f(nj, p[0], n) - y) ** 2).sum())
        if best is None or err < best[1]:
            best = (float(p[0]), err)
    return abs(best[0]) if best else float("nan")


def skipped_levels(achieved: np.ndarray, targets: np.ndarray, cpd: float = 0.8) -> int:
    """Paper 001 Fig. 4c,d: normalize each level so it is 0 and the next is 1;
    a level tends to be skipped when the value reached there exceeds 1 at the
    given cumulative probability. achieved: repetitions x levels."""
    step = np.diff(targets)
    z = (achieved[:, :-1] - targets[:-1]) / step
    return int((np.quantile(z, cpd, axis=0) > 1).sum())
