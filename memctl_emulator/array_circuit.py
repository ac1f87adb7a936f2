"""The resistive network of a passive crossbar: line voltages in, the voltage
across every device and the current into every column terminal out.

Three cases, cheapest first:
- every line driven, ideal wires: V_dev = V_row - V_col (one numpy pass);
- some lines floating, ideal wires: Kirchhoff's current law for the floating
  lines only (sneak paths on reads with floating unselected lines);
- wire resistance r per segment between crosspoints (paper 003 Supp. Note 1):
  nodal analysis of the 2 x rows x cols wire nodes, solved as a sparse system.
  Rows are driven from their first column's side, columns sensed at their
  last row's side, so devices far from the drivers see the largest IR drop.
In a 1T1R array a row's access transistors can be off: those cells carry no
current and their devices see no voltage. The solve is linear in the device
conductances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

LEAK = 1e-12  # S from every node to ground: keeps isolated floating nodes defined


@dataclass
class LineDrive:
    v_rows: np.ndarray
    v_cols: np.ndarray
    row_driven: np.ndarray
    col_driven: np.ndarray
    gate: np.ndarray | None = None  # 1T1R: per-row access transistors on (None: passive 0T1R)

    @classmethod
    def driven(cls, v_rows: np.ndarray, v_cols: np.ndarray) -> LineDrive:
        return cls(v_rows, v_cols, np.ones(len(v_rows), bool), np.ones(len(v_cols), bool))

    @property
    def all_driven(self) -> bool:
        return bool(self.row_driven.all() and self.col_driven.all())


@dataclass
class Solution:
    v_device: np.ndarray  # rows x cols, V across each device (row side minus column side)
    i_columns: np.ndarray  # A flowing into each column's terminal (0 where it floats)


def solve(g: np.ndarray, drive: LineDrive, r_line: float = 0.0) -> Solution:
    off = None if drive.gate is None or drive.gate.all() else ~drive.gate
    if off is not None:
        g = np.where(off[:, None], 0.0, g)  # an open transistor disconnects its cell
    if r_line > 0:
        net = _solve_wires(g, drive, r_line)
    elif drive.all_driven:
        v = drive.v_rows[:, None] - drive.v_cols[None, :]
        net = Solution(v, (g * v).sum(axis=0))
    else:
        net = _solve_floating(g, drive)
    if off is not None:
        net.v_device = np.where(off[:, None], 0.0, net.v_device)  # the transistor takes the voltage
    return net


def _solve_floating(g: np.ndarray, drive: LineDrive) -> Solution:
    fr = np.flatnonzero(~drive.row_driven)
    fc = np.flatnonzero(~drive.col_driven)
    vr = np.where(drive.row_driven, drive.v_rows, 0.0)
    vc = np.where(drive.col_driven, drive.v_cols, 0.0)
    nr = len(fr)
    a = np.zeros((nr + len(fc),) * 2)
    b = np.zeros(nr + len(fc))
    gfc = g[np.ix_(fr, fc)]
    a[:nr, :nr] = np.diag(g[fr].sum(axis=1) + LEAK)
    a[nr:, nr:] = np.diag(g[:, fc].sum(axis=0) + LEAK)
    a[:nr, nr:] = -gfc
    a[nr:, :nr] = -gfc.T
    b[:nr] = g[fr] @ np.where(drive.col_driven, vc, 0.0)
    b[nr:] = np.where(drive.row_driven, vr, 0.0) @ g[:, fc]
    x = np.linalg.solve(a, b)
    vr[fr], vc[fc] = x[:nr], x[nr:]
    v = vr[:, None] - vc[None, :]
    i_cols = np.where(drive.col_driven, (g * v).sum(axis=0), 0.0)
    return Solution(v, i_cols)


_factor_cache: dict = {}


def _solve_wires(g: np.ndarray, drive: LineDrive, r: float) -> Solution:
    rows, cols = g.shape
    n = rows * cols
    gw = 1.0 / r
    u = np.arange(n).reshape(rows, cols)  # row-wire node at each crosspoint
    w = u + n  # column-wire node at each crosspoint
    dr = np.flatnonzero(drive.row_driven)
    dc = np.flatnonzero(drive.col_driven)
    # The matrix depends on G, r and which lines are driven, not on the
    # voltages: reuse its factorization while those stay the same (VMMs).
    key = (hash(g.tobytes()), g.shape, r, drive.row_driven.tobytes(), drive.col_driven.tobytes())
    factor = _factor_cache.get(key)
    if factor is None:
        # Two-terminal elements as (node a, node b, conductance).
        ea = np.concatenate([u[:, :-1].ravel(), w[:-1, :].ravel(), u.ravel()])
        eb = np.concatenate([u[:, 1:].ravel(), w[1:, :].ravel(), w.ravel()])
        ec = np.concatenate([np.full(rows * (cols - 1), gw), np.full((rows - 1) * cols, gw), g.ravel()])
        diag = np.full(2 * n, LEAK)
        np.add.at(diag, ea, ec)
        np.add.at(diag, eb, ec)
        # Drivers: rows at column 0's side, columns at the last row's side.
        diag[u[dr, 0]] += gw
        diag[w[rows - 1, dc]] += gw
        idx = np.arange(2 * n)
        m = sp.coo_matrix(
            (np.concatenate([diag, -ec, -ec]), (np.concatenate([idx, ea, eb]), np.concatenate([idx, eb, ea]))),
            shape=(2 * n, 2 * n),
        ).tocsc()
        factor = splu(m)
        _factor_cache.clear()
        _factor_cache[key] = factor
    rhs = np.zeros(2 * n)
    rhs[u[dr, 0]] += gw * drive.v_rows[dr]
    rhs[w[rows - 1, dc]] += gw * drive.v_cols[dc]
    x = factor.solve(rhs)
    vu, vw = x[:n].reshape(rows, cols), x[n:].reshape(rows, cols)
    i_cols = np.zeros(cols)
    i_cols[dc] = gw * (vw[rows - 1, dc] - drive.v_cols[dc])
    return Solution(vu - vw, i_cols)
