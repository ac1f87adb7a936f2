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
  The factorization is kept per pattern of driven lines and conducting rows
  and updated (Woodbury) for the few devices a pulse changes: see WireCache.
In a 1T1R array a row's access transistors can be off: those cells carry no
current and their devices see no voltage. The solve is linear in the device
conductances.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_banded
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


def solve(g: np.ndarray, drive: LineDrive, r_line: float = 0.0, cache: WireCache | None = None) -> Solution:
    """cache: where wire-resistance solves keep their factorizations (a
    Crossbar has its own; default: one shared by the module)."""
    off = None if drive.gate is None or drive.gate.all() else ~drive.gate
    if off is not None:
        g = np.where(off[:, None], 0.0, g)  # an open transistor disconnects its cell
    if r_line > 0 and off is not None and off.sum() == len(off) - 1 and drive.all_driven:
        net = _solve_one_row(g, drive, r_line, int(np.flatnonzero(~off)[0]))
    elif r_line > 0:
        net = (_default_cache if cache is None else cache).solve(g, drive, r_line, off)
    elif drive.all_driven:
        v = drive.v_rows[:, None] - drive.v_cols[None, :]
        net = Solution(v, (g * v).sum(axis=0))
    else:
        net = _solve_floating(g, drive)
    if off is not None:
        net.v_device = np.where(off[:, None], 0.0, net.v_device)  # the transistor takes the voltage
    return net


def _solve_one_row(g: np.ndarray, drive: LineDrive, r: float, row: int) -> Solution:
    """1T1R with one word line on (every pulse and read of a 1T1R array): only
    that row's devices conduct, so the network reduces to its row wire, the
    devices, and each column wire from the row down to its sense end at the last
    row, (rows - row) segments in series with the device. Node voltages along
    the row wire solve a tridiagonal system: O(cols), no factorization to keep.
    The full nodal solve differs only by the 1e-12 S leaks of nodes no current
    reaches (test_fast_solve checks agreement)."""
    rows, cols = g.shape
    gw = 1.0 / r
    gc = gw / (rows - row)  # the column wire below the row, with its driver segment
    gd = g[row]
    geff = gd * gc / (gd + gc)  # device in series with its column wire
    vc = drive.v_cols
    # Row-wire node j: gw to each neighbour (node 0: to the row driver), geff through device j to V_col[j].
    diag = geff + 2 * gw + LEAK
    diag[-1] -= gw
    off_diag = np.full(cols - 1, -gw)
    rhs = geff * vc
    rhs[0] += gw * drive.v_rows[row]
    ab = np.zeros((3, cols))
    ab[0, 1:], ab[1], ab[2, :-1] = off_diag, diag, off_diag
    u = solve_banded((1, 1), ab, rhs)
    i_dev = geff * (u - vc)  # into each column, down to its driver
    v = np.zeros((rows, cols))
    v[row] = u - (vc + i_dev / gc)  # row wire minus column wire at the crosspoint
    return Solution(v, i_dev)


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


# -- wire resistance ------------------------------------------------------------
#
# The nodal matrix A depends on the device conductances, r, which lines are
# driven and (1T1R) which rows conduct; the right-hand side b only on the line
# voltages. A pulse changes a few devices, and device (i, j) between row-wire
# node u and column-wire node w changing by dg is the rank-1 update
# A + dg (e_u - e_w)(e_u - e_w)^T. A _Base keeps the LU of A for one pattern of
# driven lines and conducting rows and the devices changed since it was
# factored: with U = [e_u - e_w, ...], D = diag(dg), Z = A^-1 U and M = U^T Z,
# Woodbury gives
#     (A + U D U^T)^-1 b = x0 - Z (I + D M)^-1 D U^T x0,    x0 = A^-1 b,
# exact up to rounding. A device joins the changed set with one triangular
# solve (its column of Z, solved ahead together with the line responses of
# the first pulse that selects it); past max_changes devices the base is
# factored afresh. x0 is a combination of kept responses to single lines (and
# to all lines of a side together), so a repeated pulse or read costs a few
# vector operations and no triangular solve. Vectors are kept reduced to the
# device voltages and the column currents' nodes (n + cols entries).

