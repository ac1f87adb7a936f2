"""Wire-resistance solves updated for changed devices (array_circuit.WireCache)
agree with a fresh factorization of the whole network to 1e-9 relative."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memctl.devices import PRESETS
from memctl_emulator.array_circuit import LineDrive, WireCache, _reference_solve, solve
from memctl_emulator.crossbar import Crossbar

G_MIN, G_MAX = 10e-6, 100e-6


def rel_err(a, b) -> float:
    """Largest difference over the largest magnitude, device voltages and column currents."""
    dv = np.abs(a.v_device - b.v_device).max() / np.abs(b.v_device).max()
    scale = np.abs(b.i_columns).max()
    di = np.abs(a.i_columns - b.i_columns).max() / scale if scale else np.abs(a.i_columns).max()
    return float(max(dv, di))


def v2_pulse(n, r, c, v):  # V/2 biasing: every line driven
    vr, vc = np.full(n, v / 2), np.full(n, v / 2)
    vr[r], vc[c] = v, 0.0
    return LineDrive.driven(vr, vc)


def v3_pulse(n, r, c, v):
    vr, vc = np.full(n, v / 3), np.full(n, 2 * v / 3)
    vr[r], vc[c] = v, 0.0
    return LineDrive.driven(vr, vc)


def grounded_read(n, r, c, v):
    vr = np.zeros(n)
    vr[r] = v
    return LineDrive.driven(vr, np.zeros(n))


def floating_read(n, r, c, v):  # only the selected row and column driven
    d = grounded_read(n, r, c, v)
    d.row_driven, d.col_driven = np.arange(n) == r, np.arange(n) == c
    return d


def vmm(n, r, c, v):
    return LineDrive.driven(np.random.default_rng(r * n + c).uniform(-v, v, n), np.zeros(n))


def one_t1r_pulse(n, r, c, v):  # only row r conducts; the other columns follow the row
    vr, vc = np.zeros(n), np.full(n, v)
    vr[r], vc[c] = v, 0.0
    d = LineDrive.driven(vr, vc)
    d.gate = np.arange(n) == r
    return d


def one_t1r_read(n, r, c, v):
    d = grounded_read(n, r, c, v)
    d.gate = np.arange(n) == r
    return d


def row_parallel_pulse(n, r, c, v):  # row-parallel write-verify: row at 0 V, each column at minus its pulse
    vc = np.random.default_rng(r * n + c).choice([-v, 0.0, 0.8 * v], n)
    d = LineDrive.driven(np.zeros(n), vc)
    d.gate = np.arange(n) == r
    return d


def gated_vmm(n, r, c, v):  # several rows on
    d = vmm(n, r, c, v)
    d.gate = np.random.default_rng(r).random(n) < 0.5
    d.gate[r] = True
    return d


PASSIVE = (v2_pulse, v3_pulse, grounded_read, floating_read, vmm)
GATED = (one_t1r_pulse, one_t1r_read, row_parallel_pulse, gated_vmm, v2_pulse)


def run_changes(n, drives, steps, seed, r_line=1.0, cache=None, rows=None):
    """Random single- and few-device changes, each followed by solves with a
    few drives around a device (often the one just changed, as in programming)."""
    rng = np.random.default_rng(seed)
    g = rng.uniform(G_MIN, G_MAX, (n, n))
    cache = cache or WireCache()
    worst = 0.0
    r, c = rng.integers(n, size=2)
    for step in range(steps):
        if step % 5 == 0:  # the next device
            r, c = (int(rng.integers(n)) if rows is None else int(rng.choice(rows))), int(rng.integers(n))
        g[r, c] = rng.uniform(G_MIN, G_MAX)
        k = int(rng.choice([0, 0, 1, 2]))  # a few half-selected devices move too
        g[rng.integers(n, size=k), rng.integers(n, size=k)] *= rng.uniform(0.9, 1.1, k)
        for make in rng.choice(len(drives), size=2, replace=False):
            d = drives[make](n, r, c, float(rng.choice([1.2, 1.3, 1.4])))
            worst = max(worst, rel_err(solve(g, d, r_line, cache), _reference_solve(g, d, r_line)))
    return worst, cache


@pytest.mark.parametrize("n", [8, 24, 64])
def test_updates_match_full_solve_passive(n):
    worst, cache = run_changes(n, PASSIVE, steps={8: 60, 24: 40, 64: 25}[n], seed=n)
    assert worst < 1e-9
    assert cache.device_updates > 0  # updated, not only factored


@pytest.mark.parametrize("n", [8, 32])
def test_updates_match_full_solve_1t1r(n):
    # Rows from a small set: the gate patterns repeat, each with its own base.
    worst, cache = run_changes(n, GATED, steps=40, seed=100 + n, rows=[1, n // 2, n - 1])
    assert worst < 1e-9
    assert cache.device_updates > 0


def test_other_line_resistance():
    worst, _ = run_changes(16, PASSIVE, steps=30, seed=7, r_line=20.0)
    assert worst < 1e-9


def test_refactor_threshold_is_exercised_and_exact():
    cache = WireCache(max_changes=4)
    worst, cache = run_changes(16, (v2_pulse, grounded_read), steps=60, seed=3, cache=cache)
    assert worst < 1e-9
    assert cache.factorizations >= 8  # ~1 changed device per step, 4 per factorization
    assert all(len(b.s) <= 4 for b in cache.bases.values())


def test_bulk_change_refactors_at_once():
    n, rng = 16, np.random.default_rng(5)
    g = rng.uniform(G_MIN, G_MAX, (n, n))
    cache, d = WireCache(max_changes=8), v2_pulse(n, 3, 4, 1.3)
    solve(g, d, 1.0, cache)
    g = g * rng.uniform(0.9, 1.1, g.shape)  # every device (relaxation, a new array)
    assert rel_err(solve(g, d, 1.0, cache), _reference_solve(g, d, 1.0)) < 1e-9
    assert cache.factorizations == 2 and cache.device_updates == 0


def test_devices_at_zero_conductance():
    # Pristine devices at 0 S leave the matrix; forming them is an update.
    n, rng = 12, np.random.default_rng(9)
    g = rng.uniform(G_MIN, G_MAX, (n, n))
    g[rng.random(g.shape) < 0.3] = 0.0
    cache = WireCache()
    for _ in range(10):
        i, j = rng.integers(n, size=2)
        g[i, j] = 0.0 if g[i, j] else rng.uniform(G_MIN, G_MAX)
        for d in (v2_pulse(n, i, j, 2.5), grounded_read(n, i, j, 0.2)):
            assert rel_err(solve(g, d, 1.0, cache), _reference_solve(g, d, 1.0)) < 1e-9
    assert cache.factorizations == 1


def test_eviction_and_refactor_every_change_stay_exact():
    n, rng = 10, np.random.default_rng(11)
    g = rng.uniform(G_MIN, G_MAX, (n, n))
    small, every = WireCache(max_bytes=1), WireCache(max_changes=0)
    for step in range(12):
        g[rng.integers(n), rng.integers(n)] = rng.uniform(G_MIN, G_MAX)
        for make in (v2_pulse, floating_read, one_t1r_read):
            d = make(n, step % n, (3 * step) % n, 0.3)
            ref = _reference_solve(g, d, 1.0)
            assert rel_err(solve(g, d, 1.0, small), ref) < 1e-9
            assert rel_err(solve(g, d, 1.0, every), ref) < 1e-9
    assert len(small.bases) == 1
    assert every.device_updates == 0


def test_solutions_do_not_alias_the_cache():
    n = 8
    g = np.random.default_rng(2).uniform(G_MIN, G_MAX, (n, n))
    cache, d = WireCache(), v2_pulse(n, 2, 5, 1.3)
    first = solve(g, d, 1.0, cache)
    first.v_device[:] = 0.0
    first.i_columns[:] = 0.0
    assert rel_err(solve(g, d, 1.0, cache), _reference_solve(g, d, 1.0)) < 1e-9


def test_crossbar_pulses_update_instead_of_factoring():
    formed = dataclasses.replace(PRESETS["pt_al2o3_tio2_passive"], v_form=0.0)
    fast = Crossbar(24, 24, formed, seed=1, line_resistance=1.0)
    full = Crossbar(24, 24, formed, seed=1, line_resistance=1.0)
    full.wires = WireCache(max_changes=0)
    for k in range(30):
        r, c = divmod(k // 5, 24)
        for xb in (fast, full):
            xb.apply(v2_pulse(24, r, c + 3, 1.3 + 0.02 * (k % 5)), 100e-6)
            xb.column_currents(grounded_read(24, r, c + 3, 0.2), noise_scale=0.0)
    assert fast.wires.factorizations == 1 and fast.wires.device_updates >= 6
    assert full.wires.factorizations > 30
    assert np.abs(fast.conductance - full.conductance).max() <= 1e-9 * full.conductance.max()


def test_one_word_line_reduces_to_the_row_and_matches_the_full_solve():
    """1T1R with one row on (every pulse and read there) takes the O(cols) row solve: exact to 1e-9 of the
    full nodal solve, also with devices at 0 S and at the array's far rows and columns."""
    rng = np.random.default_rng(3)
    for n in (8, 33):
        g = rng.uniform(G_MIN, G_MAX, (n, n))
        g[2, 5] = 0.0
        for r in (0, 2, n - 1):
            for make in (one_t1r_pulse, one_t1r_read, row_parallel_pulse):
                d = make(n, r, n - 1, 1.3)
                cache = WireCache()
                assert rel_err(solve(g, d, 1.0, cache), _reference_solve(g, d, 1.0)) <= 1e-9
                assert cache.factorizations == 0  # nothing factored: the row solve needs none


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_switching_only_the_moved_devices_is_the_whole_array_update(name):
    """A pulse updates the devices it moved, gathered (fast at 256x256), bit for bit what the whole-array
    update gives: same random draws, same hardening and fresh-increment state, half-selected moves too."""
    from memctl_emulator.array_circuit import LineDrive

    n, d = 12, PRESETS[name]
    fast, whole = Crossbar(n, n, d, seed=4), Crossbar(n, n, d, seed=4)
    whole._switch = whole._switch_all
    rng = np.random.default_rng(0)
    moved = 0
    for _ in range(300):
        r, c = rng.integers(n, size=2)
        v = rng.uniform(-d.v_max, d.v_max)
        vr, vc = np.full(n, v / 2), np.full(n, v / 2)
        vr[r], vc[c] = v, 0.0
        w = d.pulse_width * rng.uniform(0.2, 3)
        k = fast.apply(LineDrive.driven(vr, vc), w)
        assert k == whole.apply(LineDrive.driven(vr, vc), w)
        moved += k
    assert moved > 50
    for k in Crossbar._STATE:
        np.testing.assert_array_equal(getattr(fast, k), getattr(whole, k))
