"""Paper 001's segmentation and metrics on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from memctl.ffp import _eq2, _eq3, fit_nu, segment, skipped_levels


@pytest.mark.parametrize("nu", [2e-5, 3e-4, 5e-3, 2e-2])
def test_fit_nu_recovers_eq2_and_eq3(nu):
    n = 128
    nj = np.arange(n + 1, dtype=float)
    assert fit_nu(_eq2(nj, nu, n), potentiation=True) == pytest.approx(nu, rel=0.05, abs=2e-6)
    assert fit_nu(_eq3(nj, nu, n), potentiation=False) == pytest.approx(nu, rel=0.05, abs=2e-6)


def test_linear_sequence_has_nu_near_zero():
    y = np.linspace(1, 0, 33)
    assert fit_nu(y, potentiation=True) < 1e-4  # paper 001 reports 4.95e-3 at n = 32


def test_segment_groups_a_linear_trace_evenly():
    r = np.linspace(880, 740, 501)  # 500 events of 0.28 ohm
    v = np.linspace(0.5, 7, 500)
    seg = segment(r, v, 11)
    assert len(seg.groups) == 10
    assert [len(g) for g in seg.groups] == [50] * 10
    np.testing.assert_allclose(seg.achieved, seg.targets, atol=1e-9)
    assert seg.targets[0] == pytest.approx(1.0) and seg.targets[-1] == pytest.approx(0.0)


def test_segment_marks_unseparable_levels_unoccupied():
    r = np.array([880.0, 800.0, 740.0])  # two big events, ten levels
    seg = segment(r, np.array([3.0, 3.0]), 10)
    assert sum(len(g) == 0 for g in seg.groups) >= 7
    with pytest.raises(ValueError):
        segment(r, np.array([3.0]), 10)


def test_skipped_levels_at_cpd_80():
    targets = np.linspace(1, 0, 5)  # step -0.25
    exact = np.tile(targets, (10, 1))
    assert skipped_levels(exact, targets) == 0
    overshoot = exact.copy()
    overshoot[:, 2] -= 0.3  # level 2 lands beyond level 3 in every replay
    assert skipped_levels(overshoot, targets) == 1
    rare = exact.copy()
    rare[:1, 1] -= 0.3  # one replay in ten: below the 80 % point
    assert skipped_levels(rare, targets) == 0