MAX_CHANGES = 48  # devices changed since a factorization before the next one
MAX_LINE_TERMS = 8  # lines off their side's common voltage beyond which x0 is solved directly
MAX_LINES = 32  # line responses kept per base
MAX_PENDING = 4  # columns of Z solved for pulsed devices before they change
RECENT = 4  # x0 kept per base for the last line voltages (a pulse repeated, its verify read)
CACHE_BYTES = 1 << 29  # estimated size of the factorizations one WireCache keeps


def _nodal_matrix(g: np.ndarray, row_driven: np.ndarray, col_driven: np.ndarray, r: float) -> sp.csc_matrix:
    rows, cols = g.shape
    n = rows * cols
    gw = 1.0 / r
    u = np.arange(n).reshape(rows, cols)  # row-wire node at each crosspoint
    w = u + n  # column-wire node at each crosspoint
    # Two-terminal elements as (node a, node b, conductance).
    ea = np.concatenate([u[:, :-1].ravel(), w[:-1, :].ravel(), u.ravel()])
    eb = np.concatenate([u[:, 1:].ravel(), w[1:, :].ravel(), w.ravel()])
    ec = np.concatenate([np.full(rows * (cols - 1), gw), np.full((rows - 1) * cols, gw), g.ravel()])
    diag = np.full(2 * n, LEAK)
    np.add.at(diag, ea, ec)
    np.add.at(diag, eb, ec)
    # Drivers: rows at column 0's side, columns at the last row's side.
    diag[u[row_driven, 0]] += gw
    diag[w[rows - 1, col_driven]] += gw
    idx = np.arange(2 * n)
    m = sp.coo_matrix(
        (np.concatenate([diag, -ec, -ec]), (np.concatenate([idx, ea, eb]), np.concatenate([idx, eb, ea]))),
        shape=(2 * n, 2 * n),
    ).tocsc()
    m.eliminate_zeros()  # devices at 0 S (gated off, pristine) add no fill
    return m


def _rhs(drive: LineDrive, shape: tuple[int, int], r: float) -> np.ndarray:
    rows, cols = shape
    n = rows * cols
    b = np.zeros(2 * n)
    dr, dc = np.flatnonzero(drive.row_driven), np.flatnonzero(drive.col_driven)
    b[dr * cols] += drive.v_rows[dr] / r
    b[n + (rows - 1) * cols + dc] += drive.v_cols[dc] / r
    return b


def _solution(x: np.ndarray, drive: LineDrive, shape: tuple[int, int], r: float) -> Solution:
    rows, cols = shape
    n = rows * cols
    vu, vw = x[:n].reshape(rows, cols), x[n:].reshape(rows, cols)
    dc = np.flatnonzero(drive.col_driven)
    i_cols = np.zeros(cols)
    i_cols[dc] = (vw[rows - 1, dc] - drive.v_cols[dc]) / r
    return Solution(vu - vw, i_cols)


def _factor(m: sp.csc_matrix):
    # A is symmetric and diagonally dominant: no pivoting, a symmetric ordering.
    return splu(m, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})


class _FullSolve:
    """In place of a WireCache: a fresh factorization of the whole nodal matrix
    on every call (the reference the updates are tested against)."""

    @staticmethod
    def solve(g: np.ndarray, drive: LineDrive, r: float, off: np.ndarray | None = None) -> Solution:
        m = _nodal_matrix(g, drive.row_driven, drive.col_driven, r)
        return _solution(splu(m).solve(_rhs(drive, g.shape, r)), drive, g.shape, r)


def _reference_solve(g: np.ndarray, drive: LineDrive, r_line: float) -> Solution:
    return solve(g, drive, r_line, cache=_FullSolve())


class _Base:
    """The LU of one nodal matrix and the devices changed since (see above).
    Solutions are kept reduced to what a Solution needs: the voltage across
    each device (x_u - x_w) and the column wires' voltages at their drivers."""

    def __init__(self, g: np.ndarray, drive: LineDrive, r: float, reuse: bool = True):
        self.shape, self.n, self.r = g.shape, g.size, r
        self.reuse = reuse  # keep line responses and recent x0 (off: one solve per call, as before updates)
        self.row_driven, self.col_driven = drive.row_driven.copy(), drive.col_driven.copy()
        self.dc = np.flatnonzero(self.col_driven)
        self.g0 = g.ravel().copy()
        self.lu = _factor(_nodal_matrix(g, self.row_driven, self.col_driven, r))
        self.changed = np.zeros(self.n, bool)
        self.s = np.zeros(0, np.intp)  # changed devices (flat index), in the order they joined
        self.dg = np.zeros(0)
        self.zbuf = np.zeros((self.n + self.shape[1], 0), order="F")  # Z = A^-1 U (reduced), len(s) columns
        self.m = np.zeros((0, 0))  # M = U^T Z
        self.lines: OrderedDict = OrderedDict()  # (side, line or -1 for all): A^-1 b of that line at 1 V
        self.asked: dict = {}
        self.recent: OrderedDict = OrderedDict()  # the last few line voltages and their x0
        self.pending: OrderedDict = OrderedDict()  # device: its column of Z, solved ahead of its change

    @property
    def nbytes(self) -> int:
        lu = (self.lu.L.nnz + self.lu.U.nnz) * 12
        vectors = len(self.lines) + len(self.recent) + len(self.pending)
        return lu + self.zbuf.nbytes + vectors * 8 * (self.n + self.shape[1]) + 24 * self.n

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        n = self.n
        return np.concatenate([x[:n] - x[n:], x[2 * n - self.shape[1] :]])

    def update(self, g: np.ndarray, limit: int) -> int | None:
        """Take the conductances g (flat); the devices that joined the changed
        set, or None when more than `limit` would differ from the base."""
        d = g - self.g0
        idx = np.flatnonzero(d)
        new = idx[~self.changed[idx]]
        k0, k = len(self.s), len(self.s) + len(new)
        if k > limit:
            return None
        if len(new):
            if self.zbuf.shape[1] < k:
                grown = np.zeros((self.zbuf.shape[0], max(k, min(2 * self.zbuf.shape[1], limit), 8)), order="F")
                grown[:, :k0] = self.zbuf[:, :k0]
                self.zbuf = grown
            self._solve_batch([], [int(j) for j in new if int(j) not in self.pending])
            self.zbuf[:, k0:k] = np.stack([self.pending.pop(int(j)) for j in new], axis=1)
            self.s = np.concatenate([self.s, new])
            self.changed[new] = True
            mn = self.zbuf[self.s, k0:k]  # U^T Z for the new columns
            m = np.empty((k, k))
            m[:k0, :k0] = self.m
            m[:, k0:] = mn
            m[k0:, :k0] = mn[:k0].T
            self.m = m
        self.dg = d[self.s]
        return len(new)

    def _solve_batch(self, lines: list[tuple[int, int]], devices: list[int]) -> None:
        """Responses to lines (kept in self.lines) and devices' columns of Z
        (kept in self.pending until they join the changed set), solved together."""
        if not lines and not devices:
            return
        n = self.n
        e = np.zeros((2 * n, len(lines) + len(devices)), order="F")
        for j, key in enumerate(lines):
            e[:, j] = self._line_rhs(key)
        cols = np.arange(len(lines), e.shape[1])
        e[devices, cols] = 1.0
        e[n + np.array(devices, np.intp), cols] = -1.0
        for j0 in range(0, e.shape[1], 4):  # SuperLU solves a few columns at once fastest
            e[:, j0 : j0 + 4] = self.lu.solve(e[:, j0 : j0 + 4])
        red = self._reduce(e)
        for j, key in enumerate(lines):
            self._keep_line(key, red[:, j].copy())
        for j, dev in zip(cols, devices, strict=True):
            self.pending[dev] = red[:, j].copy()

    def _line_rhs(self, key: tuple[int, int]) -> np.ndarray:
        rows, cols = self.shape
        b = np.zeros(2 * self.n)
        side, line = key
        if side == 0:
            b[(np.flatnonzero(self.row_driven) if line < 0 else line) * cols] = 1.0 / self.r
        else:
            b[self.n + (rows - 1) * cols + (self.dc if line < 0 else line)] = 1.0 / self.r
        return b

    def _keep_line(self, key: tuple[int, int], x: np.ndarray) -> None:
        self.lines[key] = x
        while len(self.lines) > MAX_LINES:
            self.lines.popitem(last=False)

    def _x0(self, drive: LineDrive) -> np.ndarray:
        """A^-1 b (reduced): each side's most common voltage on all its driven
        lines plus the lines that differ, from kept line responses; b solved
        directly when too many lines differ or several new lines are asked for
        the first time."""
        terms = []
        for side, v, driven in ((0, drive.v_rows, self.row_driven), (1, drive.v_cols, self.col_driven)):
            idx = np.flatnonzero(driven)
            if not len(idx):
                continue
            vals = v[idx]
            uniq, count = np.unique(vals, return_counts=True)
            common = uniq[np.argmax(count)]
            if common:
                terms.append((common, (side, -1)))
            terms += [(v[i] - common, (side, int(i))) for i in idx[vals != common]]
        if not terms:
            return np.zeros(self.n + self.shape[1])
        missing = [key for _, key in terms if key not in self.lines]
        for key in missing:
            self.asked[key] = self.asked.get(key, 0) + 1
        # Solving for a line costs as much as solving for b: do it for a line
        # or two, or for lines asked for before.
        if len(terms) > MAX_LINE_TERMS or (len(missing) > 2 and any(self.asked[key] < 2 for key in missing)):
            return self._reduce(self.lu.solve(_rhs(drive, self.shape, self.r)))
        for _, key in terms:
            if key in self.lines:
                self.lines.move_to_end(key)
        if missing:
            # A pulse's pattern (one row and one column off the rest): the
            # device it selects is about to change, so its column of Z is
            # solved along with the lines.
            rows = [line for _, (side, line) in terms if side == 0 and line >= 0]
            cols = [line for _, (side, line) in terms if side == 1 and line >= 0]
            dev = [rows[0] * self.shape[1] + cols[0]] if len(rows) == len(cols) == 1 else []
            self._solve_batch(missing, [j for j in dev if not self.changed[j] and j not in self.pending])
            while len(self.pending) > MAX_PENDING:
                self.pending.popitem(last=False)
        coef, key = terms[0]
        x = coef * self.lines[key]
        for coef, key in terms[1:]:
            x += coef * self.lines[key]
        return x

    def solve(self, drive: LineDrive) -> Solution:
        volts = (drive.v_rows.tobytes(), drive.v_cols.tobytes())
        x = self.recent.get(volts)
        if not self.reuse:
            x = self._reduce(self.lu.solve(_rhs(drive, self.shape, self.r)))
        elif x is None:
            x = self.recent[volts] = self._x0(drive)
            if len(self.recent) > RECENT:
                self.recent.popitem(last=False)
        else:
            self.recent.move_to_end(volts)
        k = len(self.s)
        if k and self.dg.any():
            y = np.linalg.solve(np.eye(k) + self.dg[:, None] * self.m, self.dg * x[self.s])
            # einsum, not BLAS: a threaded gemv of this shape stalls on a busy machine.
            x = x - np.einsum("ij,j->i", self.zbuf[:, :k], y)
        else:
            x = x.copy()  # the caller owns what it gets
        rows, cols = self.shape
        i_cols = np.zeros(cols)
        i_cols[self.dc] = (x[self.n + self.dc] - drive.v_cols[self.dc]) / self.r
        return Solution(x[: self.n].reshape(rows, cols), i_cols)


class WireCache:
    """Factorizations of the wire network, one per pattern of driven lines and
    conducting rows (least recently used dropped past max_bytes), each updated
    for the devices changed since rather than factored again."""

    def __init__(self, max_changes: int = MAX_CHANGES, max_bytes: int = CACHE_BYTES):
        """max_changes = 0: factor whenever the conductances change (the
        behaviour before updates; benchmarks compare against it)."""
        self.max_changes = max_changes
        self.max_bytes = max_bytes
        self.bases: OrderedDict = OrderedDict()
        self.factorizations = 0
        self.device_updates = 0  # devices that joined a changed set (one triangular solve each)

    def solve(self, g: np.ndarray, drive: LineDrive, r: float, off: np.ndarray | None = None) -> Solution:
        gate = None if off is None else off.tobytes()
        key = (g.shape, r, drive.row_driven.tobytes(), drive.col_driven.tobytes(), gate)
        base = self.bases.get(key)
        added = None if base is None else base.update(g.ravel(), self.max_changes)
        if added is None:
            self.bases.pop(key, None)
            base = self.bases[key] = _Base(g, drive, r, reuse=self.max_changes > 0)
            self.factorizations += 1
            while len(self.bases) > 1 and sum(b.nbytes for b in self.bases.values()) > self.max_bytes:
                self.bases.popitem(last=False)
        else:
            self.device_updates += added
            self.bases.move_to_end(key)
        return base.solve(drive)


_default_cache = WireCache()
